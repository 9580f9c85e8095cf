/**
 * Syscalls Node.js does not offer (xattrs, mknod, utimensat with nanoseconds, renameat2),
 * from layerfs's own small native addon (src/sys/native/). Every call runs on libuv's
 * thread pool, never blocking the event loop — unless a serving mount process turned on
 * `setInline` (below) — and never follows a final symlink.
 *
 * Paths are `string | Buffer`: a Buffer is passed byte-for-byte, which is how names that
 * are not valid UTF-8 stay reachable. Failures reject with a Node-style system error
 * (`code` such as 'ENOENT', negative `errno`, `syscall`, `path`), so `hasErrnoCode()`
 * from core/errors works on them.
 *
 * CONTRACT (implemented by the addon; signatures are fixed, other modules code against them):
 *   lgetxattr(path, name): Promise<Buffer | null>        null when the attribute is absent (ENODATA)
 *   llistxattr(path): Promise<string[]>                   names, in the kernel's order
 *   lsetxattr(path, name, value: Buffer, flags = 0): Promise<void>   flags: XATTR_CREATE=1, XATTR_REPLACE=2
 *   lremovexattr(path, name): Promise<void>
 *   mknod(path, mode, dev): Promise<void>                 mode includes the S_IF* type bits; dev = makedev()
 *   makedev(major, minor): number ; major(dev): number ; minor(dev): number
 *   utimens(path, atime: Timespec, mtime: Timespec): Promise<void>   AT_SYMLINK_NOFOLLOW;
 *            Timespec = { sec: number, nsec: number } | 'now' | 'omit'
 *   futimens(fd, atime, mtime): Promise<void>
 *   renameat2(from, to, flags): Promise<void>             flags: RENAME_NOREPLACE=1, RENAME_EXCHANGE=2, RENAME_WHITEOUT=4
 *   ficlone(srcFd, dstFd): Promise<void>                  ioctl FICLONE; rejects EOPNOTSUPP/EXDEV where not supported
 *   copyFileRange(srcFd, srcOff, dstFd, dstOff, len): Promise<number>  copy_file_range(2), bytes copied
 *   lseek(fd, offset, whence): Promise<number>            lseek(2), the new offset; whence SEEK_SET/CUR/END
 *            or SEEK_DATA/SEEK_HOLE (rejects ENXIO when no data follows `offset`, or it is past EOF)
 *   fadvise(fd, offset, len, advice): Promise<void>       posix_fadvise(2); len 0 = to the end of the file
 *   setInline(on: boolean): void                          SYNCHRONOUS: from now on the cheap calls (all
 *            but ficlone, lseek and copyFileRange over 64 KiB) run on the calling thread and return a settled
 *            Promise; for a FUSE server, where a pool hop costs more than the syscall
 *   mapIndexCache(path): ArrayBuffer                      SYNCHRONOUS: the lower-index cache file mapped
 *            read-only after src/engine/native/lower-index.c checked it (CRC-32, layer roots, every
 *            offset); throws an Error with `errno` (negative) and the reason; unmapped when collected
 *   dirStamps(root): Buffer                               SYNCHRONOUS: a line per directory under `root`
 *            (see dirStamps below); throws a system error like node:fs's
 *   copyUpSmall(src, tmp, dest, parent, uid, gid, perm, atime, mtime, originName, originValue, size, reflink, umask, flush): Promise<number>
 *            a small regular file's whole copy-up (see copyUpSmall below), inline unless it
 *            flushes; 1 when FICLONE was refused, else 0; rejects with a system error like node:fs's
 *
 * The addon is built by scripts/build-native.mjs (run from npm's postinstall) into
 * src/sys/native/build/Release/layerfs_sys.node and loaded on first use, so importing this
 * module never fails; the first call does, with a NATIVE_BINDING error, if it is missing.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LayerfsError } from '../core/errors.js';
import type { TimeUpdate } from '../core/filesystem.js';

/** A path as the kernel sees it: a string is encoded as UTF-8, a Buffer is used as is. */
export type SysPath = string | Buffer;

