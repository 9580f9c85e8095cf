/**
 * A layer cache damaged by hand under a running mount (issue 18, point 3): a file deleted
 * and a file truncated in `layers/<id>/diff`. The mount answers EIO for those paths — never
 * the index's stale size with missing data — logs each layer and path once to the
 * container's mount.log, records containers/<id>/damage.json, and `ps` and `check` say so.
 * Both with the native fast path (whose open hands a file that is not what the index
 * says to JS) and without it (LAYERFS_NATIVE_FAST_PATH=0): the check is the union's.
 */
import { mkdir, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { LAYERFS, runNode } from '../helpers/cli.js';
import { makeTar, writeOciLayout } from '../helpers/images.js';
import { layersOf } from '../helpers/store-layers.js';
import { tempDir } from '../helpers/temp.js';

let work: string;
let root: string;
let env: NodeJS.ProcessEnv = process.env;

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return runNode(LAYERFS, ['--root', root, ...args], { env });
}

async function errnoOf(p: Promise<unknown>): Promise<string | undefined> {
  return p.then(() => undefined, (e: NodeJS.ErrnoException) => e.code);
}

beforeAll(async () => {
  work = await tempDir('layerfs-damage-');
  const layout = join(work, 'img');
  await writeOciLayout(layout, [{ tar: await makeTar([{ name: 'etc/', type: 'directory' }, { name: 'etc/os-release', data: 'ID=test\n' }, { name: 'big', data: Buffer.alloc(100_000, 1) }, { name: 'fine', data: 'fine\n' }]) }], { tag: 'd' });
}, 120_000);

describe.skipIf(!inject('canMount'))('a damaged layer under a mount', () => {
  it.each([
    ['with the native fast path', '1'],
    ['with every request through JS', '0'],
  ])('%s: answers EIO for the damaged paths, logs each once, records damage.json; ps and check report it', async (_what, fast) => {
    env = { ...process.env, LAYERFS_NATIVE_FAST_PATH: fast };
    root = join(work, `store-${fast}`);
    expect((await cli(['load', '-i', join(work, 'img'), '--name', 'dmg'])).code).toBe(0);
    const mnt = join(work, `mnt-${fast}`);
    await mkdir(mnt);
    const m = await cli(['mount', 'dmg:d', mnt, '--name', 'victim']);
    expect(m.code, m.stderr).toBe(0);
    try {
      const [layer] = await layersOf(root, 'dmg:d');
      await rm(join(layer!.Diff, 'etc', 'os-release'));
      await truncate(join(layer!.Diff, 'big'), 10);
      for (let i = 0; i < 2; i++) {
        expect(await errnoOf(readFile(join(mnt, 'etc', 'os-release')))).toBe('EIO');
        expect(await errnoOf(readFile(join(mnt, 'big')))).toBe('EIO');
      }
      expect(await readFile(join(mnt, 'fine'), 'utf8')).toBe('fine\n');
      // Looked up again once the kernel forgot them: still EIO (the request loop, which
      // answers LOOKUPs from the index, stops at the first damage: engine.md "LOOKUP in C").
      await writeFile('/proc/sys/vm/drop_caches', '2');
      expect(await errnoOf(stat(join(mnt, 'big')))).toBe('EIO');
      expect(await errnoOf(stat(join(mnt, 'etc', 'os-release')))).toBe('EIO');
      expect((await stat(join(mnt, 'fine'))).size).toBe(5);

      const [info] = JSON.parse((await cli(['ps', '--json'])).stdout) as { id: string; damage?: { layer: string; path: string } }[];
      const dir = join(root, 'containers', info!.id);
      const log = await readFile(join(dir, 'mount.log'), 'utf8');
      expect(log.match(/damaged layer .*"\/big"/g)).toHaveLength(1);
      expect(log.match(/damaged layer .*"\/etc\/os-release"/g)).toHaveLength(1);
      expect(log).toContain(layer!.Diff);
      expect(log).not.toMatch(/Error|uncaught/);
      expect(info!.damage?.layer).toBe(layer!.Diff);
      expect(['/big', '/etc/os-release']).toContain(info!.damage?.path);
      expect((await cli(['ps'])).stdout).toContain('dmg:d (image damaged)');
      const chk = await cli(['check', '--fast']);
      expect(chk.code).toBe(1);
      expect(chk.stdout).toContain(join(dir, 'damage.json'));
    } finally {
      await cli(['umount', mnt]);
    }
  });
});
