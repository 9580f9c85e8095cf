/**
 * LOOKUP answered in the layerfs engine's request loop (C) (src/engine/native/lookup.c,
 * native-notes/engine.md "LOOKUP in C"): in directories only the lower layers hold, and in
 * writable-layer directories for names the writable layer has nothing of (no object, no
 * whiteout), on real mounts against the kernel's overlayfs: after the root's first, no
 * LOOKUP reaches JS on a cold walk, and
 * what the loop answers — entries, misses, merged and opaque directories, hard links,
 * symlinks, special files — lstat's as on the kernel, also after the kernel forgot every
 * node and looked them up again (drop_caches), and after changes through the mount below
 * directories the loop looked names up in (copy-up, unlink, create over a cached miss,
 * rename of a directory, a listing). Requests reaching JS are counted with
 * LAYERFS_TRACE_OPS.
 */
import { appendFile, chmod, lstat, mkdir, opendir, readdir, readFile, readlink, rename, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, inject, it } from 'vitest';
import { againstKernel, traced } from '../helpers/engine-mounts.js';
import type { LayerSpec } from '../helpers/layers.js';

/** The fixed mtimes of the layers' files are before this (ms); files the test writes, after. */
const WRITTEN_AFTER = 1_750_000_000_000;

const dropCaches = () => writeFile('/proc/sys/vm/drop_caches', '2');

/** What lstat (and for a file its bytes, for a link its target) says of each path, with
 * st_ino as "same object as the first path that had it" (the two mounts number alike
 * objects differently). */
async function snapshot(mnt: string, paths: string[]): Promise<string[]> {
  const firstByIno = new Map<number, string>();
  const out: string[] = [];
  for (const p of paths) {
    const full = join(mnt, p);
    try {
      const st = await lstat(full);
      const same = firstByIno.get(st.ino);
      if (same === undefined) firstByIno.set(st.ino, p);
      let what = '';
      if (st.isFile()) what = (await readFile(full)).toString('latin1');
      else if (st.isSymbolicLink()) what = await readlink(full);
      out.push(`${p} mode=${st.mode.toString(8)} nlink=${st.nlink} uid=${st.uid} gid=${st.gid} size=${st.isDirectory() ? '-' : st.size} mtime=${!st.isFile() ? '-' : st.mtimeMs < WRITTEN_AFTER ? st.mtimeMs : 'now'} ino=${same ?? 'own'} ${what}`);
    } catch (err) {
      out.push(`${p} ${(err as NodeJS.ErrnoException).code}`);
    }
  }
  return out;
}

