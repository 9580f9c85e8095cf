/**
 * Directory opens answered in the layerfs engine's request loop (C) after the first
 * (src/engine/lower-opens.ts, native-notes/engine.md "Directory opens in C"), on real
 * mounts: a warm `find` sends OPENDIR, RELEASEDIR and a lower-only directory's GETATTR to
 * JS no more, a warm `tar` no GETATTR of lower-only symlinks either, and a directory opened by the request loop and then changed through the
 * mount (create, unlink of a lower entry, rename in and out, chmod, an opaque replacement,
 * a rename of the directory itself) lists and stats as on the kernel's overlayfs — also
 * through a descriptor opened before the change. Requests reaching JS are counted with
 * LAYERFS_TRACE_OPS.
 */
import { execFile } from 'node:child_process';
import { chmod, lstat, lutimes, mkdir, opendir, readFile, readdir, readlink, rename, rm, stat, symlink, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, inject, it } from 'vitest';
import { againstKernel, engineMount, traced } from '../helpers/engine-mounts.js';
import type { LayerSpec } from '../helpers/layers.js';
import { tempDir } from '../helpers/temp.js';

const run = promisify(execFile);

async function find(mnt: string): Promise<string[]> {
  const { stdout } = await run('find', ['.'], { cwd: mnt, maxBuffer: 1 << 24 });
  return stdout.split('\n').filter((l) => l !== '').sort();
}

