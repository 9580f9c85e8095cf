/**
 * An in-memory PathFilesystem that records what the kernel sends, used to test the
 * patched binding on a real mount (the union is tested elsewhere). Special names:
 *   /sparse6g  a 6 GiB file with no data      /bigino   inode number 2^40 + 5
 *   /slow      read answers after `slowMs`     /throw    getattr throws synchronously
 *   /reject    getattr rejects with a plain Error (not an errno)
 *   /gated/    a small tree to use as a union's lower layer: other/a ('a'), and big
 *              (1 MiB) whose reads log {op:'read'} and then wait for `gate` (SIGUSR1 to
 *              probe-main), so a copy-up of it is in progress for exactly as long as a
 *              test wants, not for as long as a big copy happens to take
 * Every create and write is appended to `logFile` (outside the mount) before the op is
 * answered, so a test that sees its syscall return can read the log.
 */
import { appendFile } from 'node:fs/promises';
import type { Caller, DirEntry, FileStat, PathFilesystem, StatFs, TimeUpdate, Timespec } from '../../src/core/filesystem.js';

interface Node {
  mode: number;
  uid: number;
  gid: number;
  ino: number | bigint;
  data: Buffer;
  size: number;
  atime: Timespec;
  mtime: Timespec;
  ctime: Timespec;
  xattrs: Map<string, Buffer>;
  target?: string;
}

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;

function now(): Timespec {
  const ms = Date.now();
  return { sec: Math.floor(ms / 1000), nsec: (ms % 1000) * 1_000_000 };
}

function errno(code: string): Error {
  return Object.assign(new Error(code), { code });
}

export interface ProbeOptions {
  logFile: string;
  slowMs: number;
  /** Reads of /gated/big wait for this (default: never wait). */
  gate?: Promise<void>;
}

