/**
 * `layerfs check [--repair] [--fast]` on real stores (issue 18, point 4), and how a damaged
 * layerdb entry shows elsewhere: only its own image fails, with the entry's path and the
 * fix; an empty `size` is an error, not 0 B.
 */
import { readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { layerfs, makeTar, writeOciLayout } from '../helpers/images.js';
import { entryDir, layersOf, okIn as ok } from '../helpers/store-layers.js';
import { tempDir } from '../helpers/temp.js';

let work: string;
let imgA: string;
let imgB: string;

beforeAll(async () => {
  work = await tempDir('layerfs-check-');
  const base = { tar: await makeTar([{ name: 'etc/', type: 'directory' }, { name: 'etc/os-release', data: 'ID=test\n' }, { name: 'data', data: Buffer.alloc(50_000, 3) }]) };
  const app = { tar: await makeTar([{ name: 'app', data: 'app\n', mode: 0o755 }]) };
  imgA = join(work, 'a');
  imgB = join(work, 'b');
  await writeOciLayout(imgA, [base, app], { tag: 'a' });
  await writeOciLayout(imgB, [{ tar: await makeTar([{ name: 'b', data: 'b\n' }]) }], { tag: 'b' });
}, 120_000);

async function freshStore(): Promise<string> {
  const root = join(await tempDir('layerfs-root-'), 'store');
  await ok(root, ['load', '-i', imgA, '--name', 'img']);
  await ok(root, ['load', '-i', imgB, '--name', 'img']);
  return root;
}


describe('layerfs check', () => {
  it('a whole store is consistent, fast and full', async () => {
    const root = await freshStore();
    expect(await ok(root, ['check'])).toBe('store is consistent\n');
    expect(await ok(root, ['check', '--fast'])).toBe('store is consistent\n');
  });

  it('finds a file deleted or truncated in a layer cache, names it, and --repair restores it from the blob', async () => {
    const root = await freshStore();
    const [base] = await layersOf(root, 'img:a');
    await rm(join(base!.Diff, 'etc', 'os-release'));
    await truncate(join(base!.Diff, 'data'), 10);
    const fast = await layerfs(root, ['check', '--fast']);
    expect(fast.code).toBe(1);
    expect(fast.stdout).toContain(`holds 10 bytes of file content, the entry says 50008`);
    const full = await layerfs(root, ['check']);
    expect(full.code).toBe(1);
    expect(full.stdout).toContain('/etc/os-release: missing');
    expect(full.stdout).toMatch(/\/data: .*size=10 /);
    expect(full.stdout).toContain('layerfs check --repair');
    // Checking alone changed nothing (the comparison copy is gone again).
    expect(existsSync(join(base!.Diff, 'etc', 'os-release'))).toBe(false);
    const rep = await layerfs(root, ['check', '--repair']);
    expect(rep.code, rep.stdout).toBe(0);
    expect(rep.stdout).toContain('REPAIRED');
    const [fixed] = await layersOf(root, 'img:a');
    expect(await readFile(join(fixed!.Diff, 'etc', 'os-release'), 'utf8')).toBe('ID=test\n');
    expect((await readFile(join(fixed!.Diff, 'data'))).length).toBe(50_000);
    expect(await ok(root, ['check'])).toBe('store is consistent\n');
  });

  it('a damaged entry breaks only its own image, names its path and the fix; --repair rebuilds it from the blob', async () => {
    const root = await freshStore();
    const [, app] = await layersOf(root, 'img:a');
    const sizeFile = join(entryDir(root, app!.ChainID), 'size');
    await writeFile(sizeFile, '');
    for (const verb of [['inspect', 'img:a'], ['history', 'img:a']]) {
      const r = await layerfs(root, verb);
      expect(r.code, verb.join(' ')).not.toBe(0);
      expect(r.stderr).toContain(sizeFile);
      expect(r.stderr).toContain('layerfs check --repair');
    }
    const images = await layerfs(root, ['images']);
    expect(images.stdout).toMatch(/img\s+b/);
    expect(images.stdout).not.toMatch(/img\s+a/);
    expect(images.stderr).toContain(sizeFile);
    expect(await ok(root, ['inspect', 'img:b'])).toContain('"img:b"');
    // cache-id garbage too: the entry is rebuilt from the image config and its blob.
    await writeFile(join(entryDir(root, app!.ChainID), 'cache-id'), 'not-a-cache-id');
    const chk = await layerfs(root, ['check']);
    expect(chk.code).toBe(1);
    expect(chk.stdout).toContain(entryDir(root, app!.ChainID));
    const rep = await layerfs(root, ['check', '--repair']);
    expect(rep.code, rep.stdout).toBe(0);
    const [, again] = await layersOf(root, 'img:a');
    expect(await readFile(join(again!.Diff, 'app'), 'utf8')).toBe('app\n');
    expect(await readFile(sizeFile, 'utf8')).toBe('4');
    // The old cache the garbage entry pointed to went too, once every entry read again.
    expect(rep.stdout).toContain(`${join(root, 'layers', app!.CacheID)}: layer cache no layerdb entry names`);
    expect(existsSync(join(root, 'layers', app!.CacheID))).toBe(false);
    expect(await ok(root, ['check'])).toBe('store is consistent\n');
  });

  it('an altered image config and a container folder without a record are reported', async () => {
    const root = await freshStore();
    const [info] = JSON.parse(await ok(root, ['inspect', 'img:b'])) as { Id: string }[];
    const cfg = join(root, 'image', 'imagedb', 'content', 'sha256', info!.Id.slice(7));
    await writeFile(cfg, (await readFile(cfg, 'utf8')).replace('linux', 'LINUX'));
    const dead = join(root, 'containers', 'a'.repeat(64));
    const { mkdir } = await import('node:fs/promises');
    await mkdir(join(dead, 'upper'), { recursive: true });
    const r = await layerfs(root, ['check', '--fast']);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`${cfg}: image config does not match its id`);
    expect(r.stdout).toContain(`${dead}: container folder without a readable record`);
    await layerfs(root, ['check', '--fast', '--repair']);
    expect(existsSync(dead)).toBe(false);
  });
});
