/**
 * Copy-up durability on a real mount: by default the copied data is on disk before the
 * file is renamed into the writable layer (as with kernel overlayfs), so cachestat(2)
 * finds none of the upper file's pages dirty or under writeback right after the copy-up;
 * with LAYERFS_COPY_UP_FSYNC=0 the flush is skipped and the pages are still dirty.
 * chmod triggers the copy-up because it copies the data without writing any itself.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, inject, it } from 'vitest';
import { makeLayers } from '../helpers/layers.js';
import { tempDir } from '../helpers/temp.js';
import { mountUnion } from '../helpers/union-mount.js';

const run = promisify(execFile);
const MiB = 1024 * 1024;

interface PageState {
  cache: number;
  dirty: number;
  writeback: number;
}

/** The upper file's page-cache state, or undefined on a kernel without cachestat (< 6.5). */
async function pageState(path: string): Promise<PageState | undefined> {
  const { stdout } = await run(inject('nativeProbes'), ['cachestat', path]);
  const m = /^ok cache (\d+) dirty (\d+) writeback (\d+)/.exec(stdout);
  if (!m) {
    if (/ENOSYS/.test(stdout)) return undefined;
    throw new Error(`cachestat ${path}: ${stdout}`);
  }
  return { cache: Number(m[1]), dirty: Number(m[2]), writeback: Number(m[3]) };
}

async function layersWith(names: string[], size = 16 * MiB) {
  const data = new Map(names.map((n) => [n, randomBytes(size)]));
  const layers = await makeLayers([{ 'keep': 'k' }]);
  for (const [n, bytes] of data) await writeFile(join(layers.lowers[0]!, n), bytes);
  return { layers, data };
}

describe.skipIf(!inject('canMount'))('copy-up durability', () => {
  // A small file (at most 64 KiB) is copied up by one native call (src/sys/native/copy-up-small.c),
  // a big one by the general path: both flush.
  it.for([
    ['a big file', 16 * MiB],
    ['a small file', 20 * 1024],
  ] as const)('flushes the copied data of %s before the rename by default', async ([, size], ctx) => {
    const dir = await tempDir();
    const { layers, data } = await layersWith(['f'], size);
    const m = await mountUnion({ lowerDirs: layers.lowers, upperDir: layers.upper, workDir: layers.work }, dir);
    try {
      await chmod(join(m.mountpoint, 'f'), 0o600);
      const state = await pageState(join(layers.upper, 'f'));
      if (state === undefined) ctx.skip('this kernel has no cachestat(2) (Linux 6.5+)');
      // The copy went through the page cache (so `dirty 0` is a finding, not an empty cache).
      expect(state!.cache).toBeGreaterThan(0);
      expect({ dirty: state!.dirty, writeback: state!.writeback }).toEqual({ dirty: 0, writeback: 0 });
      expect((await readFile(join(m.mountpoint, 'f'))).equals(data.get('f')!)).toBe(true);
    } finally {
      await m.stop();
      await layers.cleanup();
    }
  });

  // it.for (not it.each): only it.for hands the test context to the handler, which
  // ctx.skip needs.
  it.for([
    ['LAYERFS_COPY_UP_FSYNC=0', { LAYERFS_COPY_UP_FSYNC: '0' }, false],
    ['a volatile mount (run --rm)', undefined, true],
  ] as const)('leaves the data to the kernel\'s writeback with %s', async ([, env, isVolatile], ctx) => {
    const dir = await tempDir();
    // Several files: a sync(2) by anything else on the machine can flush one of them
    // between the copy-up and the probe; it cannot plausibly hit every one.
    const names = ['v1', 'v2', 'v3'];
    const { layers, data } = await layersWith(names);
    const config = { lowerDirs: layers.lowers, upperDir: layers.upper, workDir: layers.work, ...(isVolatile ? { volatile: true } : {}) };
    const m = await mountUnion(config, dir, env);
    try {
      const unflushed: string[] = [];
      for (const n of names) {
        await chmod(join(m.mountpoint, n), 0o600);
        const state = await pageState(join(layers.upper, n));
        if (state === undefined) ctx.skip('this kernel has no cachestat(2) (Linux 6.5+)');
        if (state!.dirty + state!.writeback > 0) unflushed.push(n);
      }
      expect(unflushed.length).toBeGreaterThan(0);
      for (const n of names) expect((await readFile(join(m.mountpoint, n))).equals(data.get(n)!)).toBe(true);
    } finally {
      await m.stop();
      await layers.cleanup();
    }
  });
});
