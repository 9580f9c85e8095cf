/**
 * The lower-index cache of store images: the first `layerfs mount` of an image builds it
 * beside the layerdb entry of the image's top layer and hands its path to the mount
 * process; later mounts reuse the file; `rmi` removes it with the layer; store cleanup
 * removes a dead writer's staging file there but not a live one's.
 */
import { spawn } from 'node:child_process';
import { mkdir, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { cli, cliOk } from '../helpers/cli.js';
import { storeWithSampleImage } from '../helpers/sample-image.js';
import { Store } from '../../src/store/store.js';
import { LowerIndex } from '../../src/union/lower-index.js';

async function fileId(path: string): Promise<string> {
  const st = await stat(path, { bigint: true });
  return `${st.ino}:${st.mtimeNs}`;
}

async function indexFiles(root: string): Promise<string[]> {
  const dir = join(root, 'image', 'layerdb', 'sha256');
  const out: string[] = [];
  for (const chain of await readdir(dir)) if (existsSync(join(dir, chain, 'lower-index'))) out.push(join(dir, chain, 'lower-index'));
  return out;
}

describe.skipIf(!inject('canMount'))('lower index cache of store images', () => {
  let root: string;
  let work: string;
  let cacheFile: string;
  let lowerDirs: string[];

  beforeAll(async () => {
    ({ work, root } = await storeWithSampleImage());
    const store = await Store.open(root);
    const id = await store.resolveImage('sample');
    cacheFile = (await store.lowerIndexCache(id))!;
    lowerDirs = (await store.layerDirs(id)).reverse();
  });

  it('is built by the first mount, passed to the mount process and reused by the next', async () => {
    expect(await indexFiles(root)).toEqual([]);
    const mnt = join(work, 'm1');
    await mkdir(mnt);
    const id = (await cliOk(root, ['mount', '--name', 'c1', 'sample', mnt])).trim();
    try {
      expect(await indexFiles(root)).toEqual([cacheFile]);
      const pid = (JSON.parse(await cliOk(root, ['ps', '-a', '--json'])) as { id: string; pid: number }[]).find((c) => c.id === id)!.pid;
      const argv = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0');
      expect(JSON.parse(argv.find((a) => a.startsWith('{'))!).indexCache).toBe(cacheFile);
      const loaded = await LowerIndex.open(lowerDirs, { cacheFile });
      expect(loaded.origin.loaded).toBe(true);
      expect(loaded.get('/etc/motd')).toBeDefined();
    } finally {
      await cliOk(root, ['umount', 'c1']);
    }
    const before = await fileId(cacheFile);
    await cliOk(root, ['mount', '--name', 'c1', 'sample', mnt]);
    await cliOk(root, ['umount', 'c1']);
    expect(await fileId(cacheFile)).toBe(before);
    await cliOk(root, ['rm', 'c1']);
  });

  it('is rebuilt by the next mount when it is damaged', async () => {
    await writeFile(cacheFile, 'garbage');
    const mnt = join(work, 'm2');
    await mkdir(mnt);
    await cliOk(root, ['mount', '--name', 'c2', 'sample', mnt]);
    await cliOk(root, ['rm', '-f', 'c2']);
    expect((await LowerIndex.open(lowerDirs, { cacheFile })).origin.loaded).toBe(true);
  });

  it('leaves with the layer on rmi', async () => {
    expect(existsSync(cacheFile)).toBe(true);
    await cliOk(root, ['rmi', 'sample']);
    expect(existsSync(cacheFile)).toBe(false);
  });

  it('staging files of dead writers in layerdb entries are cleared, live ones kept', async () => {
    const { root: r2 } = await storeWithSampleImage();
    const chainDir = join(r2, 'image', 'layerdb', 'sha256', (await readdir(join(r2, 'image', 'layerdb', 'sha256'))).find((n) => /^[0-9a-f]{64}$/.test(n))!);
    const child = spawn('sleep', ['30']);
    const dead = spawn('true');
    await new Promise((resolve) => dead.on('exit', resolve));
    try {
      await writeFile(join(chainDir, `.tmp-${child.pid}-abcdef`), 'live writer');
      await writeFile(join(chainDir, `.tmp-${dead.pid}-abcdef`), 'dead writer');
      // Any verb opens the store and clears leftovers while no one holds the lock.
      expect((await cli(r2, ['images'])).code).toBe(0);
      const left = await readdir(chainDir);
      expect(left).toContain(`.tmp-${child.pid}-abcdef`);
      expect(left).not.toContain(`.tmp-${dead.pid}-abcdef`);
    } finally {
      child.kill();
      await rm(join(chainDir, `.tmp-${child.pid}-abcdef`), { force: true });
    }
  });
});
