/**
 * Store cleanup deletes only what it can prove unused (issue 18, point 1). Each trial that
 * lost data before is here: a truncated `diff` file followed by `images`; garbage in the
 * `cache-id` of the layer under a mounted container followed by `ps`; `load` over a layer
 * whose cache is gone; prune while an image config cannot be read. And the markers that
 * make interrupted loads and removals finish: a `.pending` cache whose load died goes, a
 * `.removing` layer is removed to the end, an unmarked orphan is left to `prune`.
 */
import { spawn } from 'node:child_process';
import { cp, mkdir, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { layerfs, makeTar, writeOciLayout } from '../helpers/images.js';
import { entryDir, layersOf, okIn as ok } from '../helpers/store-layers.js';
import { tempDir } from '../helpers/temp.js';

let work: string;
let imgA: string;
let imgB: string;

beforeAll(async () => {
  work = await tempDir('layerfs-noloss-');
  const base = { tar: await makeTar([{ name: 'etc/', type: 'directory' }, { name: 'etc/os-release', data: 'ID=test\n' }, { name: 'big', data: Buffer.alloc(300_000, 7) }]) };
  const app = { tar: await makeTar([{ name: 'app', data: 'app v1\n' }]) };
  const other = { tar: await makeTar([{ name: 'other', data: 'other\n' }]) };
  imgA = join(work, 'a');
  imgB = join(work, 'b');
  await writeOciLayout(imgA, [base, app], { tag: 'a' });
  await writeOciLayout(imgB, [other], { tag: 'b' });
}, 120_000);

async function freshStore(): Promise<string> {
  const root = join(await tempDir('layerfs-root-'), 'store');
  await ok(root, ['load', '-i', imgA, '--name', 'test/img']);
  await ok(root, ['load', '-i', imgB, '--name', 'test/img']);
  return root;
}

const cacheDir = (root: string, cacheId: string): string => join(root, 'layers', cacheId);

/** A pid that certainly belongs to no process now (a child that has exited). */
async function deadPid(): Promise<number> {
  const p = spawn('true');
  await new Promise((r) => p.on('close', r));
  return p.pid!;
}

describe('store cleanup never deletes what it cannot prove unused', () => {
  it('a truncated diff file, then `images`: the layer cache stays, and load re-extracts nothing lost', async () => {
    const root = await freshStore();
    const [base] = await layersOf(root, 'test/img:a');
    await writeFile(join(entryDir(root, base!.ChainID), 'diff'), '');
    const r = await layerfs(root, ['images']);
    expect(existsSync(join(cacheDir(root, base!.CacheID), 'diff', 'big'))).toBe(true);
    // The other image still lists; the damaged one is named with its entry path and the fix.
    expect(r.stdout).toMatch(/test\/img\s+b/);
    expect(r.stderr).toContain(join(entryDir(root, base!.ChainID), 'diff'));
    expect(r.stderr).toContain('layerfs check');
    // prune proves nothing while an entry is unreadable, so it deletes nothing.
    const p = await layerfs(root, ['prune']);
    expect(p.stderr).toContain('no layer or blob was deleted');
    expect(existsSync(join(cacheDir(root, base!.CacheID), 'diff', 'big'))).toBe(true);
  });

  it('garbage in the cache-id of the layer under a mounted container, then `ps`: its files stay readable', async () => {
    if (!inject('canMount')) return expect.fail('needs FUSE');
    const root = await freshStore();
    const mnt = join(await tempDir('layerfs-mnt-'), 'm');
    await mkdir(mnt);
    await ok(root, ['mount', 'test/img:a', mnt, '--name', 'held']);
    try {
      const [base] = await layersOf(root, 'test/img:a');
      await writeFile(join(entryDir(root, base!.ChainID), 'cache-id'), 'garbage\n');
      await layerfs(root, ['ps']);
      await layerfs(root, ['prune']);
      await layerfs(root, ['rmi', 'test/img:b']);
      expect(existsSync(cacheDir(root, base!.CacheID))).toBe(true);
      expect((await readFile(join(mnt, 'big'))).length).toBe(300_000);
      expect(await readFile(join(mnt, 'etc', 'os-release'), 'utf8')).toBe('ID=test\n');
    } finally {
      await layerfs(root, ['umount', mnt]);
    }
  });

  it('load over a layer whose cache was deleted extracts it again instead of "Already exists"', async () => {
    const root = await freshStore();
    const [base] = await layersOf(root, 'test/img:a');
    await rm(cacheDir(root, base!.CacheID), { recursive: true });
    const out = await ok(root, ['load', '-i', imgA, '--name', 'test/img']);
    expect(out.split('\n')[0]).toMatch(/: Loaded$/);
    const [again] = await layersOf(root, 'test/img:a');
    expect((await readFile(join(again!.Diff, 'big'))).length).toBe(300_000);
    // A damaged entry (empty size file) is replaced by a whole one the same way.
    await writeFile(join(entryDir(root, again!.ChainID), 'size'), '');
    const out2 = await ok(root, ['load', '-i', imgA, '--name', 'test/img']);
    expect(out2.split('\n')[0]).toMatch(/: Loaded$/);
    const [third] = await layersOf(root, 'test/img:a');
    expect(Number(await readFile(join(entryDir(root, third!.ChainID), 'size'), 'utf8'))).toBe(300_008);
    // The cache it replaced is gone (removed under a marker), the new one serves.
    expect(existsSync(cacheDir(root, again!.CacheID))).toBe(false);
    expect((await readdir(join(root, 'layers'))).filter((n) => !/^[0-9a-f]{64}$/.test(n))).toEqual([]);
  });

  it('prune while an image config cannot be read deletes no layer', async () => {
    const root = await freshStore();
    const layers = await layersOf(root, 'test/img:a');
    const [info] = JSON.parse(await ok(root, ['inspect', 'test/img:a'])) as { Id: string }[];
    await writeFile(join(root, 'image', 'imagedb', 'content', 'sha256', info!.Id.slice(7)), '{not json');
    const r = await layerfs(root, ['rmi', 'test/img:b']);
    expect(r.stderr).toContain('no layer or blob was deleted');
    for (const l of layers) expect(existsSync(cacheDir(root, l.CacheID))).toBe(true);
  });

  it('a container folder without a readable record blocks layer deletion', async () => {
    const root = await freshStore();
    await mkdir(join(root, 'containers', 'f'.repeat(64), 'upper'), { recursive: true });
    const [other] = await layersOf(root, 'test/img:b');
    const r = await layerfs(root, ['rmi', 'test/img:b']);
    expect(r.stderr).toContain(join(root, 'containers', 'f'.repeat(64)));
    expect(existsSync(cacheDir(root, other!.CacheID))).toBe(true);
  });

  it('a cache left by a killed load (.pending, owner dead, no entry) is removed by the next command', async () => {
    const root = await freshStore();
    const [base] = await layersOf(root, 'test/img:a');
    const orphan = 'e'.repeat(64);
    await cp(cacheDir(root, base!.CacheID), cacheDir(root, orphan), { recursive: true });
    await writeFile(join(root, 'layers', `${orphan}.pending`), JSON.stringify({ chainId: `sha256:${'d'.repeat(64)}`, pid: await deadPid() }));
    // An unmarked orphan (a pre-marker store) stays for `prune`, which can prove it unused.
    const unmarked = 'c'.repeat(64);
    await cp(cacheDir(root, base!.CacheID), cacheDir(root, unmarked), { recursive: true });
    await ok(root, ['images']);
    expect(existsSync(cacheDir(root, orphan))).toBe(false);
    expect(existsSync(join(root, 'layers', `${orphan}.pending`))).toBe(false);
    expect(existsSync(cacheDir(root, unmarked))).toBe(true);
    await ok(root, ['prune']);
    expect(existsSync(cacheDir(root, unmarked))).toBe(false);
    expect(existsSync(cacheDir(root, base!.CacheID))).toBe(true);
  });

  it('a .pending marker whose entry was committed only loses the marker; one with an unreadable entry keeps all', async () => {
    const root = await freshStore();
    const [base, app] = await layersOf(root, 'test/img:a');
    await writeFile(join(root, 'layers', `${base!.CacheID}.pending`), JSON.stringify({ chainId: base!.ChainID, pid: await deadPid() }));
    await writeFile(join(root, 'layers', `${app!.CacheID}.pending`), JSON.stringify({ chainId: app!.ChainID, pid: await deadPid() }));
    await writeFile(join(entryDir(root, app!.ChainID), 'cache-id'), 'xx');
    await layerfs(root, ['images']);
    expect(existsSync(join(root, 'layers', `${base!.CacheID}.pending`))).toBe(false);
    expect(existsSync(cacheDir(root, base!.CacheID))).toBe(true);
    expect(existsSync(join(root, 'layers', `${app!.CacheID}.pending`))).toBe(true);
    expect(existsSync(cacheDir(root, app!.CacheID))).toBe(true);
  });

  it('a removal interrupted after its .removing marker is finished by the next command', async () => {
    const root = await freshStore();
    const [other] = await layersOf(root, 'test/img:b');
    await ok(root, ['tag', 'test/img:b', 'keep:b']);
    // As if `rmi` decided to remove this layer and was killed right after recording it.
    await writeFile(join(root, 'layers', `${other!.CacheID}.removing`), JSON.stringify({ chainId: other!.ChainID, pid: await deadPid() }));
    await layerfs(root, ['images']);
    expect(existsSync(entryDir(root, other!.ChainID))).toBe(false);
    expect(existsSync(cacheDir(root, other!.CacheID))).toBe(false);
    expect(existsSync(join(root, 'layers', `${other!.CacheID}.removing`))).toBe(false);
    // The image that used it then says what to do; a load brings the layer back.
    const r = await layerfs(root, ['inspect', 'keep:b']);
    expect(r.code).not.toBe(0);
    await ok(root, ['load', '-i', imgB, '--name', 'test/img']);
    expect((await stat(join((await layersOf(root, 'keep:b'))[0]!.Diff, 'other'))).size).toBe(6);
  });
});