describe.skipIf(!inject('canMount'))('directory opens answered by the layerfs engine\'s request loop', () => {
  it('a warm find or tar reaches JS with no OPENDIR and no GETATTR of lower-only directories and symlinks', async () => {
    const bottom: LayerSpec = {};
    const top: LayerSpec = {};
    for (let d = 0; d < 30; d++) {
      for (let f = 0; f < 5; f++) bottom[`a${d % 3}/d${d}/f${f}`] = `${d}/${f}`;
      if (d % 10 === 0) top[`a${d % 3}/d${d}/top`] = 'top';
      bottom[`a${d % 3}/d${d}/link`] = { symlink: 'f0' };
    }
    const dir = await tempDir('layerfs-dir-opens-trace-');
    const trace = join(dir, 'ops');
    const m = await engineMount([top, bottom], { LAYERFS_TRACE_OPS: trace });
    try {
      const first = await find(m.mnt);
      const dirs = first.filter((p) => !/\/(f\d|top|link)$/.test(p)).length;
      expect(dirs).toBe(34); // the root, a0..a2, d0..d29
      const after1 = await traced(trace);
      // Each directory's first OPENDIR reached JS (find may open one twice: the second is C's).
      expect(after1.get('opendir')).toBe(dirs);
      for (let i = 0; i < 2; i++) expect(await find(m.mnt)).toEqual(first);
      const after3 = await traced(trace);
      // Every later OPENDIR was the request loop's, and so was every GETATTR (the kernel
      // asks for a directory's attributes again after reading its cached listing), but
      // those of the root, which the writable layer holds (not constant).
      expect(after3.get('opendir')).toBe(after1.get('opendir'));
      expect((after3.get('getattr') ?? 0) - (after1.get('getattr') ?? 0)).toBeLessThanOrEqual(2);
      expect((after3.get('readdirplus') ?? 0) + (after3.get('readdir') ?? 0)).toBe((after1.get('readdirplus') ?? 0) + (after1.get('readdir') ?? 0));
      // tar reads every link (READLINK, which invalidates its atime in the kernel) and
      // lstats it next time: after the first run, those GETATTRs are the loop's too.
      const tar = async () => (await run('sh', ['-c', 'tar -cf - . | sha256sum'], { cwd: m.mnt })).stdout;
      const sum = await tar();
      const tar1 = await traced(trace);
      for (let i = 0; i < 2; i++) expect(await tar()).toBe(sum);
      const tar3 = await traced(trace);
      expect(tar1.get('readlink')).toBeGreaterThanOrEqual(30);
      expect((tar3.get('getattr') ?? 0) - (tar1.get('getattr') ?? 0)).toBeLessThanOrEqual(4);
      expect(tar3.get('opendir')).toBe(after1.get('opendir'));
      expect(tar3.get('open')).toBe(tar1.get('open'));
    } finally {
      await m.close();
    }
  });

  it('a create or mkdir below lower-only directories the loop answers GETATTR for shows their new attributes, and keeps the lower files\' registrations', async () => {
    // A CREATE or MKDIR ends no registration (lower-opens.ts ADDS_NAME); the directories
    // it copies up lose theirs as they are copied (a merged directory has nlink 1, a new
    // mtime): with the index's attributes still answered, nlink and mtime would be stale.
    const specs: LayerSpec[] = [{ 'dir/a': 'a', 'dir/deep/f': 'f', 'dir/deep/inner/g': 'g', 'dir/sub/s': 's' }];
    const probe = async (mnt: string, between = async () => {}) => {
      const p = (n: string) => join(mnt, n);
      const out: unknown[] = [];
      const attrs = async (n: string) => {
        const st = await stat(p(n));
        return { nlink: st.nlink, mode: st.mode, size: st.isDirectory() ? 'dir' : st.size, mtimeMs: st.mtimeMs };
      };
      // Listed and stat'ed twice: on the engine the second OPENDIR and GETATTR are the loop's.
      for (const n of ['dir', 'dir/deep', 'dir/deep/inner', 'dir/sub']) for (let i = 0; i < 2; i++) await readdir(p(n));
      const before = { dir: await attrs('dir'), deep: await attrs('dir/deep'), inner: await attrs('dir/deep/inner'), sub: await attrs('dir/sub') };
      out.push(await readFile(p('dir/a'), 'latin1'));
      await between();
      await mkdir(p('dir/made'));
      await writeFile(p('dir/deep/inner/new'), 'new');
      await symlink('a', p('dir/sub/ln'));
      for (const [n, was] of Object.entries({ dir: before.dir, 'dir/deep': before.deep, 'dir/deep/inner': before.inner, 'dir/sub': before.sub })) {
        const now = await attrs(n);
        out.push(n, now.nlink, now.mode, now.mtimeMs !== was.mtimeMs);
      }
      out.push(await readFile(p('dir/a'), 'latin1'), (await readdir(p('dir'))).sort(), (await readdir(p('dir/deep/inner'))).sort());
      return out;
    };
    let opens = -1;
    const { want, got, trace } = await againstKernel(specs, (mnt, trace) =>
      probe(mnt, async () => {
        if (trace) opens = (await traced(trace)).get('open') ?? 0;
      }),
    );
    expect(got).toEqual(want);
    // dir/a, registered at its LOOKUP, was read again after the creates without JS.
    expect((await traced(trace)).get('open') ?? 0).toBe(opens);
  });

  it('a writable-layer directory\'s GETATTR after creates inside is the loop\'s lstat, and shows what the kernel\'s overlayfs shows', async () => {
    // The kernel asks for a directory's attributes again after every create in it; after
    // the first reached JS, the loop answers with an lstat of the backing directory, shaped
    // as the union shapes it: a merged directory keeps its lower st_ino and shows one link.
    const specs: LayerSpec[] = [{ 'merged/a': 'a', 'merged/sub/x': 'x' }];
    const probe = async (mnt: string, checkpoint = async (_: string) => {}) => {
      const p = (n: string) => join(mnt, n);
      const out: unknown[] = [];
      let last = new Map<string, { ino: number; mtimeMs: number }>();
      const attrs = async (n: string) => {
        const st = await stat(p(n));
        const was = last.get(n);
        last.set(n, { ino: st.ino, mtimeMs: st.mtimeMs });
        out.push(n, st.nlink, (st.mode & 0o7777).toString(8), was === undefined ? 'first' : [st.ino === was.ino, st.mtimeMs !== was.mtimeMs]);
      };
      await mkdir(p('new'));
      for (const d of ['new', 'merged']) {
        // After a create the kernel asks (mkdir's reply gave it the new directory's).
        await writeFile(p(`${d}/made`), 'm');
        await attrs(d);
        await checkpoint(`${d} first`);
        for (let k = 0; k < 5; k++) {
          await writeFile(p(`${d}/f${k}`), `${k}`);
          await attrs(d);
        }
        await checkpoint(`${d} creates`);
        await mkdir(p(`${d}/sd`));
        await attrs(d);
        await rename(p(`${d}/f0`), p(`${d}/g0`));
        await attrs(d);
        await unlink(p(`${d}/f1`));
        await attrs(d);
        await rm(p(`${d}/sd`), { recursive: true });
        await attrs(d);
        await chmod(p(d), 0o750);
        await attrs(d);
        await writeFile(p(`${d}/after-chmod`), 'c');
        await attrs(d);
      }
      await rename(p('new'), p('renamed'));
      last = new Map();
      await attrs('renamed');
      await writeFile(p('renamed/h'), 'h');
      await attrs('renamed');
      out.push((await readdir(p('renamed'))).sort(), (await readdir(p('merged'))).sort());
      return out;
    };
    const getattrs = new Map<string, number>();
    const { want, got } = await againstKernel(specs, (mnt, trace) =>
      probe(mnt, async (step) => {
        if (trace) getattrs.set(step, (await traced(trace)).get('getattr') ?? 0);
      }),
    );
    expect(got).toEqual(want);
    // Five creates and five stats of each directory: no GETATTR of it reached JS.
    expect(getattrs.get('new creates')).toBe(getattrs.get('new first'));
    expect(getattrs.get('merged creates')).toBe(getattrs.get('merged first'));
  });

  it('a directory opened by the request loop and changed through the mount lists and stats as on the kernel overlayfs', async () => {
    const specs: LayerSpec[] = [
      { 'dir/top': 'top', 'dir/sub/s': 's' },
      { 'dir/a': 'a', 'dir/b': 'b', 'dir/sub/t': 't', 'dir/gone/g': 'g', 'other/o': 'o', 'other/p': 'p', 'dir/ln': { symlink: 'a' }, 'dir/ln2': { symlink: 'b' } },
    ];
    const probe = async (mnt: string, checkpoint = async () => {}) => {
      const p = (n: string) => join(mnt, n);
      const out: unknown[] = [];
      const list = async (n: string): Promise<string[]> => {
        try {
          return (await readdir(p(n), { withFileTypes: true })).map((e) => `${e.name}:${e.isDirectory() ? 'd' : 'f'}`).sort();
        } catch (e) {
          return [String((e as NodeJS.ErrnoException).code)];
        }
      };
      const mode = async (n: string) => ((await stat(p(n))).mode & 0o7777).toString(8);
      const link = async (n: string) => {
        try {
          const st = await lstat(p(n));
          return `${await readlink(p(n))} ${st.size} ${st.mtimeMs < 1e7 ? st.mtimeMs : 'now'}`;
        } catch (e) {
          return (e as NodeJS.ErrnoException).code;
        }
      };
      // Read and lstat'ed twice: on the engine the second lstat is the request loop's.
      out.push(await link('dir/ln'), await link('dir/ln'), await link('dir/ln2'), await link('dir/ln2'));
      // Opened and listed twice each: on the engine the second OPENDIR is the request loop's.
      for (const n of ['dir', 'dir', 'dir/sub', 'dir/sub', 'other', 'other']) out.push(await list(n), await mode(n));
      // Descriptors the request loop opened, read only after the changes below.
      const held = await opendir(p('dir'));
      const heldOther = await opendir(p('other'));
      await checkpoint();
      await writeFile(p('dir/new'), 'new');
      out.push(await list('dir'), await list('dir'));
      await unlink(p('dir/a'));
      out.push(await list('dir'), await list('dir'));
      await rename(p('dir/b'), p('other/b'));
      out.push(await list('dir'), await list('other'), await list('other'));
      await chmod(p('dir'), 0o711);
      out.push(await list('dir'), await mode('dir'), await mode('dir'));
      await chmod(p('other'), 0o700);
      out.push(await list('other'), await mode('other'), await list('other'), await mode('other'));
      // An opaque directory: the lower one removed, a new one made in its place.
      await rm(p('dir/gone'), { recursive: true });
      await mkdir(p('dir/gone'));
      out.push(await list('dir'), await list('dir/gone'), await list('dir/gone'));
      await writeFile(p('dir/gone/x'), 'x');
      out.push(await list('dir/gone'), await list('dir/gone'));
      const heldNames: string[] = [];
      for await (const e of held) heldNames.push(e.name);
      out.push(heldNames.sort());
      const heldOtherNames: string[] = [];
      for await (const e of heldOther) heldOtherNames.push(e.name);
      out.push(heldOtherNames.sort());
      await rename(p('dir/sub'), p('sub2'));
      out.push(await list('sub2'), await list('sub2'), await list('dir/sub'), await list('dir'));
      // Links replaced, renamed over, retimed after the loop answered their GETATTR.
      await unlink(p('dir/ln'));
      await symlink('a-much-longer-target', p('dir/ln'));
      out.push(await link('dir/ln'), await link('dir/ln'));
      await lutimes(p('dir/ln'), 1000, 2000);
      out.push(await link('dir/ln'), await link('dir/ln'));
      await rename(p('dir/ln'), p('dir/ln2'));
      out.push(await link('dir/ln2'), await link('dir/ln2'), await link('dir/ln'));
      await rm(p('other'), { recursive: true });
      out.push(await list('other'), await list('.'));
      return out;
    };
    let before = 0;
    const { want, got } = await againstKernel(specs, (mnt, trace) =>
      probe(mnt, async () => {
        // Three opens of each directory so far (two listings, one held): at most the first
        // of each reached JS (none of a directory the loop looked up: its LOOKUP registered
        // its OPENDIR, native-notes/engine.md "LOOKUP in C").
        if (trace) before = (await traced(trace)).get('opendir') ?? 0;
      }),
    );
    expect(got).toEqual(want);
    expect(before).toBeGreaterThan(0);
    expect(before).toBeLessThanOrEqual(3);
  });
});
