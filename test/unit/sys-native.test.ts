// The native syscall addon against the real filesystem under os.tmpdir() (no mounts).
import { execFile } from 'node:child_process';
import { constants as C, existsSync, statSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { hasErrnoCode } from '../../src/core/errors.js';
import {
  COPY_UP_SMALL_MAX, copyFileRange, copyUpSmall, dirStamps, fadvise, ficlone, futimens, lgetxattr, llistxattr, lremovexattr, lseek, lsetxattr, major,
  makedev, minor, mknod, POSIX_FADV_SEQUENTIAL, RENAME_EXCHANGE, RENAME_NOREPLACE, RENAME_WHITEOUT,
  renameat2, SEEK_DATA, SEEK_HOLE, setInline, type SmallCopyUp, utimens, XATTR_CREATE, XATTR_REPLACE,
} from '../../src/sys/native.js';

const isRoot = process.getuid?.() === 0;
let dir: string;

beforeEach(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'layerfs-sys-'));
});
afterEach(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

/** Resolves the rejection of `p` (fails the test if `p` resolves). */
async function rejection(p: Promise<unknown>): Promise<NodeJS.ErrnoException> {
  try {
    await p;
  } catch (err) {
    return err as NodeJS.ErrnoException;
  }
  throw new Error('expected a rejection');
}

async function file(name: string, content = 'x'): Promise<string> {
  const p = path.join(dir, name);
  await fs.writeFile(p, content);
  return p;
}

describe('xattrs', () => {
  it('round-trips user.* values, lists, removes, and answers null for absent names', async () => {
    const p = await file('f');
    expect(await lgetxattr(p, 'user.absent')).toBeNull();
    const big = Buffer.alloc(3000, 0xab);
    await lsetxattr(p, 'user.a', Buffer.from([0, 1, 2, 0xff]));
    await lsetxattr(p, 'user.empty', Buffer.alloc(0));
    await lsetxattr(p, 'user.big', big);
    expect(await lgetxattr(p, 'user.a')).toEqual(Buffer.from([0, 1, 2, 0xff]));
    expect(await lgetxattr(p, 'user.empty')).toEqual(Buffer.alloc(0));
    expect(await lgetxattr(p, 'user.big')).toEqual(big);
    expect((await llistxattr(p)).sort()).toEqual(['user.a', 'user.big', 'user.empty']);
    await lremovexattr(p, 'user.a');
    expect(await lgetxattr(p, 'user.a')).toBeNull();
    expect((await llistxattr(p)).sort()).toEqual(['user.big', 'user.empty']);
    expect((await rejection(lremovexattr(p, 'user.a'))).code).toBe('ENODATA');
  });

  it('honours XATTR_CREATE and XATTR_REPLACE', async () => {
    const p = await file('f');
    expect((await rejection(lsetxattr(p, 'user.k', Buffer.from('v'), XATTR_REPLACE))).code).toBe('ENODATA');
    await lsetxattr(p, 'user.k', Buffer.from('v1'), XATTR_CREATE);
    expect((await rejection(lsetxattr(p, 'user.k', Buffer.from('v2'), XATTR_CREATE))).code).toBe('EEXIST');
    await lsetxattr(p, 'user.k', Buffer.from('v3'), XATTR_REPLACE);
    expect((await lgetxattr(p, 'user.k'))?.toString()).toBe('v3');
  });

  it.skipIf(!isRoot)('round-trips trusted.* (root) and acts on a symlink, not its target', async () => {
    const p = await file('target');
    const link = path.join(dir, 'link');
    await fs.symlink(p, link);
    await lsetxattr(p, 'trusted.overlay.opaque', Buffer.from('y'));
    await lsetxattr(link, 'trusted.layerfs.link', Buffer.from('L'));
    expect((await lgetxattr(p, 'trusted.overlay.opaque'))?.toString()).toBe('y');
    expect(await llistxattr(link)).toContain('trusted.layerfs.link');
    expect(await llistxattr(link)).not.toContain('trusted.overlay.opaque');
    expect(await lgetxattr(p, 'trusted.layerfs.link')).toBeNull();
    await lremovexattr(link, 'trusted.layerfs.link');
    expect(await lgetxattr(link, 'trusted.layerfs.link')).toBeNull();
  });

  it('lists no names on a fresh file', async () => {
    const p = await file('f');
    expect((await llistxattr(p)).filter((n) => n.startsWith('user.'))).toEqual([]);
  });
});

describe('mknod and device numbers', () => {
  it('creates a 0/0 character device (an overlay whiteout)', async () => {
    const p = path.join(dir, 'wh');
    await mknod(p, C.S_IFCHR | 0o000, makedev(0, 0));
    const st = await fs.lstat(p);
    expect(st.isCharacterDevice()).toBe(true);
    expect(st.rdev).toBe(0);
  });

  it('creates a fifo and a device with a real number', async () => {
    const fifo = path.join(dir, 'fifo');
    await mknod(fifo, C.S_IFIFO | 0o640, 0);
    const st = await fs.lstat(fifo);
    expect(st.isFIFO()).toBe(true);
    expect(st.mode & 0o777).toBe(0o640 & ~process.umask());
    if (isRoot) {
      const dev = path.join(dir, 'null');
      await mknod(dev, C.S_IFCHR | 0o666, makedev(1, 3));
      const d = await fs.lstat(dev);
      expect(major(d.rdev)).toBe(1);
      expect(minor(d.rdev)).toBe(3);
    }
  });

  it('makedev/major/minor agree with the kernel encoding, including large numbers', () => {
    expect(makedev(8, 1)).toBe(0x801);
    for (const [ma, mi] of [[0, 0], [1, 3], [259, 1048575], [4095, 255], [65535, 16777215]] as const) {
      const d = makedev(ma, mi);
      expect([major(d), minor(d)]).toEqual([ma, mi]);
    }
  });

  it('rejects EEXIST when the name is taken', async () => {
    const p = await file('taken');
    const err = await rejection(mknod(p, C.S_IFIFO | 0o600, 0));
    expect(err.code).toBe('EEXIST');
  });
});

describe('utimens / futimens', () => {
  it('sets both times to the nanosecond', async () => {
    const p = await file('f');
    await utimens(p, { sec: 1_000_000_001, nsec: 123_456_789 }, { sec: 1_600_000_000, nsec: 987_654_321 });
    const st = await fs.lstat(p, { bigint: true });
    expect(st.atimeNs).toBe(1_000_000_001_123_456_789n);
    expect(st.mtimeNs).toBe(1_600_000_000_987_654_321n);
  });

  it("'omit' leaves a time untouched and 'now' sets the current time", async () => {
    const p = await file('f');
    await utimens(p, { sec: 1_000_000_000, nsec: 5 }, { sec: 1_000_000_000, nsec: 6 });
    await utimens(p, 'omit', { sec: 1_234_567_890, nsec: 1 });
    let st = await fs.lstat(p, { bigint: true });
    expect(st.atimeNs).toBe(1_000_000_000_000_000_005n);
    expect(st.mtimeNs).toBe(1_234_567_890_000_000_001n);
    await utimens(p, 'now', 'omit');
    st = await fs.lstat(p, { bigint: true });
    // 'now' is the kernel's clock: well after 2020, whatever its granularity.
    expect(st.atimeNs > 1_600_000_000_000_000_000n).toBe(true);
    expect(st.mtimeNs).toBe(1_234_567_890_000_000_001n);
  });

  it('changes a symlink itself, not its target', async () => {
    const target = await file('target');
    const link = path.join(dir, 'link');
    await fs.symlink('target', link);
    await utimens(target, { sec: 1_500_000_000, nsec: 0 }, { sec: 1_500_000_000, nsec: 0 });
    await utimens(link, { sec: 1_100_000_000, nsec: 7 }, { sec: 1_100_000_000, nsec: 8 });
    expect((await fs.lstat(link, { bigint: true })).mtimeNs).toBe(1_100_000_000_000_000_008n);
    expect((await fs.lstat(target, { bigint: true })).mtimeNs).toBe(1_500_000_000_000_000_000n);
  });

  it('futimens sets the times of an open file', async () => {
    const p = await file('f');
    const h = await fs.open(p, 'r+');
    try {
      await futimens(h.fd, { sec: 1_300_000_000, nsec: 11 }, { sec: 1_300_000_001, nsec: 22 });
    } finally {
      await h.close();
    }
    const st = await fs.lstat(p, { bigint: true });
    expect(st.atimeNs).toBe(1_300_000_000_000_000_011n);
    expect(st.mtimeNs).toBe(1_300_000_001_000_000_022n);
  });

  it('rejects an out-of-range nsec', async () => {
    const p = await file('f');
    await expect(utimens(p, { sec: 0, nsec: 1_000_000_000 }, 'omit')).rejects.toThrow(RangeError);
  });
});

describe('renameat2', () => {
  it('RENAME_NOREPLACE refuses an existing target with EEXIST', async () => {
    const a = await file('a', 'A');
    const b = await file('b', 'B');
    const err = await rejection(renameat2(a, b, RENAME_NOREPLACE));
    expect(err.code).toBe('EEXIST');
    expect(await fs.readFile(b, 'utf8')).toBe('B');
    const c = path.join(dir, 'c');
    await renameat2(a, c, RENAME_NOREPLACE);
    expect(await fs.readFile(c, 'utf8')).toBe('A');
  });

  it('RENAME_EXCHANGE swaps two names', async () => {
    const a = await file('a', 'A');
    await fs.mkdir(path.join(dir, 'b'));
    await renameat2(a, path.join(dir, 'b'), RENAME_EXCHANGE);
    expect((await fs.lstat(a)).isDirectory()).toBe(true);
    expect(await fs.readFile(path.join(dir, 'b'), 'utf8')).toBe('A');
  });

  it.skipIf(!isRoot)('RENAME_WHITEOUT leaves a 0/0 character device at the source', async () => {
    const a = await file('a', 'A');
    const b = path.join(dir, 'b');
    await renameat2(a, b, RENAME_WHITEOUT);
    const st = await fs.lstat(a);
    expect(st.isCharacterDevice()).toBe(true);
    expect(st.rdev).toBe(0);
    expect(await fs.readFile(b, 'utf8')).toBe('A');
  });
});

describe('ficlone and copyFileRange', () => {
  it('clones exactly when `cp --reflink=always` can, and fails with the errno cp reports when it cannot', async () => {
    const content = Buffer.alloc(64 * 1024, 0x5a);
    const srcPath = await file('src', content.toString('latin1'));
    // coreutils issues the same ioctl: its outcome on this filesystem is the expectation.
    const viaCp = await new Promise<{ ok: boolean; stderr: string }>((resolve) => {
      execFile('cp', ['--reflink=always', srcPath, path.join(dir, 'by-cp')], (err, _out, stderr) => resolve({ ok: err === null, stderr }));
    });
    const src = await fs.open(srcPath, 'r');
    const dstPath = path.join(dir, 'dst');
    const dst = await fs.open(dstPath, 'w');
    try {
      if (viaCp.ok) {
        await ficlone(src.fd, dst.fd);
        expect(await fs.readFile(dstPath)).toEqual(content);
      } else {
        const byMessage: Record<string, string> = {
          'Operation not supported': 'EOPNOTSUPP', 'Invalid cross-device link': 'EXDEV', 'Invalid argument': 'EINVAL',
          'Inappropriate ioctl for device': 'ENOTTY',
        };
        const expected = Object.entries(byMessage).find(([m]) => viaCp.stderr.includes(m))?.[1];
        expect(expected, `cp said: ${viaCp.stderr}`).toBeDefined();
        const err = await rejection(ficlone(src.fd, dst.fd));
        expect({ code: err.code, syscall: err.syscall }).toEqual({ code: expected, syscall: 'ioctl(FICLONE)' });
        expect(err.errno).toBeLessThan(0);
        expect((await fs.stat(dstPath)).size).toBe(0);
      }
    } finally {
      await src.close();
      await dst.close();
    }
  });

  it('refuses to clone into a descriptor not open for writing (EBADF on every filesystem)', async () => {
    const src = await fs.open(await file('src', 'data'), 'r');
    const dst = await fs.open(await file('dst', ''), 'r');
    try {
      const err = await rejection(ficlone(src.fd, dst.fd));
      expect({ code: err.code, syscall: err.syscall }).toEqual({ code: 'EBADF', syscall: 'ioctl(FICLONE)' });
    } finally {
      await src.close();
      await dst.close();
    }
  });

  it('copies the requested range at explicit offsets, and from the file position with null', async () => {
    const srcPath = await file('src', '0123456789abcdef');
    const dstPath = await file('dst', '________');
    const src = await fs.open(srcPath, 'r');
    const dst = await fs.open(dstPath, 'r+');
    try {
      expect(await copyFileRange(src.fd, 4, dst.fd, 2, 5)).toBe(5);
      expect(await fs.readFile(dstPath, 'utf8')).toBe('__45678_');
      expect(await copyFileRange(src.fd, 14, dst.fd, 8, 100)).toBe(2); // short at EOF
      expect(await copyFileRange(src.fd, 16, dst.fd, 0, 10)).toBe(0); // at EOF
      expect(await fs.readFile(dstPath, 'utf8')).toBe('__45678_ef');
      expect(await copyFileRange(src.fd, null, dst.fd, null, 3)).toBe(3); // both positions at 0
      expect(await fs.readFile(dstPath, 'utf8')).toBe('0125678_ef');
    } finally {
      await src.close();
      await dst.close();
    }
  });

  it('handles offsets beyond 4 GiB', async () => {
    const far = 5 * 2 ** 30 + 3;
    const srcPath = path.join(dir, 'sparse');
    const s = await fs.open(srcPath, 'w+');
    const d = await fs.open(path.join(dir, 'out'), 'w+');
    try {
      await s.write(Buffer.from('FAR'), 0, 3, far);
      expect(await copyFileRange(s.fd, far, d.fd, far + 1, 3)).toBe(3);
      const back = Buffer.alloc(3);
      await d.read(back, 0, 3, far + 1);
      expect(back.toString()).toBe('FAR');
    } finally {
      await s.close();
      await d.close();
    }
  });
});

describe('lseek and fadvise', () => {
  it('maps a sparse file with SEEK_DATA/SEEK_HOLE and rejects ENXIO after the last data', async () => {
    const MiB = 2 ** 20;
    const p = path.join(dir, 'sparse');
    const fh = await fs.open(p, 'w+');
    try {
      await fh.write(Buffer.alloc(4096, 1), 0, 4096, 3 * MiB);
      await fh.truncate(8 * MiB);
      expect(await lseek(fh.fd, 0, SEEK_DATA)).toBe(3 * MiB);
      expect(await lseek(fh.fd, 3 * MiB, SEEK_HOLE)).toBe(3 * MiB + 4096);
      expect(await lseek(fh.fd, 0, SEEK_HOLE)).toBe(0);
      const err = await rejection(lseek(fh.fd, 3 * MiB + 4096, SEEK_DATA));
      expect([err.code, err.syscall]).toEqual(['ENXIO', 'lseek']);
      expect(await lseek(fh.fd, 0, 2 /* SEEK_END */)).toBe(8 * MiB);
      expect(await lseek(fh.fd, 5 * 2 ** 30, 0 /* SEEK_SET */)).toBe(5 * 2 ** 30);
      await expect(lseek(fh.fd, 0, 9)).rejects.toThrow(RangeError);
    } finally {
      await fh.close();
    }
  });

  it('takes read advice for an open file and rejects bad fds and advice', async () => {
    const fh = await fs.open(await file('f', 'data'), 'r');
    try {
      await fadvise(fh.fd, 0, 0, POSIX_FADV_SEQUENTIAL);
      await expect(fadvise(fh.fd, 0, 0, 6)).rejects.toThrow(RangeError);
    } finally {
      await fh.close();
    }
    // Far above any open fd (a just-closed number could be reused by another open).
    const err = await rejection(fadvise(2 ** 31 - 1, 0, 0, POSIX_FADV_SEQUENTIAL));
    expect([err.code, err.syscall]).toEqual(['EBADF', 'posix_fadvise']);
  });
});

describe('non-UTF-8 paths and errors', () => {
  it('reaches a name with bytes 0xff 0xfe through a Buffer path', async () => {
    const p = Buffer.concat([Buffer.from(dir + '/'), Buffer.from([0xff, 0xfe])]);
    await mknod(p, C.S_IFIFO | 0o600, 0);
    const names = await fs.readdir(dir, { encoding: 'buffer' });
    expect(names).toEqual([Buffer.from([0xff, 0xfe])]);
    expect((await fs.lstat(p)).isFIFO()).toBe(true);
    await fs.rm(p);
    await fs.writeFile(p, 'x');
    await lsetxattr(p, 'user.n', Buffer.from('bytes'));
    expect((await lgetxattr(p, 'user.n'))?.toString()).toBe('bytes');
    expect(await llistxattr(p)).toContain('user.n');
    await utimens(p, { sec: 1_000_000_000, nsec: 1 }, { sec: 1_000_000_000, nsec: 2 });
    expect((await fs.lstat(p, { bigint: true })).mtimeNs).toBe(1_000_000_000_000_000_002n);
    // The UTF-8 reading of the same bytes is a different (absent) name.
    expect((await rejection(lgetxattr(p.toString('utf8'), 'user.n'))).code).toBe('ENOENT');
  });

  it('rejects with Node-style system errors', async () => {
    const missing = path.join(dir, 'missing');
    const err = await rejection(lgetxattr(missing, 'user.x'));
    expect(err).toBeInstanceOf(Error);
    expect(err.code).toBe('ENOENT');
    expect(err.errno).toBe(-2);
    expect(err.syscall).toBe('lgetxattr');
    expect(err.path).toBe(missing);
    expect(err.message).toBe(`ENOENT: no such file or directory, lgetxattr '${missing}'`);
    expect(hasErrnoCode(err, 'ENOENT')).toBe(true);

    const r = await rejection(renameat2(missing, path.join(dir, 'to'), 0));
    expect([r.code, r.syscall, r.path, (r as { dest?: string }).dest]).toEqual(['ENOENT', 'renameat2', missing, path.join(dir, 'to')]);

    const b = await rejection(futimens(987654, 'now', 'now'));
    expect([b.code, b.errno, b.syscall, b.path]).toEqual(['EBADF', -9, 'futimens', undefined]);
  });

  it('rejects bad argument types instead of calling the kernel', async () => {
    await expect(lgetxattr(42 as unknown as string, 'user.x')).rejects.toThrow(TypeError);
    await expect(lgetxattr(Buffer.from('a\0b'), 'user.x')).rejects.toThrow(TypeError);
    await expect(lsetxattr(path.join(dir, 'x'), 'user.x', 'str' as unknown as Buffer)).rejects.toThrow(TypeError);
  });
});

describe('dirStamps', () => {
  /** The same lines from node:fs: what the walk must say. */
  async function reference(root: string, rel = ''): Promise<string> {
    const p = rel === '' ? root : path.join(root, rel);
    const st = await fs.lstat(p, { bigint: true });
    let text = `${rel}\0${st.dev} ${st.ino} ${st.mtimeNs} ${st.ctimeNs}\n`;
    const subdirs = (await fs.readdir(p, { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => e.name);
    for (const name of subdirs.sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)))) text += await reference(root, rel === '' ? name : `${rel}/${name}`);
    return text;
  }

  it('lists every directory depth first, names in byte order, with device, inode and both times in ns', async () => {
    for (const d of ['b/x/deep', 'a', 'B', 'a/z', 'a/y', '.hidden', 'é']) await fs.mkdir(path.join(dir, d), { recursive: true });
    await fs.writeFile(path.join(dir, 'a', 'file'), 'not a directory');
    await fs.symlink('b', path.join(dir, 'link-to-b')); // a symlink is not walked
    const text = dirStamps(dir).toString();
    expect(text).toBe(await reference(dir));
    expect(text.split('\n').filter(Boolean).map((l) => l.split('\0')[0])).toEqual(['', '.hidden', 'B', 'a', 'a/y', 'a/z', 'b', 'b/x', 'b/x/deep', 'é']);
  });

  it('changes when an entry anywhere is added, and only the lines of directories that changed', async () => {
    await fs.mkdir(path.join(dir, 'a', 'b'), { recursive: true });
    const before = dirStamps(dir).toString().split('\n');
    await fs.writeFile(path.join(dir, 'a', 'b', 'new'), '');
    const after = dirStamps(dir).toString().split('\n');
    expect(after[0]).toBe(before[0]);
    expect(after[1]).toBe(before[1]);
    expect(after[2]).not.toBe(before[2]);
  });

  it('fails like node:fs: ENOENT for a missing root, ENOTDIR for a file, and never follows a symlinked root', async () => {
    const missing = path.join(dir, 'missing');
    expect(() => dirStamps(missing)).toThrow(expect.objectContaining({ code: 'ENOENT', syscall: 'dirStamps', path: missing }));
    await fs.writeFile(path.join(dir, 'f'), '');
    expect(() => dirStamps(path.join(dir, 'f'))).toThrow(expect.objectContaining({ code: 'ENOTDIR' }));
    await fs.mkdir(path.join(dir, 'real'));
    await fs.symlink('real', path.join(dir, 'link'));
    expect(() => dirStamps(path.join(dir, 'link'))).toThrow(expect.objectContaining({ code: 'ENOTDIR' })); // O_NOFOLLOW|O_DIRECTORY
  });
});


