/**
 * The union oracle: one operation language, several subjects. The same sequence runs on
 * the kernel's overlayfs (through node:fs on its mount point), on layerfs's union object
 * (direct method calls) and — later — on a real layerfs FUSE mount (node:fs again, via
 * `FsSubject`). Results, errno names and final trees are compared.
 *
 * Paths in ops are absolute inside the filesystem ('/d/f'). Symlink targets must be
 * relative and free of '..' (so no subject ever reaches outside its mount).
 */
import { createHash } from 'node:crypto';
import * as fsp from 'node:fs/promises';
import { constants as C } from 'node:fs';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { Caller, PathFilesystem } from '../../src/core/filesystem.js';
import { sys } from '../../src/union/sys.js';

const run = promisify(execFile);

/** One operation of the language. */
export type Op =
  | { op: 'create'; path: string; mode: number; data: string }
  | { op: 'write'; path: string; data: string; pos: number }
  | { op: 'append'; path: string; data: string }
  | { op: 'truncate'; path: string; size: number }
  | { op: 'chmod'; path: string; mode: number }
  | { op: 'chown'; path: string; uid: number; gid: number }
  | { op: 'utimens'; path: string; sec: number; nsec: number }
  | { op: 'setxattr'; path: string; name: string; value: string }
  | { op: 'removexattr'; path: string; name: string }
  | { op: 'getxattr'; path: string; name: string }
  | { op: 'listxattr'; path: string }
  | { op: 'link'; from: string; to: string }
  | { op: 'symlink'; target: string; path: string }
  | { op: 'mkdir'; path: string; mode: number }
  | { op: 'mkfifo'; path: string }
  | { op: 'rmdir'; path: string }
  | { op: 'unlink'; path: string }
  | { op: 'rename'; from: string; to: string }
  | { op: 'exchange'; from: string; to: string }
  | { op: 'read'; path: string }
  | { op: 'stat'; path: string }
  | { op: 'readdir'; path: string };

/** What an op returned: a comparable value, or the errno name it failed with. */
export type OpResult = { ok: true; value?: unknown } | { ok: false; errno: string };

/** One object of a tree snapshot. */
export interface TreeEntry {
  type: string;
  mode: number;
  uid: number;
  gid: number;
  size?: number;
  nlink?: number;
  sha256?: string;
  target?: string;
  xattrs: Record<string, string>;
}

/** path → entry, for the whole tree. */
export type TreeSnapshot = Record<string, TreeEntry>;

/** Something the oracle can drive. */
export interface Subject {
  readonly name: string;
  apply(op: Op): Promise<OpResult>;
  snapshot(): Promise<TreeSnapshot>;
}

/** The umask the oracle applies on every subject (node:fs gets it from the process). */
export const UMASK = 0o022;

function errnoName(err: unknown): string {
  const e = err as { errno?: unknown; code?: unknown };
  if (typeof e.errno === 'string') return e.errno;
  if (typeof e.code === 'string') return e.code;
  throw err;
}

async function attempt(fn: () => Promise<unknown>): Promise<OpResult> {
  try {
    const value = await fn();
    return value === undefined ? { ok: true } : { ok: true, value };
  } catch (err) {
    return { ok: false, errno: errnoName(err) };
  }
}

function typeName(mode: number): string {
  switch (mode & C.S_IFMT) {
    case C.S_IFDIR: return 'dir';
    case C.S_IFREG: return 'file';
    case C.S_IFLNK: return 'symlink';
    case C.S_IFIFO: return 'fifo';
    case C.S_IFCHR: return 'chr';
    case C.S_IFBLK: return 'blk';
    case C.S_IFSOCK: return 'sock';
    default: return 'unknown';
  }
}

/** The comparable part of a stat. */
function statValue(mode: number, uid: number, gid: number, size: number, nlink: number): unknown {
  const type = typeName(mode);
  return type === 'dir' ? { type, mode: mode & 0o7777, uid, gid, nlink } : { type, mode: mode & 0o7777, uid, gid, size, nlink };
}

/**
 * xattr names both implementations must list alike. security.* names (e.g. SELinux
 * labels the host adds) and trusted.layerfs.* (layerfs's private origin, which the kernel
 * lists as an ordinary name when it mounts a layerfs upper) are left out.
 */
