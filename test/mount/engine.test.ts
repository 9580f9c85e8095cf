/**
 * What the layerfs FUSE engine (src/engine/) adds over fuse-native, on real mounts:
 * one kernel inode per hard-linked object, renameat2 flags as on the kernel's overlayfs,
 * FUSE passthrough (no READ/WRITE request reaches the engine, the lower layer untouched),
 * fstat of an unlinked file, and requests of 1 MiB. The engine's requests are counted with
 * LAYERFS_TRACE_OPS (one line per request that reaches the dispatcher's handlers).
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmod, link, mkdir, open, readFile, rename, stat, unlink, writeFile, appendFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, inject, it } from 'vitest';
import { sys } from '../../src/union/sys.js';
import { engineMount, kernelMount, traced } from '../helpers/engine-mounts.js';
import type { LayerSpec } from '../helpers/layers.js';
import { errnoName } from '../helpers/oracle.js';
import { tempDir } from '../helpers/temp.js';

const run = promisify(execFile);
const MiB = 1 << 20;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe.skipIf(!inject('canMount'))('the layerfs engine on a real mount', () => {
  it('gives all names of a hard-linked object one inode, whose changes show through every name at once', async () => {
    const m = await engineMount([{ 'a/file': 'lower', 'a/link': { hardlink: 'a/file' } }]);
    try {
      const [f, l] = [await stat(join(m.mnt, 'a/file')), await stat(join(m.mnt, 'a/link'))];
      expect(l.ino).toBe(f.ino);
      expect([f.nlink, l.nlink]).toEqual([2, 2]);
      // Made in the writable layer: each change through one name shows through the others,
      // with no wait (the kernel's attribute cache holds for an hour).
      await writeFile(join(m.mnt, 'u'), 'one');
      await link(join(m.mnt, 'u'), join(m.mnt, 'v'));
      expect((await stat(join(m.mnt, 'u'))).nlink).toBe(2);
      expect((await stat(join(m.mnt, 'v'))).ino).toBe((await stat(join(m.mnt, 'u'))).ino);
      await chmod(join(m.mnt, 'v'), 0o600);
      expect((await stat(join(m.mnt, 'u'))).mode & 0o7777).toBe(0o600);
      await appendFile(join(m.mnt, 'u'), ' two');
      expect((await stat(join(m.mnt, 'v'))).size).toBe(7);
      await link(join(m.mnt, 'v'), join(m.mnt, 'a', 'w'));
      expect((await stat(join(m.mnt, 'u'))).nlink).toBe(3);
      await unlink(join(m.mnt, 'v'));
      expect((await stat(join(m.mnt, 'u'))).nlink).toBe(2);
      expect((await stat(join(m.mnt, 'a', 'w'))).nlink).toBe(2);
      expect(await readFile(join(m.mnt, 'a', 'w'), 'utf8')).toBe('one two');
    } finally {
      await m.close();
    }
  });

  it('answers renameat2 NOREPLACE, EXCHANGE and WHITEOUT as the kernel overlayfs does', async () => {
    const specs: LayerSpec[] = [{ 'a': 'A', 'b': 'B', 'd/x': 'X', 'e/': {} }];
    const ops: [string, string, number][] = [
      ['a', 'b', 1], // NOREPLACE onto an existing name: EEXIST
      ['a', 'c', 1], // NOREPLACE to a new name
      ['c', 'b', 2], // EXCHANGE two files
      ['d', 'b', 2], // EXCHANGE a directory with a file
      ['b', 'nothing', 2], // EXCHANGE with a missing name: ENOENT
      ['e', 'f', 4], // WHITEOUT
      ['d', 'g', 3], // NOREPLACE|EXCHANGE: EINVAL
    ];
    const outcome = async (mnt: string) => {
      const results: string[] = [];
      for (const [from, to, flags] of ops) {
        results.push(await sys.renameat2(join(mnt, from), join(mnt, to), flags).then(() => 'ok', (e: unknown) => errnoName(e)));
      }
      const names = (await readdir(mnt)).sort();
      const contents = await Promise.all(names.map(async (n) => `${n}:${(await stat(join(mnt, n))).isDirectory() ? (await readdir(join(mnt, n))).join(',') : await readFile(join(mnt, n), 'utf8')}`));
      return { results, contents };
    };
    const k = await kernelMount(specs);
    const m = await engineMount(specs);
    try {
      const want = await outcome(k.mnt);
      expect(want.results.slice(0, 5)).toEqual(['EEXIST', 'ok', 'ok', 'ok', 'ENOENT']);
      expect(await outcome(m.mnt)).toEqual(want);
    } finally {
      await m.close();
      await k.close();
    }
  });

  it('answers xattrs of objects without any from the request loop, and stops once one is set through any name', async () => {
    const files = Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`d/f${i}`, `file ${i}`]));
    const specs: LayerSpec[] = [{ ...files, 'd/link': { hardlink: 'd/f0' } }];
    const probe = async (mnt: string, name: string) => {
      const p = join(mnt, name);
      const v = await sys.lgetxattr(p, 'user.k').then((b) => (b === null ? 'ENODATA' : b.toString()), (e: unknown) => errnoName(e));
      return `${name}=${v} [${(await sys.llistxattr(p)).join(',')}]`;
    };
    const outcome = async (mnt: string) => {
      const seen: string[] = [];
      // `ls -l` twice: the second round is answered without JS on the engine.
      for (let round = 0; round < 2; round++) {
        await run('ls', ['-l', join(mnt, 'd')]);
        for (const f of ['d/f1', 'd/f2', 'd/link']) seen.push(await probe(mnt, f));
      }
      await sys.lsetxattr(join(mnt, 'd/f1'), 'user.k', Buffer.from('one'));
      await sys.lsetxattr(join(mnt, 'd/link'), 'user.k', Buffer.from('shared'));
      await mkdir(join(mnt, 'n'));
      await writeFile(join(mnt, 'n/f'), 'x');
      seen.push(await probe(mnt, 'n/f'));
      await link(join(mnt, 'n/f'), join(mnt, 'n/g'));
      await sys.lsetxattr(join(mnt, 'n/g'), 'user.k', Buffer.from('via g'));
      for (const f of ['d/f1', 'd/f2', 'd/link', 'd/f0', 'n/f', 'n/g']) seen.push(await probe(mnt, f));
      await sys.lremovexattr(join(mnt, 'd/f1'), 'user.k');
      seen.push(await probe(mnt, 'd/f1'));
      return seen;
    };
    const dir = await tempDir('layerfs-engine-xattr-');
    const trace = join(dir, 'ops');
    const k = await kernelMount(specs);
    const m = await engineMount(specs, { LAYERFS_TRACE_OPS: trace });
    try {
      const want = await outcome(k.mnt);
      expect(want).toContain('n/f=via g [user.k]');
      expect(await outcome(m.mnt)).toEqual(want);
      // 21 names listed twice by ls -l (2 getxattr each) and probed: far fewer reached JS.
      expect(((await traced(trace)).get('getxattr') ?? 0)).toBeLessThan(21);
    } finally {
      await m.close();
      await k.close();
    }
  });

  it('knows a created object has no xattrs: the probes of its first write and of ls -l stay in the request loop', async () => {
    const dir = await tempDir('layerfs-engine-xattr-new-');
    const trace = join(dir, 'ops');
    const m = await engineMount([{ 'd/lower': 'x' }], { LAYERFS_TRACE_OPS: trace });
    try {
      await mkdir(join(m.mnt, 'n'));
      // Each write of a new file makes the kernel ask security.capability (to drop it).
      for (let i = 0; i < 50; i++) await writeFile(join(m.mnt, 'n', `f${i}`), `${i}`);
      await run('ls', ['-l', join(m.mnt, 'n')]);
      expect(await sys.lgetxattr(join(m.mnt, 'n', 'f7'), 'user.k')).toBeNull();
      const ops = await traced(trace);
      expect(ops.get('create')).toBe(50);
      expect(ops.get('getxattr') ?? 0).toBeLessThan(5);
    } finally {
      await m.close();
    }
  });

  it('serves a 64 MiB read and write by passthrough: no READ or WRITE reaches the engine, the lower stays byte-identical', async () => {
    const dir = await tempDir('layerfs-engine-trace-');
    const trace = join(dir, 'ops');
    const data = randomBytes(64 * MiB);
    const m = await engineMount([{ big: { content: data } }], { LAYERFS_TRACE_OPS: trace });
    try {
      expect(m.stderr()).toMatch(/passthrough on/);
      expect(sha(await readFile(join(m.mnt, 'big')))).toBe(sha(data));
      // A write open of the lower file copies it up first; the write then goes to the copy.
      const fh = await open(join(m.mnt, 'big'), 'r+');
      const other = randomBytes(64 * MiB);
      await fh.write(other, 0, other.length, 0);
      await fh.sync();
      await fh.close();
      await writeFile(join(m.mnt, 'new'), other);
      expect(sha(await readFile(join(m.mnt, 'big')))).toBe(sha(other));
      expect(sha(await readFile(join(m.mnt, 'new')))).toBe(sha(other));
      const ops = await traced(trace);
      expect(ops.get('open')).toBeGreaterThanOrEqual(3);
      expect([ops.get('read') ?? 0, ops.get('write') ?? 0]).toEqual([0, 0]);
      expect(sha(await readFile(join(m.layers.lowers[0]!, 'big')))).toBe(sha(data));
      expect(sha(await readFile(join(m.layers.upper, 'big')))).toBe(sha(other));
    } finally {
      await m.close();
    }
  });

  it('answers fstat of a file whose last name was unlinked, as the kernel overlayfs does', async () => {
    const specs: LayerSpec[] = [{ lower: 'from the layer' }];
    const probe = async (mnt: string) => {
      await writeFile(join(mnt, 'upper'), 'made here');
      const out: unknown[] = [];
      for (const name of ['upper', 'lower']) {
        const fh = await open(join(mnt, name), 'r');
        await unlink(join(mnt, name));
        const st = await fh.stat();
        out.push({ name, nlink: st.nlink, size: st.size, content: (await fh.readFile()).toString() });
        await fh.close();
      }
      return out;
    };
    const k = await kernelMount(specs);
    const m = await engineMount(specs);
    try {
      const want = await probe(k.mnt);
      expect(want[0]).toMatchObject({ nlink: 0, size: 9 });
      expect(await probe(m.mnt)).toEqual(want);
    } finally {
      await m.close();
      await k.close();
    }
  });

  it('takes reads and writes in requests of 1 MiB when they go through the engine', async () => {
    const dir = await tempDir('layerfs-engine-trace-');
    const trace = join(dir, 'ops');
    const data = randomBytes(64 * MiB);
    // Fast path off: no passthrough, every READ and WRITE reaches the engine's JS.
    const m = await engineMount([{ big: { content: data } }], { LAYERFS_TRACE_OPS: trace, LAYERFS_NATIVE_FAST_PATH: '0' });
    try {
      await run('dd', [`if=${join(m.mnt, 'big')}`, 'of=/dev/null', 'bs=4M', 'iflag=direct']);
      await run('dd', ['if=/dev/zero', `of=${join(m.mnt, 'out')}`, 'bs=4M', 'count=16', 'oflag=direct']);
      const ops = await traced(trace);
      // 64 MiB in 1 MiB requests: 64 each (libfuse 2.9's 128 KiB would take 512).
      expect(ops.get('read')).toBeGreaterThanOrEqual(64);
      expect(ops.get('read')).toBeLessThanOrEqual(66);
      expect(ops.get('write')).toBe(64);
      expect((await stat(join(m.mnt, 'out'))).size).toBe(64 * MiB);
      expect(sha(await readFile(join(m.layers.lowers[0]!, 'big')))).toBe(sha(data));
    } finally {
      await m.close();
    }
  });

  it('keeps renamed directories and their children reachable by node (paths follow renames)', async () => {
    const m = await engineMount([{ 'p/q/r': 'deep' }]);
    try {
      const fh = await open(join(m.mnt, 'p/q/r'), 'r');
      await rename(join(m.mnt, 'p'), join(m.mnt, 'p2'));
      expect((await fh.stat()).size).toBe(4);
      expect(await readFile(join(m.mnt, 'p2/q/r'), 'utf8')).toBe('deep');
      await writeFile(join(m.mnt, 'p2/q/s'), 'new');
      expect((await readdir(join(m.mnt, 'p2/q'))).sort()).toEqual(['r', 's']);
      await fh.close();
    } finally {
      await m.close();
    }
  });
});