describe('copyUpSmall', () => {
  const ORIGIN = 'user.test.origin';
  const atime = { sec: 1_500_000_000, nsec: 123_456_789 };
  const mtime = { sec: 1_400_000_000, nsec: 987_654_321 };

  /** A lower file, a work dir and an upper dir with a parent whose times are old. */
  async function setup(content: string | Buffer): Promise<SmallCopyUp & { src: string; tmp: string; dest: string; parent: string }> {
    for (const d of ['lower', 'work', 'upper', 'upper/d']) await fs.mkdir(path.join(dir, d));
    const src = path.join(dir, 'lower', 'f');
    await fs.writeFile(src, content);
    const parent = path.join(dir, 'upper', 'd');
    await utimens(parent, { sec: 1_000_000_000, nsec: 1 }, { sec: 1_000_000_000, nsec: 2 });
    return {
      src, tmp: path.join(dir, 'work', '#1'), dest: path.join(parent, 'f'), parent,
      // Only root may give a file away.
      uid: isRoot ? 1234 : process.getuid!(), gid: isRoot ? 5678 : process.getgid!(), perm: 0o4755, atime, mtime,
      origin: { name: ORIGIN, value: Buffer.from('4398052492874') },
      size: Buffer.byteLength(content), reflink: false, flush: false,
    };
  }

  it('copies data, owner, mode (set-id bits after the owner), times to the ns and the origin, then restores the parent\'s times', async () => {
    const data = Buffer.alloc(40_000, 'abc');
    const c = await setup(data);
    expect(await copyUpSmall(c)).toEqual({ reflinkRefused: false });
    const st = await fs.lstat(c.dest, { bigint: true }); // before reading it: relatime
    expect(await fs.readFile(c.dest)).toEqual(data);
    expect(Number(st.mode) & 0o7777).toBe(0o4755);
    if (isRoot) expect([st.uid, st.gid]).toEqual([1234n, 5678n]);
    expect(st.atimeNs).toBe(1_500_000_000_123_456_789n);
    expect(st.mtimeNs).toBe(1_400_000_000_987_654_321n);
    expect((await lgetxattr(c.dest, ORIGIN))?.toString()).toBe('4398052492874');
    expect(await fs.readdir(path.join(dir, 'work'))).toEqual([]);
    const pst = await fs.lstat(c.parent, { bigint: true });
    expect([pst.atimeNs, pst.mtimeNs]).toEqual([1_000_000_000_000_000_001n, 1_000_000_000_000_000_002n]);
    expect(await fs.readFile(c.src)).toEqual(data); // the source as it was
  });

  it('copies an empty file without data or origin, and copies only `size` bytes', async () => {
    const c = await setup('0123456789');
    await copyUpSmall({ ...c, size: 4, origin: null, parent: null });
    expect(await fs.readFile(c.dest, 'utf8')).toBe('0123');
    expect(await lgetxattr(c.dest, ORIGIN)).toBeNull();
    const d = { ...c, tmp: path.join(dir, 'work', '#2'), dest: path.join(c.parent, 'g') };
    await copyUpSmall({ ...d, size: 0 });
    expect((await fs.stat(d.dest)).size).toBe(0);
  });

  it('gives the copy its permission bits whether or not the umask keeps them, and needs no source for an empty file', async () => {
    const c = await setup('');
    // Bits the umask keeps: created with them (no chmod); bits it would clear: chmod after.
    for (const [name, perm, umask] of [['k', 0o640, 0o022], ['m', 0o666, 0o022], ['s', 0o2750, 0o022], ['u', 0o604, -1]] as const) {
      const dest = path.join(c.parent, name);
      await copyUpSmall({ ...c, tmp: path.join(dir, 'work', `#${name}`), dest, perm, umask, size: 0, src: path.join(dir, 'lower', 'absent') });
      expect((await fs.lstat(dest)).mode & 0o7777).toBe(perm);
      expect((await fs.stat(dest)).size).toBe(0);
    }
    // 0600 under a umask that takes bits from it (0277): the create cannot give 0600, so the
    // chmod must come, known umask or not.
    const old = process.umask(0o277);
    try {
      for (const [name, umask] of [['t', 0o277], ['v', -1]] as const) {
        const dest = path.join(c.parent, name);
        await copyUpSmall({ ...c, tmp: path.join(dir, 'work', `#${name}`), dest, perm: 0o600, umask, size: 0, src: path.join(dir, 'lower', 'absent') });
        expect((await fs.lstat(dest)).mode & 0o7777).toBe(0o600);
      }
    } finally {
      process.umask(old);
    }
  });

  it('reports a refused reflink exactly when FICLONE refuses this pair, and copies anyway', async () => {
    const c = await setup('reflink me');
    const a = await fs.open(c.src, 'r');
    const b = await fs.open(path.join(dir, 'work', 'probe'), 'w');
    let refused = false;
    try {
      await ficlone(a.fd, b.fd);
    } catch (err) {
      refused = ['EOPNOTSUPP', 'EXDEV', 'EINVAL'].some((code) => hasErrnoCode(err, code as 'EXDEV'));
    } finally {
      await a.close();
      await b.close();
      await fs.rm(path.join(dir, 'work', 'probe'));
    }
    expect(await copyUpSmall({ ...c, reflink: true })).toEqual({ reflinkRefused: refused });
    expect(await fs.readFile(c.dest, 'utf8')).toBe('reflink me');
  });

  it('flushes the data before the rename when asked, on the pool and with calls inline alike', async () => {
    const data = Buffer.alloc(5000, 'xyz');
    const c = await setup(data);
    for (const inline of [false, true]) {
      setInline(inline);
      try {
        const dest = path.join(c.parent, `flushed-${inline}`);
        const done = copyUpSmall({ ...c, tmp: path.join(dir, 'work', `#f${inline}`), dest, flush: true });
        expect(await done).toEqual({ reflinkRefused: false });
        expect(await fs.readFile(dest)).toEqual(data);
        expect((await fs.lstat(dest)).mode & 0o7777).toBe(0o4755);
      } finally {
        setInline(false);
      }
    }
    expect(await fs.readdir(path.join(dir, 'work'))).toEqual([]);
  });

  it('builds a flushed copy on the pool but puts it in place only on the calling thread', async () => {
    const c = await setup('flush me');
    setInline(true);
    try {
      const done = copyUpSmall({ ...c, flush: true });
      // This thread stays busy until the pool has built the temp file (its times are the
      // build's last step): the rename must still wait for this thread.
      const until = Date.now() + 10_000;
      const built = (): boolean => {
        try {
          return statSync(c.tmp, { bigint: true }).mtimeNs === 1_400_000_000_987_654_321n;
        } catch {
          return false;
        }
      };
      while (!built() && !existsSync(c.dest) && Date.now() < until);
      expect([built(), existsSync(c.dest)]).toEqual([true, false]);
      await done;
      expect(await fs.readFile(c.dest, 'utf8')).toBe('flush me');
      expect(existsSync(c.tmp)).toBe(false);
    } finally {
      setInline(false);
    }
  });

  it('fails with EEXIST on an existing temp name and leaves that file alone', async () => {
    const c = await setup('data');
    await fs.writeFile(c.tmp, 'someone else');
    await expect(copyUpSmall(c)).rejects.toThrow(expect.objectContaining({ code: 'EEXIST', errno: -17, syscall: 'open', path: c.tmp }));
    expect(await fs.readFile(c.tmp, 'utf8')).toBe('someone else');
    await expect(fs.lstat(c.dest)).rejects.toThrow(expect.objectContaining({ code: 'ENOENT' }));
  });

  it('fails with ENOENT for a missing source or parent, creating nothing', async () => {
    const c = await setup('data');
    const missing = path.join(dir, 'lower', 'missing');
    await expect(copyUpSmall({ ...c, src: missing })).rejects.toThrow(expect.objectContaining({ code: 'ENOENT', syscall: 'open', path: missing }));
    const gone = path.join(dir, 'upper', 'gone');
    await expect(copyUpSmall({ ...c, parent: gone })).rejects.toThrow(expect.objectContaining({ code: 'ENOENT', syscall: 'lstat', path: gone }));
    expect(await fs.readdir(path.join(dir, 'work'))).toEqual([]);
    expect(await fs.readdir(c.parent)).toEqual([]);
  });

  it('removes its temp file when the rename fails', async () => {
    const c = await setup('data');
    const dest = path.join(dir, 'upper', 'nodir', 'f');
    const err = await copyUpSmall({ ...c, dest, parent: null }).then(
      () => {
        throw new Error('expected a rejection');
      },
      (e: unknown) => e as NodeJS.ErrnoException & { dest?: string },
    );
    expect([err.code, err.syscall, err.path, err.dest]).toEqual(['ENOENT', 'rename', c.tmp, dest]);
    expect(err.message).toBe(`ENOENT: no such file or directory, rename '${c.tmp}' -> '${dest}'`);
    expect(await fs.readdir(path.join(dir, 'work'))).toEqual([]);
  });

  it('refuses more than COPY_UP_SMALL_MAX bytes and bad arguments before touching anything', async () => {
    const c = await setup('data');
    await expect(copyUpSmall({ ...c, size: COPY_UP_SMALL_MAX + 1 })).rejects.toThrow(RangeError);
    await expect(copyUpSmall({ ...c, src: 7 as unknown as string })).rejects.toThrow(TypeError);
    await expect(copyUpSmall({ ...c, origin: { name: ORIGIN, value: 'x' as unknown as Buffer } })).rejects.toThrow(TypeError);
    expect(await fs.readdir(path.join(dir, 'work'))).toEqual([]);
  });
});