/** One timestamp for utimens/futimens: exact {sec, nsec}, 'now' (UTIME_NOW) or 'omit' (UTIME_OMIT). */
export type Timespec = TimeUpdate;

/** lsetxattr flag: fail with EEXIST if the attribute already exists. */
export const XATTR_CREATE = 1;
/** lsetxattr flag: fail with ENODATA if the attribute does not exist. */
export const XATTR_REPLACE = 2;
/** renameat2 flag: fail with EEXIST instead of replacing the target. */
export const RENAME_NOREPLACE = 1;
/** renameat2 flag: atomically swap source and target (both must exist). */
export const RENAME_EXCHANGE = 2;
/** renameat2 flag: leave an overlayfs whiteout (0/0 char device) at the source. */
export const RENAME_WHITEOUT = 4;
/** lseek whence: the next offset holding data (Linux's value). */
export const SEEK_DATA = 3;
/** lseek whence: the next hole (end of file counts as one). */
export const SEEK_HOLE = 4;
/** fadvise advice: read ahead more aggressively (Linux doubles this open file's window). */
export const POSIX_FADV_SEQUENTIAL = 2;

interface Binding {
  lgetxattr(path: SysPath, name: string): Promise<Buffer | null>;
  llistxattr(path: SysPath): Promise<string[]>;
  lsetxattr(path: SysPath, name: string, value: Buffer, flags: number): Promise<void>;
  lremovexattr(path: SysPath, name: string): Promise<void>;
  mknod(path: SysPath, mode: number, dev: number): Promise<void>;
  makedev(major: number, minor: number): number;
  major(dev: number): number;
  minor(dev: number): number;
  utimens(path: SysPath, atime: Timespec, mtime: Timespec): Promise<void>;
  futimens(fd: number, atime: Timespec, mtime: Timespec): Promise<void>;
  renameat2(from: SysPath, to: SysPath, flags: number): Promise<void>;
  ficlone(srcFd: number, dstFd: number): Promise<void>;
  copyFileRange(srcFd: number, srcOff: number | null, dstFd: number, dstOff: number | null, len: number): Promise<number>;
  lseek(fd: number, offset: number, whence: number): Promise<number>;
  fadvise(fd: number, offset: number, len: number, advice: number): Promise<void>;
  mapIndexCache(path: SysPath): ArrayBuffer;
  setInline(on: boolean): void;
  dirStamps(root: SysPath): Buffer;
  copyUpSmall(
    src: SysPath, tmp: SysPath, dest: SysPath, parent: SysPath | null, uid: number, gid: number, perm: number,
    atime: Timespec, mtime: Timespec, originName: string | null, originValue: Buffer | null, size: number, reflink: boolean,
    umask: number, flush: boolean,
  ): Promise<number>;
}

const ADDON_RELATIVE = join('src', 'sys', 'native', 'build', 'Release', 'layerfs_sys.node');
const HINT = 'run npm install (builds src/sys/native)';

let loaded: Binding | undefined;

/** The package root: the nearest ancestor holding a package.json named "layerfs" (works from src/ and dist/). */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest)) {
      try {
        if ((JSON.parse(readFileSync(manifest, 'utf8')) as { name?: unknown }).name === 'layerfs') return dir;
      } catch {
        // An unreadable manifest is not ours; keep walking.
      }
    }
    const parent = dirname(dir);
    if (parent === dir) {
      throw new LayerfsError('NATIVE_BINDING', 'cannot find the layerfs package root to load layerfs_sys.node', { hint: HINT });
    }
    dir = parent;
  }
}

function binding(): Binding {
  if (loaded) return loaded;
  const file = join(packageRoot(), ADDON_RELATIVE);
  if (!existsSync(file)) {
    throw new LayerfsError('NATIVE_BINDING', `layerfs's syscall addon is not built (${file} is missing)`, { hint: HINT });
  }
  try {
    loaded = createRequire(import.meta.url)(file) as Binding;
  } catch (cause) {
    throw new LayerfsError('NATIVE_BINDING', `cannot load ${file}: ${(cause as Error).message}`, { cause, hint: HINT });
  }
  return loaded;
}

