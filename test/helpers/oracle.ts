/**
 * The union oracle's language: one operation language, several subjects. The same
 * sequence runs on the kernel's overlayfs (through node:fs on its mount point, see
 * oracle-fs-subject.ts), on layerfs's union object (direct calls, oracle-union-subject.ts)
 * and on a real layerfs FUSE mount (node:fs again). Results, errno names, what every name
 * of a hard link and every held descriptor shows, and final trees are compared.
 *
 * Paths in ops are absolute inside the filesystem ('/d/f'). Symlink targets must be
 * relative and free of '..' (so no subject ever reaches outside its mount).
 */
import { createHash } from 'node:crypto';
import { constants as C } from 'node:fs';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { Timespec } from '../../src/core/filesystem.js';
import { OVERLAY_XATTR_NS } from '../../src/overlay/index.js';

/**
 * The overlay xattr namespace of this test process: 'trusted', or 'user' for the rootless
 * format (a test file sets LAYERFS_OVERLAY_XATTRS=user with vi.hoisted, before imports).
 */
export const OV = OVERLAY_XATTR_NS;

const run = promisify(execFile);

/** renameat2(2) flags by name. */
export const RENAME_FLAGS = { noreplace: 1, exchange: 2, whiteout: 4 } as const;
export type RenameFlag = keyof typeof RENAME_FLAGS;

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
  | { op: 'rename'; from: string; to: string; flags?: RenameFlag }
  | { op: 'read'; path: string }
  | { op: 'stat'; path: string }
  | { op: 'readdir'; path: string }
  // Held descriptors, named by `fd` ('A', 'B', …) until closed: they outlive unlink and rename.
  | { op: 'open'; fd: string; path: string; write: boolean }
  | { op: 'fwrite'; fd: string; data: string; pos: number }
  | { op: 'fstat'; fd: string }
  | { op: 'ftruncate'; fd: string; size: number }
  | { op: 'fread'; fd: string }
  | { op: 'close'; fd: string }
  // `do` run by another user (a process with that uid/gid and no supplementary groups).
  | { op: 'as'; uid: number; gid: number; do: Op };

/** What an op returned: a comparable value, or the errno name it failed with. */
export type OpResult = { ok: true; value?: unknown } | { ok: false; errno: string };

/** One object as a subject reports it, before normalization (raw inode, device, times). */
export interface RawEntry {
  type: string;
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  ino: bigint;
  dev: bigint;
  rdev: number;
  mtime: Timespec;
  size?: number;
  sha256?: string;
  target?: string;
  xattrs: Record<string, string>;
}

/** path → raw entry, for the whole tree. */
export type RawTree = Record<string, RawEntry>;

/** Something the oracle can drive. */
export interface Subject {
  readonly name: string;
  apply(op: Op): Promise<OpResult>;
  /** The whole tree. */
  snapshot(): Promise<RawTree>;
  /** What each of `names` (lstat) and each held descriptor (fstat + content) shows now. */
  views(names: string[]): Promise<Record<string, unknown>>;
  /** Closes held descriptors. */
  closeAll(): Promise<void>;
}

/** The umask the oracle applies on every subject (node:fs gets it from the process). */
export const UMASK = 0o022;

/**
 * Added to every open of an existing name by every subject: a random sequence may have made
 * the name a fifo (mkfifo), whose open for reading or writing waits for the other end for
 * ever (a soak hung so). Non-blocking it opens at once, or fails ENXIO for writing with no
 * reader, alike on every side; a regular file ignores the flag.
 */
export const NB = C.O_NONBLOCK;

export function errnoName(err: unknown): string {
  const e = err as { errno?: unknown; code?: unknown };
  if (typeof e.errno === 'string') return e.errno;
  if (typeof e.code === 'string') return e.code;
  throw err;
}

export async function attempt(fn: () => Promise<unknown>): Promise<OpResult> {
  try {
    const value = await fn();
    return value === undefined ? { ok: true } : { ok: true, value };
  } catch (err) {
    return { ok: false, errno: errnoName(err) };
  }
}

export function typeName(mode: number): string {
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

/** The comparable part of a stat (times and inode numbers are compared in trees). */
export function statValue(mode: number, uid: number, gid: number, size: number, nlink: number): Record<string, unknown> {
  const type = typeName(mode);
  return type === 'dir' ? { type, mode: mode & 0o7777, uid, gid, nlink } : { type, mode: mode & 0o7777, uid, gid, size, nlink };
}

export const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

export function errnoError(code: string): Error {
  return Object.assign(new Error(code), { code });
}

/**
 * Mount options the oracle uses for the kernel overlayfs (redirect_dir=on: renames of lower
 * dirs). The rootless format: `userxattr`, with which the kernel allows no redirects
 * (nofollow: renaming a directory with a lower part is EXDEV), as in a user namespace.
 */
export const KERNEL_OVERLAY_OPTIONS = OV === 'user'
  ? 'userxattr,redirect_dir=nofollow,index=off,metacopy=off,xino=off'
  : 'redirect_dir=on,index=off,metacopy=off,xino=off';

/** Mounts the kernel overlayfs at `mountpoint` (which must exist). */
export async function mountKernelOverlay(lowers: string[], upper: string, work: string, mountpoint: string): Promise<void> {
  const opts = `lowerdir=${lowers.join(':')},upperdir=${upper},workdir=${work},${KERNEL_OVERLAY_OPTIONS}`;
  await run('mount', ['-t', 'overlay', 'overlay', '-o', opts, mountpoint]);
}

/** Unmounts a kernel overlay mount, lazily if busy. */
export async function unmountKernelOverlay(mountpoint: string): Promise<void> {
  await run('umount', [mountpoint]).catch(() => run('umount', ['-l', mountpoint]).catch(() => undefined));
}