function comparableXattr(name: string): boolean {
  return !name.startsWith('security.') && !name.startsWith('trusted.layerfs.');
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** A subject reached through node:fs under a mount point (kernel overlayfs, or a layerfs FUSE mount). */
export class FsSubject implements Subject {
  constructor(readonly name: string, readonly root: string) {}

  private p(path: string): Buffer {
    return Buffer.concat([Buffer.from(this.root), Buffer.from(path, 'latin1')]);
  }

  apply(op: Op): Promise<OpResult> {
    return attempt(async () => {
      switch (op.op) {
        case 'create': {
          const fh = await fsp.open(this.p(op.path), C.O_WRONLY | C.O_CREAT | C.O_EXCL, op.mode);
          try { await fh.write(Buffer.from(op.data), 0, op.data.length, 0); } finally { await fh.close(); }
          return;
        }
        case 'write': {
          const fh = await fsp.open(this.p(op.path), C.O_WRONLY);
          try { await fh.write(Buffer.from(op.data), 0, op.data.length, op.pos); } finally { await fh.close(); }
          return;
        }
        case 'append': {
          const fh = await fsp.open(this.p(op.path), C.O_WRONLY | C.O_APPEND);
          try { await fh.write(Buffer.from(op.data), 0, op.data.length, null); } finally { await fh.close(); }
          return;
        }
        case 'truncate': return fsp.truncate(this.p(op.path), op.size);
        case 'chmod': return fsp.chmod(this.p(op.path), op.mode);
        case 'chown': return fsp.lchown(this.p(op.path), op.uid, op.gid);
        case 'utimens': {
          const t = { sec: op.sec, nsec: op.nsec };
          return sys.utimens(this.p(op.path), t, t);
        }
        case 'setxattr': return sys.lsetxattr(this.p(op.path), op.name, Buffer.from(op.value));
        case 'removexattr': return sys.lremovexattr(this.p(op.path), op.name);
        case 'getxattr': return (await sys.lgetxattr(this.p(op.path), op.name))?.toString('latin1') ?? 'ENODATA';
        case 'listxattr': return (await sys.llistxattr(this.p(op.path))).filter(comparableXattr).sort();
        case 'link': return fsp.link(this.p(op.from), this.p(op.to));
        case 'symlink': return fsp.symlink(Buffer.from(op.target, 'latin1'), this.p(op.path));
        case 'mkdir': return fsp.mkdir(this.p(op.path), op.mode);
        case 'mkfifo': return sys.mknod(this.p(op.path), C.S_IFIFO | (0o644 & ~UMASK), 0);
        case 'rmdir': return fsp.rmdir(this.p(op.path));
        case 'unlink': return fsp.unlink(this.p(op.path));
        case 'rename': return fsp.rename(this.p(op.from), this.p(op.to));
        case 'exchange': return sys.renameat2(this.p(op.from), this.p(op.to), 2);
        case 'read': return sha(await fsp.readFile(this.p(op.path)));
        case 'stat': {
          const s = await fsp.lstat(this.p(op.path));
          return statValue(s.mode, s.uid, s.gid, s.size, s.nlink);
        }
        case 'readdir':
          return (await fsp.readdir(this.p(op.path), { encoding: 'buffer' })).map((b) => b.toString('latin1')).sort();
      }
    });
  }

  async snapshot(): Promise<TreeSnapshot> {
    const out: TreeSnapshot = {};
    const walk = async (path: string): Promise<void> => {
      const real = this.p(path);
      const s = await fsp.lstat(real);
      const e: TreeEntry = { type: typeName(s.mode), mode: s.mode & 0o7777, uid: s.uid, gid: s.gid, xattrs: {} };
      for (const n of await sys.llistxattr(real)) {
        if (n.startsWith('user.')) e.xattrs[n] = (await sys.lgetxattr(real, n))?.toString('latin1') ?? '';
      }
      if (e.type !== 'dir') e.nlink = s.nlink;
      if (e.type === 'file') { e.size = s.size; e.sha256 = sha(await fsp.readFile(real)); }
      if (e.type === 'symlink') e.target = (await fsp.readlink(real, { encoding: 'buffer' })).toString('latin1');
      out[path] = e;
      if (e.type === 'dir') {
        for (const b of await fsp.readdir(real, { encoding: 'buffer' })) {
          await walk((path === '/' ? '' : path) + '/' + b.toString('latin1'));
        }
      }
    };
    await walk('/');
    return out;
  }
}

const ROOT_CALLER: Caller = { uid: 0, gid: 0, pid: process.pid, umask: UMASK };

/**
 * A subject calling a PathFilesystem directly, doing what the kernel's VFS would do
 * around it: umask on new modes, symlink resolution of intermediate components (and of
 * the last one for ops that follow it), open/write/release sequences.
 */
export class UnionSubject implements Subject {
  constructor(readonly name: string, readonly fs: PathFilesystem, readonly caller: Caller = ROOT_CALLER) {}

  /** Resolves symlinks like path_lookupat (relative targets only). */
  private async resolve(path: string, followLast: boolean): Promise<string> {
    const parts = path.split('/').filter(Boolean);
    let cur = '/';
    let hops = 0;
    while (parts.length > 0) {
      const name = parts.shift()!;
      const next = cur === '/' ? '/' + name : cur + '/' + name;
      if (parts.length === 0 && !followLast) return next;
      let mode: number;
      try {
        mode = (await this.fs.getattr(next)).mode;
      } catch (err) {
        if (parts.length === 0) return next;
        throw err;
      }
      if ((mode & C.S_IFMT) === C.S_IFLNK) {
        if (++hops > 40) throw Object.assign(new Error('ELOOP'), { code: 'ELOOP' });
        const target = await this.fs.readlink(next);
        if (target.startsWith('/')) cur = '/';
        parts.unshift(...target.split('/').filter(Boolean));
        continue;
      }
      cur = next;
    }
    return cur;
  }

  private async withFile(path: string, flags: number, fn: (fh: number) => Promise<unknown>): Promise<unknown> {
    const fh = await this.fs.open(path, flags, this.caller);
    try { return await fn(fh); } finally { await this.fs.release(path, fh); }
  }

  apply(op: Op): Promise<OpResult> {
    const fs = this.fs;
    const c = this.caller;
    return attempt(async () => {
      switch (op.op) {
        case 'create': {
          // O_CREAT|O_EXCL never follows a final symlink (a dangling one gives EEXIST).
          const p = await this.resolve(op.path, false);
          const fh = await fs.create(p, op.mode & ~UMASK, C.O_WRONLY | C.O_CREAT | C.O_EXCL, c);
          try { await fs.write(p, fh, Buffer.from(op.data), op.data.length, 0); } finally { await fs.release(p, fh); }
          return;
        }
        case 'write': {
          const p = await this.resolve(op.path, true);
          await this.withFile(p, C.O_WRONLY, (fh) => fs.write(p, fh, Buffer.from(op.data), op.data.length, op.pos));
          return;
        }
        case 'append': {
          const p = await this.resolve(op.path, true);
          await this.withFile(p, C.O_WRONLY | C.O_APPEND, async (fh) => {
            const size = Number((await fs.getattr(p)).size);
            await fs.write(p, fh, Buffer.from(op.data), op.data.length, size);
          });
          return;
        }
        case 'truncate': {
          const p = await this.resolve(op.path, true);
          const st = await fs.getattr(p);
          if ((st.mode & C.S_IFMT) === C.S_IFDIR) throw Object.assign(new Error('EISDIR'), { code: 'EISDIR' });
          return fs.truncate(p, op.size, c);
        }
        case 'chmod': return fs.chmod(await this.resolve(op.path, true), op.mode, c);
        case 'chown': return fs.chown(await this.resolve(op.path, false), op.uid, op.gid, c);
        case 'utimens': {
          const t = { sec: op.sec, nsec: op.nsec };
          return fs.utimens(await this.resolve(op.path, false), t, t, c);
        }
        case 'setxattr': return fs.setxattr(await this.resolve(op.path, false), op.name, Buffer.from(op.value), 0, c);
        case 'removexattr': return fs.removexattr(await this.resolve(op.path, false), op.name, c);
        case 'getxattr': return (await fs.getxattr(await this.resolve(op.path, false), op.name))?.toString('latin1') ?? 'ENODATA';
        case 'listxattr': return (await fs.listxattr(await this.resolve(op.path, false))).filter(comparableXattr).sort();
        case 'link': return fs.link(await this.resolve(op.from, false), await this.resolve(op.to, false), c);
        case 'symlink': return fs.symlink(op.target, await this.resolve(op.path, false), c);
        case 'mkdir': return fs.mkdir(await this.resolve(op.path, false), op.mode & ~UMASK, c);
        case 'mkfifo': return fs.mknod(await this.resolve(op.path, false), C.S_IFIFO | (0o644 & ~UMASK), 0, c);
        case 'rmdir': return fs.rmdir(await this.resolve(op.path, false), c);
        case 'unlink': return fs.unlink(await this.resolve(op.path, false), c);
        case 'rename': return fs.rename(await this.resolve(op.from, false), await this.resolve(op.to, false), 0, c);
        case 'exchange': return fs.rename(await this.resolve(op.from, false), await this.resolve(op.to, false), 2, c);
        case 'read': return sha(await this.readAll(await this.resolve(op.path, true)));
        case 'stat': {
          const s = await fs.getattr(await this.resolve(op.path, false));
          return statValue(s.mode, s.uid, s.gid, Number(s.size), s.nlink);
        }
        case 'readdir': {
          const p = await this.resolve(op.path, true);
          return (await fs.readdir(p)).map((e) => e.name).sort();
        }
      }
    });
  }

  private async readAll(path: string): Promise<Buffer> {
    const st = await this.fs.getattr(path);
    if ((st.mode & C.S_IFMT) === C.S_IFDIR) throw Object.assign(new Error('EISDIR'), { code: 'EISDIR' });
    const buf = Buffer.alloc(Number(st.size));
    let off = 0;
    await this.withFile(path, C.O_RDONLY, async (fh) => {
      while (off < buf.length) {
        const n = await this.fs.read(path, fh, buf.subarray(off), buf.length - off, off);
        if (n === 0) break;
        off += n;
      }
    });
    return buf.subarray(0, off);
  }

  async snapshot(): Promise<TreeSnapshot> {
    const out: TreeSnapshot = {};
    const walk = async (path: string): Promise<void> => {
      const s = await this.fs.getattr(path);
      const e: TreeEntry = { type: typeName(s.mode), mode: s.mode & 0o7777, uid: s.uid, gid: s.gid, xattrs: {} };
      for (const n of await this.fs.listxattr(path)) {
        if (n.startsWith('user.')) e.xattrs[n] = (await this.fs.getxattr(path, n))?.toString('latin1') ?? '';
      }
      if (e.type !== 'dir') e.nlink = s.nlink;
      if (e.type === 'file') { e.size = Number(s.size); e.sha256 = sha(await this.readAll(path)); }
      if (e.type === 'symlink') e.target = await this.fs.readlink(path);
      out[path] = e;
      if (e.type === 'dir') {
        for (const d of await this.fs.readdir(path)) await walk((path === '/' ? '' : path) + '/' + d.name);
      }
    };
    await walk('/');
    return out;
  }
}

/** Mount options the oracle uses for the kernel overlayfs (redirect_dir=on: renames of lower dirs). */
export const KERNEL_OVERLAY_OPTIONS = 'redirect_dir=on,index=off,metacopy=off,xino=off';

/** Mounts the kernel overlayfs at `mountpoint` (which must exist). */
export async function mountKernelOverlay(lowers: string[], upper: string, work: string, mountpoint: string): Promise<void> {
  const opts = `lowerdir=${lowers.join(':')},upperdir=${upper},workdir=${work},${KERNEL_OVERLAY_OPTIONS}`;
  await run('mount', ['-t', 'overlay', 'overlay', '-o', opts, mountpoint]);
}

/** Unmounts a kernel overlay mount, lazily if busy. */
export async function unmountKernelOverlay(mountpoint: string): Promise<void> {
  await run('umount', [mountpoint]).catch(() => run('umount', ['-l', mountpoint]).catch(() => undefined));
}

/** Runs `ops` on every subject, returning each op's results side by side. */
export async function applyAll(ops: Op[], subjects: Subject[]): Promise<{ op: Op; results: OpResult[] }[]> {
  const out: { op: Op; results: OpResult[] }[] = [];
  for (const op of ops) {
    const results: OpResult[] = [];
    for (const s of subjects) results.push(await s.apply(op));
    out.push({ op, results });
  }
  return out;
}