// The async wrappers are `async` so that a missing addon or a bad argument type becomes a
// rejection, like every other failure, instead of a synchronous throw.

/** The value of extended attribute `name` of `path` (not following a final symlink); null if absent. */
export async function lgetxattr(path: SysPath, name: string): Promise<Buffer | null> {
  return binding().lgetxattr(path, name);
}

/** The extended attribute names of `path` (not following a final symlink), in the kernel's order. */
export async function llistxattr(path: SysPath): Promise<string[]> {
  return binding().llistxattr(path);
}

/** Sets extended attribute `name` of `path`; flags 0, XATTR_CREATE or XATTR_REPLACE. */
export async function lsetxattr(path: SysPath, name: string, value: Buffer, flags = 0): Promise<void> {
  return binding().lsetxattr(path, name, value, flags);
}

/** Removes extended attribute `name` of `path`; rejects ENODATA if it is absent. */
export async function lremovexattr(path: SysPath, name: string): Promise<void> {
  return binding().lremovexattr(path, name);
}

/** Creates a device node, fifo, socket or regular file; `mode` includes the S_IF* bits. */
export async function mknod(path: SysPath, mode: number, dev: number): Promise<void> {
  return binding().mknod(path, mode, dev);
}

/** The device number of (major, minor), as fs.Stats.rdev reports it. */
export function makedev(major: number, minor: number): number {
  return binding().makedev(major, minor);
}

/** The major number of a device number. */
export function major(dev: number): number {
  return binding().major(dev);
}

/** The minor number of a device number. */
export function minor(dev: number): number {
  return binding().minor(dev);
}

/** Sets atime and mtime of `path` itself (a symlink is changed, not its target), to the nanosecond. */
export async function utimens(path: SysPath, atime: Timespec, mtime: Timespec): Promise<void> {
  return binding().utimens(path, atime, mtime);
}

/** Sets atime and mtime of an open file, to the nanosecond. */
export async function futimens(fd: number, atime: Timespec, mtime: Timespec): Promise<void> {
  return binding().futimens(fd, atime, mtime);
}

/** rename(2) with RENAME_NOREPLACE / RENAME_EXCHANGE / RENAME_WHITEOUT flags. */
export async function renameat2(from: SysPath, to: SysPath, flags: number): Promise<void> {
  return binding().renameat2(from, to, flags);
}

/** Makes `dstFd` share `srcFd`'s extents (reflink); rejects EOPNOTSUPP/EXDEV/EINVAL where unsupported. */
export async function ficlone(srcFd: number, dstFd: number): Promise<void> {
  return binding().ficlone(srcFd, dstFd);
}

/**
 * copy_file_range(2): copies up to `len` bytes in the kernel; resolves the bytes copied
 * (fewer at end of file, 0 at EOF). An offset of null uses and advances that fd's position.
 */
export async function copyFileRange(
  srcFd: number, srcOff: number | null, dstFd: number, dstOff: number | null, len: number,
): Promise<number> {
  return binding().copyFileRange(srcFd, srcOff, dstFd, dstOff, len);
}

/**
 * lseek(2) on the thread pool (SEEK_DATA may walk a long extent list): resolves the new
 * offset. With SEEK_DATA/SEEK_HOLE it maps a sparse file's data without reading it.
 */
export async function lseek(fd: number, offset: number, whence: number): Promise<number> {
  return binding().lseek(fd, offset, whence);
}

/** posix_fadvise(2): declares how `fd` will be read; len 0 means to the end of the file. */
export async function fadvise(fd: number, offset: number, len: number, advice: number): Promise<void> {
  return binding().fadvise(fd, offset, len, advice);
}