export function createProbeFilesystem(options: ProbeOptions): PathFilesystem {
  const nodes = new Map<string, Node>();
  let nextIno = 2;
  const make = (mode: number, uid = 0, gid = 0): Node => {
    const t = now();
    return { mode, uid, gid, ino: nextIno++, data: Buffer.alloc(0), size: 0, atime: t, mtime: t, ctime: t, xattrs: new Map() };
  };
  nodes.set('/', make(S_IFDIR | 0o777));
  const sparse = make(S_IFREG | 0o644);
  sparse.size = 6 * 1024 ** 3;
  nodes.set('/sparse6g', sparse);
  const bigino = make(S_IFREG | 0o644);
  bigino.ino = 2 ** 40 + 5;
  nodes.set('/bigino', bigino);
  const slow = make(S_IFREG | 0o644);
  slow.data = Buffer.from('slow but fine\n');
  slow.size = slow.data.length;
  nodes.set('/slow', slow);
  nodes.set('/gated', make(S_IFDIR | 0o755));
  nodes.set('/gated/other', make(S_IFDIR | 0o755));
  const other = make(S_IFREG | 0o644);
  other.data = Buffer.from('a');
  other.size = 1;
  nodes.set('/gated/other/a', other);
  const gated = make(S_IFREG | 0o644);
  gated.data = Buffer.alloc(1024 * 1024, 0x67);
  gated.size = gated.data.length;
  nodes.set('/gated/big', gated);

  const log = (entry: object) => appendFile(options.logFile, JSON.stringify(entry) + '\n');
  const get = (path: string): Node => {
    const n = nodes.get(path);
    if (!n) throw errno('ENOENT');
    return n;
  };
  const parentOf = (path: string) => path.slice(0, path.lastIndexOf('/')) || '/';
  const stat = (n: Node): FileStat => ({
    ino: n.ino, mode: n.mode, nlink: 1, uid: n.uid, gid: n.gid, rdev: 0, size: n.size, blksize: 4096,
    blocks: Math.ceil(n.data.length / 512), atime: n.atime, mtime: n.mtime, ctime: n.ctime,
  });
  const add = (path: string, node: Node) => {
    if (nodes.has(path)) throw errno('EEXIST');
    if (!(get(parentOf(path)).mode & S_IFDIR)) throw errno('ENOTDIR');
    nodes.set(path, node);
  };
  const apply = (t: TimeUpdate, old: Timespec): Timespec => (t === 'omit' ? old : t === 'now' ? now() : t);

  const fs: PathFilesystem = {
    async getattr(path) {
      if (path === '/throw') throw new TypeError('probe: a handler bug');
      if (path === '/reject') return Promise.reject(new Error('probe: not an errno'));
      return stat(get(path));
    },
    async readlink(path) {
      return get(path).target ?? '';
    },
    async readdir(path) {
      get(path);
      const prefix = path === '/' ? '/' : path + '/';
      const out: DirEntry[] = [];
      for (const [p, n] of nodes) {
        if (p !== '/' && p.startsWith(prefix) && !p.slice(prefix.length).includes('/')) out.push({ name: p.slice(prefix.length), stat: stat(n) });
      }
      return out;
    },
    async open(path) {
      get(path);
      return 1;
    },
    async create(path, mode, flags, caller: Caller) {
      const n = make(S_IFREG | (mode & 0o7777), caller.uid, caller.gid);
      add(path, n);
      await log({ op: 'create', path, mode, flags, caller });
      return 1;
    },
    async read(path, _fh, buf, length, position) {
      const n = get(path);
      if (path === '/slow') await new Promise((r) => setTimeout(r, options.slowMs));
      if (path === '/gated/big' && options.gate) {
        await log({ op: 'read', path, position });
        await options.gate;
      }
      if (position >= n.data.length) return 0;
      return n.data.copy(buf, 0, position, Math.min(n.data.length, position + length));
    },
    async write(path, _fh, buf, length, position) {
      const n = get(path);
      const end = position + length;
      if (end > n.data.length) {
        const grown = Buffer.alloc(end);
        n.data.copy(grown);
        n.data = grown;
      }
      buf.copy(n.data, position, 0, length);
      n.size = Math.max(n.size, end);
      await log({ op: 'write', path, length });
      return length;
    },
    async release() {},
    async fsync() {},
    async truncate(path, size) {
      const n = get(path);
      const d = Buffer.alloc(size);
      n.data.copy(d, 0, 0, Math.min(size, n.data.length));
      n.data = d;
      n.size = size;
    },
    async ftruncate(path, _fh, size) {
      await fs.truncate(path, size, { uid: 0, gid: 0, pid: 0, umask: 0 });
    },
    async chmod(path, mode) {
      const n = get(path);
      n.mode = (n.mode & ~0o7777) | (mode & 0o7777);
    },
    async chown(path, uid, gid) {
      const n = get(path);
      if (uid !== 0xffffffff) n.uid = uid;
      if (gid !== 0xffffffff) n.gid = gid;
    },
    async utimens(path, atime, mtime) {
      const n = get(path);
      n.atime = apply(atime, n.atime);
      n.mtime = apply(mtime, n.mtime);
      n.ctime = now();
    },
    async mknod() {
      throw errno('EPERM');
    },
    async mkdir(path, mode, caller) {
      add(path, make(S_IFDIR | (mode & 0o7777), caller.uid, caller.gid));
    },
    async rmdir(path) {
      get(path);
      nodes.delete(path);
    },
    async unlink(path) {
      get(path);
      nodes.delete(path);
    },
    async symlink(target, path, caller) {
      const n = make(S_IFLNK | 0o777, caller.uid, caller.gid);
      n.target = target;
      n.size = Buffer.byteLength(target, 'latin1');
      add(path, n);
    },
    async link() {
      throw errno('EPERM');
    },
    async rename(from, to) {
      const n = get(from);
      nodes.delete(from);
      nodes.set(to, n);
    },
    async setxattr(path, name, value) {
      get(path).xattrs.set(name, value);
    },
    async getxattr(path, name) {
      return get(path).xattrs.get(name) ?? null;
    },
    async listxattr(path) {
      return [...get(path).xattrs.keys()];
    },
    async removexattr(path, name) {
      if (!get(path).xattrs.delete(name)) throw errno('ENODATA');
    },
    async statfs(): Promise<StatFs> {
      // 2^33 blocks of 4 KiB = 32 TiB: does not fit the 32-bit fields upstream used.
      return { bsize: 4096, frsize: 4096, blocks: 2n ** 33n, bfree: 2n ** 32n + 7n, bavail: 2n ** 32n + 7n, files: 2n ** 34n, ffree: 2n ** 33n, favail: 2n ** 33n, fsid: 1, flag: 0, namemax: 255 };
    },
  };
  return fs;
}