describe.skipIf(!inject('canMount'))('LOOKUP in the layerfs engine\'s request loop', () => {
  it('answers names in lower-only directories as the kernel overlayfs does, through forgets and changes, without JS', async () => {
    const bottom: LayerSpec = {};
    const top: LayerSpec = {};
    const paths: string[] = [];
    for (let d = 0; d < 6; d++) {
      for (let f = 0; f < 8; f++) {
        bottom[`a${d % 2}/d${d}/sub/f${f}`] = { content: `bottom ${d}/${f}`, mtime: { sec: 1_700_000_000 + f, nsec: 123_456_789 * d } };
        paths.push(`a${d % 2}/d${d}/sub/f${f}`);
      }
      bottom[`a${d % 2}/d${d}/link`] = { symlink: 'sub/f0' };
      bottom[`a${d % 2}/d${d}/hard1`] = { content: `hard ${d}`, mtime: { sec: 1_600_000_000, nsec: 0 } };
      bottom[`a${d % 2}/d${d}/hard2`] = { hardlink: `a${d % 2}/d${d}/hard1` };
      bottom[`a${d % 2}/d${d}/suid`] = { content: 's', mode: 0o4755, uid: 1000, gid: 1000, mtime: { sec: 1_600_000_001, nsec: 1 } };
      bottom[`a${d % 2}/d${d}/xattr`] = { content: 'x', xattrs: { 'user.k': 'v' }, mtime: { sec: 1_600_000_002, nsec: 2 } };
      bottom[`a${d % 2}/d${d}/fifo`] = { fifo: true };
      paths.push(...['link', 'hard1', 'hard2', 'suid', 'xattr', 'fifo', 'sub', 'missing', 'sub/missing', 'hard1/below', 'missing/below'].map((n) => `a${d % 2}/d${d}/${n}`));
    }
    // Merged across both layers, a whiteout and an opaque directory from the top layer.
    top['a0/d0/sub/f1'] = { content: 'top 0/1', mtime: { sec: 1_600_000_003, nsec: 3 } };
    top['a0/d0/sub/f2'] = { whiteout: true };
    top['a1/d1/sub/'] = { opaque: true };
    top['a1/d1/sub/only-top'] = { content: 'only top', mtime: { sec: 1_600_000_004, nsec: 4 } };
    paths.push('a0/d0/sub/f1', 'a0/d0/sub/f2', 'a1/d1/sub/only-top', 'a1/d1/sub/f3', 'a0', 'a1', 'a0/d0', 'a1/d1');
    const changed = ['a0/d2/sub/new', 'a0/d4-moved/sub/f0', 'a0/d4/sub/f0', 'a1/d3/sub/made/x'];

    const { want, got, trace } = await againstKernel([top, bottom], async (mnt, tracePath) => {
      const cold = await snapshot(mnt, paths);
      const lookupsCold = tracePath ? (await traced(tracePath)).get('lookup') ?? 0 : 0;
      // The kernel forgets every node it can and looks each name up again: the loop must
      // answer with nodes JS has filed (and forgotten) consistently.
      await dropCaches();
      const again = await snapshot(mnt, paths);
      // Changes below directories the loop looked names up in, whose nodes the kernel keeps
      // through a forget (open descriptors hold them): their next LOOKUPs must see the change.
      const held = await Promise.all(['a0/d0/sub', 'a0/d2', 'a0/d2/sub', 'a1/d1', 'a1/d3/sub'].map((d) => opendir(join(mnt, d))));
      let changedOnce: string[];
      try {
        await appendFile(join(mnt, 'a0/d0/sub/f3'), ' appended');
        await chmod(join(mnt, 'a1/d1/hard1'), 0o600);
        await unlink(join(mnt, 'a0/d2/sub/f4'));
        await writeFile(join(mnt, 'a0/d2/missing'), 'over a cached miss');
        await writeFile(join(mnt, 'a0/d2/sub/new'), 'new');
        await mkdir(join(mnt, 'a1/d3/sub/made'));
        await writeFile(join(mnt, 'a1/d3/sub/made/x'), 'x');
        await dropCaches();
        changedOnce = await snapshot(mnt, [...paths, ...changed]);
      } finally {
        for (const h of held) await h.close();
      }
      // A directory's rename (every mark ends), a listing (its directory's mark ends).
      await rename(join(mnt, 'a0/d4'), join(mnt, 'a0/d4-moved'));
      const listed = (await readdir(join(mnt, 'a1/d5/sub'), { withFileTypes: true })).map((e) => e.name).sort();
      const after = await snapshot(mnt, [...paths, ...changed]);
      await dropCaches();
      const afterForget = await snapshot(mnt, [...paths, ...changed]);
      return { cold, again, changedOnce, after, afterForget, listed, lookupsCold };
    });
    expect(got.cold).toEqual(want.cold);
    expect(got.again).toEqual(want.again);
    expect(got.changedOnce).toEqual(want.changedOnce);
    expect(got.after).toEqual(want.after);
    expect(got.afterForget).toEqual(want.afterForget);
    expect(got.listed).toEqual(want.listed);
    // Cold: JS saw the first LOOKUP in the root (which marked it: a directory of the
    // writable layer) and none below it.
    expect(got.lookupsCold).toBeGreaterThan(0);
    expect(got.lookupsCold).toBeLessThanOrEqual(3);
    expect((await traced(trace)).get('lookup') ?? 0).toBeGreaterThan(got.lookupsCold);
  });
});