/**
 * From now on (process-wide) the cheap calls — xattrs, mknod, utimens, futimens, renameat2,
 * fadvise, copyFileRange of at most 64 KiB — run on the calling thread and return an
 * already settled Promise; ficlone, lseek and bigger copies, whose time grows with the
 * file, stay on the pool. For a FUSE
 * server, whose one JS thread waits on each call anyway: a pool hop is two thread
 * wake-ups, several times the syscall's own cost on a local filesystem.
 */
export function setInline(on: boolean): void {
  binding().setInline(on);
}

/**
 * The lower-index cache file `path`, mapped read-only (never write to it: the process
 * would fault), once the native reader (src/engine/native/lower-index.c) has checked its
 * CRC-32, its layer roots' st_ino and ctime and every offset. Synchronous (~15 ms for
 * 15 MB). Throws when the file cannot be used; its message says why.
 */
export function mapIndexCache(path: SysPath): ArrayBuffer {
  return binding().mapIndexCache(path);
}

/**
 * Every directory under `root`, depth first, names in byte order, one line each:
 * `<relative path>\0<st_dev> <st_ino> <mtime ns> <ctime ns>\n` (the root's path is empty).
 * Synchronous: three syscalls a directory and no object per entry (layerfs-overlay stamps
 * its lowers with it before every mount: src/sys/native/dir-stamps.c). Throws a system error
 * (code, errno, syscall 'dirStamps', path); ENAMETOOLONG at PATH_MAX.
 */
export function dirStamps(root: SysPath): Buffer {
  return binding().dirStamps(root);
}

/** The most data bytes copyUpSmall copies. */
export const COPY_UP_SMALL_MAX = 64 * 1024;

/** A small regular file's copy-up, for copyUpSmall. */
export interface SmallCopyUp {
  src: SysPath;
  /** Created O_EXCL; removed again if the copy fails before its rename. */
  tmp: SysPath;
  dest: SysPath;
  /** dest's directory, whose atime and mtime are restored after the rename; null: left as they are. */
  parent: SysPath | null;
  uid: number;
  gid: number;
  /** Permission bits (set after the owner: chown clears set-id bits). */
  perm: number;
  atime: Timespec;
  mtime: Timespec;
  origin: { name: string; value: Buffer } | null;
  /** Data bytes to copy, at most COPY_UP_SMALL_MAX. */
  size: number;
  /** Try FICLONE before copy_file_range. */
  reflink: boolean;
  /**
   * The process umask, if the caller knows it will not change during the call: a file
   * whose bits it keeps (and without set-id bits) is created with them, saving the chmod.
   */
  umask?: number;
  /** fdatasync the data before the rename (a durable copy-up of a file with data). */
  flush: boolean;
}

/**
 * One small regular file copied up in one call (src/sys/native/copy-up-small.c): open the
 * source (not when `size` is 0), create `tmp` O_EXCL, copy `size` bytes (reflink,
 * copy_file_range, read/write), fdatasync if `flush`, chown, chmod (unless `umask` let the
 * create set the bits), the origin xattr, the times, rename to `dest`, the parent's times
 * restored. Copies no xattrs: union/copy-up.ts sends only files without. Inline (setInline)
 * it runs on the calling thread and returns a settled Promise — unless it flushes: a flush
 * waits for the disk, which on the JS thread would stall every other request of the mount,
 * so the temp file is built on the pool and put in place (the rename, the parent's times)
 * back on the calling thread, with nothing run between that and the Promise's settling:
 * no request sees the copy in place before the union has recorded it. Resolves with
 * whether FICLONE was refused (EOPNOTSUPP, EXDEV, EINVAL: the caller stops trying it);
 * rejects with a system error (code, errno, syscall, path[, dest]).
 */
export async function copyUpSmall(c: SmallCopyUp): Promise<{ reflinkRefused: boolean }> {
  const refused = await binding().copyUpSmall(
    c.src, c.tmp, c.dest, c.parent, c.uid, c.gid, c.perm, c.atime, c.mtime, c.origin?.name ?? null, c.origin?.value ?? null, c.size, c.reflink, c.umask ?? -1, c.flush,
  );
  return { reflinkRefused: refused === 1 };
}
