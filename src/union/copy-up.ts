/**
 * Copy-up of one lower object into the writable layer, built in the work directory and
 * renamed into place, so a process killed mid-copy never leaves a half file visible
 * (the kernel overlayfs algorithm). Data goes by reflink (FICLONE) when the filesystem
 * offers it, else copy_file_range(2) (in the kernel, the path `cp` takes on one
 * filesystem), else a read/write loop; a sparse file copies its data extents only
 * (SEEK_DATA/SEEK_HOLE), so holes stay holes and are never read. Mode, owner, xattrs
 * (minus overlay markers) and atime/mtime to the nanosecond are preserved; the origin
 * inode number is recorded so st_ino does not change (except for a file with other names
 * below: its copy is a new inode). The parent's times are restored
 * after the rename, as the kernel does, so a copy-up is invisible in the parent's mtime.
 *
 * In a serving mount process (calls inline, union/backing-calls.ts) a regular file with
 * no xattrs and at most 64 KiB of data — an empty file, the common case of a container's
 * first write to a lower file, or a small configuration file — is copied up by one native
 * call doing these same steps (src/sys/native/copy-up-small.c) instead of 12 awaited ones,
 * each a JS-to-native round trip with Buffer conversions and a settled Promise. It runs on
 * the JS thread; when it flushes, the temp file is built on the pool and renamed into place
 * back on the JS thread.
 *
 * Durability. A killed layerfs loses nothing (the page cache outlives the process), but
 * after a kernel crash or power loss the journal may hold the rename and not yet the
 * data (ext4 delayed allocation): the upper file comes back empty or short and hides the
 * intact lower one, so a file nobody truncated reads empty. Hence, by default, the data
 * is flushed (fdatasync) before the rename, as kernel overlayfs does unless mounted
 * `volatile`: what Docker's overlay2 users get. It is the only cost layerfs adds to the
 * copy: 1 GiB cold on ext4, medians of up to 18 interleaved rounds (native-notes/
 * performance.md, "Copy-up"): cp --reflink=auto 0.76 s; copy-up without the flush 0.82 s
 * (1.07× cp per round); with it 1.27 s (1.63×, as kernel overlayfs: 1.63×). So issue 5's
 * "within 10 % of cp" holds only without the flush: LAYERFS_COPY_UP_FSYNC=0 (or
 * CopyCaps.durable = false) skips it, as podman does for `--rm` containers and CRI-O for
 * all of its (overlayfs `volatile`): for containers thrown away after a crash anyway.
 */
import * as fsp from './backing-calls.js';
import { constants as C } from 'node:fs';
import { hasErrnoCode } from '../core/errors.js';
import { encodeOrigin, isPrivateStoredXattr, lowerIno, ORIGIN_XATTR, OVERLAY_XATTR_NS, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG } from '../overlay/index.js';
import type { LowerEntry, LowerIndex } from './lower-index.js';
import type { OverrideStat } from '../core/override-stat.js';
import { OWNER_OVERRIDES, setOwnership } from './owner-override.js';
import { COPY_UP_SMALL_MAX, POSIX_FADV_SEQUENTIAL, SEEK_DATA, SEEK_HOLE } from '../sys/native.js';
import { backing, PATH_MAX } from './backing-path.js';
import { fixedProcessUmask } from './process-umask.js';
import { closeFd, fchmodFd, fchownFd, fsyncFd, ftruncateFd, openFd, readFd, sys, writeFd } from './sys.js';

/** Largest single copy_file_range request (the kernel caps one call near 2 GiB). */
const RANGE_CHUNK = 1 << 30;
const LOOP_CHUNK = 1 << 20;
/** copy_file_range errors that mean "not between these two files": copy another way. */
const RANGE_UNSUPPORTED = ['EXDEV', 'EOPNOTSUPP', 'ENOSYS', 'EINVAL'] as const;
/** lseek errors of a filesystem that cannot map holes (SEEK_DATA/SEEK_HOLE). */
const SEEK_UNSUPPORTED = ['EINVAL', 'EOPNOTSUPP', 'ENOSYS'] as const;

/** What the filesystem pair has been found to support (learned on first use, then kept). */
export interface CopyCaps {
  /** False once FICLONE failed: later copy-ups skip straight to copy_file_range. */
  reflink: boolean;
  /**
   * Flush a regular file's data (fdatasync) before it is renamed into place. Unset means
   * the process default: on, unless LAYERFS_COPY_UP_FSYNC=0 (see the top of this file).
   */
  durable?: boolean;
}

/** The default for CopyCaps.durable, read when a copy-up needs it. */
export function durableByDefault(): boolean {
  return process.env.LAYERFS_COPY_UP_FSYNC !== '0';
}

/**
 * Copies lower object `entry` (at index path `lowerPath`) to `dest` via the temp path
 * `tmp`, then restores the times of `parent` (dest's directory) that the rename changed.
 * With `data` false a regular file is copied empty (the caller truncates it).
 * Returns the st_ino the copy keeps (undefined when it takes its own) and the owner
 * override it carries (owner-override.ts: a rootless mount that cannot chown).
 */
export async function copyUpObject(
  caps: CopyCaps,
  index: LowerIndex,
  lowerPath: string,
  entry: LowerEntry,
  tmp: Buffer,
  dest: Buffer,
  parent: Buffer,
  data: boolean,
): Promise<CopiedUp> {
  const src = index.realPath(entry.layer, lowerPath);
  const type = entry.mode & S_IFMT;
  // A lower file with more than one name: the copy is a new inode (the hard link is
  // broken, as by the kernel's overlayfs without index=on), so it takes its own number, as
  // the kernel's does; keeping the original's would give two different files (the copy
  // and a sibling still below) one st_ino, and tar, rsync or du would take them for links.
  const origin = type !== S_IFDIR && entry.nlink > 1 ? undefined : lowerIno(entry.layer, entry.ino);
  if (type === S_IFREG && inOneCall(caps, entry, data, [src, tmp, dest, parent])) {
    const { reflinkRefused } = await sys.copyUpSmall({
      src, tmp, dest, parent,
      uid: entry.uid, gid: entry.gid, perm: entry.mode & 0o7777,
      atime: { sec: entry.atimeSec, nsec: entry.atimeNsec },
      mtime: { sec: entry.mtimeSec, nsec: entry.mtimeNsec },
      origin: origin === undefined ? null : { name: ORIGIN_XATTR, value: encodeOrigin(origin) },
      size: data ? entry.size : 0,
      reflink: caps.reflink,
      umask: fixedProcessUmask(),
      flush: data && entry.size > 0 && (caps.durable ?? durableByDefault()),
    });
    if (reflinkRefused) caps.reflink = false;
    return { origin, override: undefined };
  }
  const pst = await backing.lstatBig(parent);
  const copied = await copyUp(caps, src, lowerPath, index, entry, tmp, dest, origin, data);
  // The rename into the parent changed its times; the kernel restores them too.
  await backing.utimens(parent, nsTime(pst.atimeNs), nsTime(pst.mtimeNs));
  return copied;
}

/**
 * Whether a regular file's copy-up is one native call (see the top of the file): calls
 * inline, no owner override, no xattrs to copy, at most COPY_UP_SMALL_MAX bytes without
 * holes to keep, and every path short enough to pass whole.
 */
function inOneCall(caps: CopyCaps, entry: LowerEntry, data: boolean, paths: Buffer[]): boolean {
  if (!fsp.backingCallsInline() || OWNER_OVERRIDES || entry.xattrs) return false;
  const size = data ? entry.size : 0;
  if (size > 0 && (size > COPY_UP_SMALL_MAX || entry.blocks * 512 < size)) return false;
  return paths.every((p) => p.length < PATH_MAX);
}

function nsTime(ns: bigint): { sec: number; nsec: number } {
  return { sec: Number(ns / 1_000_000_000n), nsec: Number(ns % 1_000_000_000n) };
}

/** The general copy-up: every type, xattrs, owner overrides, any size, the flush. */
async function copyUp(
  caps: CopyCaps,
  src: Buffer,
  lowerPath: string,
  index: LowerIndex,
  entry: LowerEntry,
  tmp: Buffer,
  dest: Buffer,
  origin: number | undefined,
  data: boolean,
): Promise<CopiedUp> {
  const type = entry.mode & S_IFMT;
  const perm = entry.mode & 0o7777;
  const atime = { sec: entry.atimeSec, nsec: entry.atimeNsec };
  const mtime = { sec: entry.mtimeSec, nsec: entry.mtimeNsec };
  let override: OverrideStat | undefined;
  // chown before chmod: chown clears setuid/setgid bits.
  const own = async (fd: number | undefined): Promise<void> => {
    if (OWNER_OVERRIDES) {
      override = await setOwnership(tmp, fd, type, { uid: entry.uid, gid: entry.gid, mode: perm }, undefined);
    } else if (fd !== undefined) {
      await fchownFd(fd, entry.uid, entry.gid);
      await fchmodFd(fd, perm);
    } else {
      await fsp.lchown(tmp, entry.uid, entry.gid);
      if (type !== S_IFLNK) await fsp.chmod(tmp, perm);
    }
  };
  try {
    if (type === S_IFREG) {
      const srcFd = await backing.open(src, C.O_RDONLY | C.O_NOFOLLOW);
      try {
        const dstFd = await openFd(tmp, C.O_WRONLY | C.O_CREAT | C.O_EXCL, 0o600);
        try {
          if (data && entry.size > 0) {
            // A sparse file (fewer blocks than bytes) keeps its holes.
            await copyData(caps, srcFd, dstFd, entry.size, entry.blocks * 512 < entry.size);
            // Before the rename, so no crash can leave a renamed file without its data.
            // fdatasync suffices: it commits the size and extents; the metadata set
            // below is journaled ahead of the rename on ext4 and xfs.
            if (caps.durable ?? durableByDefault()) await fsyncFd(dstFd, true);
          }
          await own(dstFd);
        } finally {
          await closeFd(dstFd);
        }
      } finally {
        await closeFd(srcFd);
      }
    } else if (type === S_IFDIR) {
      await fsp.mkdir(tmp, 0o700);
      await own(undefined);
    } else if (type === S_IFLNK) {
      const target = await index.readlink(lowerPath, entry);
      await fsp.symlink(Buffer.from(target, 'latin1'), tmp);
      await own(undefined);
    } else {
      await sys.mknod(tmp, entry.mode, entry.rdev);
      await own(undefined);
    }
    // The index knows the lower objects without any (what getxattr answers from, too).
    if (entry.xattrs) await copyXattrs(src, tmp, type === S_IFLNK);
    // The kernel refuses user.* xattrs on symlinks and special files: a rootless copy keeps
    // its origin for this mount only (as the kernel's overlayfs with userxattr does).
    if (origin !== undefined && (OVERLAY_XATTR_NS === 'trusted' || type === S_IFREG || type === S_IFDIR)) {
      await sys.lsetxattr(tmp, ORIGIN_XATTR, encodeOrigin(origin));
    }
    await sys.utimens(tmp, atime, mtime);
    await backing.rename(tmp, dest);
  } catch (err) {
    await fsp.rm(tmp, { recursive: true, force: true }).catch(() => undefined);
    throw err;
  }
  return { origin, override };
}

/** What a copy-up made: the st_ino kept, the owner override carried. */
export interface CopiedUp {
  origin: number | undefined;
  override: OverrideStat | undefined;
}

/** Copies a whole file of `size` bytes between fds, fastest way first. */
async function copyData(caps: CopyCaps, srcFd: number, dstFd: number, size: number, sparse: boolean): Promise<void> {
  if (caps.reflink) {
    try {
      // A clone shares extents, holes included.
      await sys.ficlone(srcFd, dstFd);
      return;
    } catch (err) {
      // No reflink here (ext4, tmpfs, across filesystems): remember, and fall through.
      if (hasErrnoCode(err, 'EOPNOTSUPP') || hasErrnoCode(err, 'EXDEV') || hasErrnoCode(err, 'EINVAL')) caps.reflink = false;
    }
  }
  // What cp does: a doubled readahead window for the source, for this open file only
  // (cold 1 GiB, paired: ≈ 6 % faster in one series, no difference in another).
  await sys.fadvise(srcFd, 0, 0, POSIX_FADV_SEQUENTIAL).catch(() => undefined); // advice only
  if (sparse) await copySparse(srcFd, dstFd, size);
  else await copyRange(srcFd, dstFd, 0, size);
}

/**
 * Copies bytes [start, start + len) to the same offsets: copy_file_range (data never
 * enters this process; on one filesystem it is the path `cp` takes), else read/write.
 */
async function copyRange(srcFd: number, dstFd: number, start: number, len: number): Promise<void> {
  const end = start + len;
  let off = start;
  try {
    while (off < end) {
      const n = await sys.copyFileRange(srcFd, off, dstFd, off, Math.min(RANGE_CHUNK, end - off));
      if (n <= 0) return;
      off += n;
    }
    return;
  } catch (err) {
    // Not remembered (unlike reflink): lowers may sit on several filesystems, and the
    // refusal costs one syscall.
    if (!RANGE_UNSUPPORTED.some((c) => hasErrnoCode(err, c))) throw err;
  }
  const buf = Buffer.allocUnsafe(LOOP_CHUNK);
  while (off < end) {
    const n = await readFd(srcFd, buf, 0, Math.min(LOOP_CHUNK, end - off), off);
    if (n === 0) break;
    let w = 0;
    while (w < n) w += await writeFd(dstFd, buf, w, n - w, off + w);
    off += n;
  }
}

/**
 * Copies a sparse file's data extents only (SEEK_DATA/SEEK_HOLE), then sets the size, so
 * holes stay holes and are never read. A filesystem that cannot map its holes gets a
 * plain copy (right bytes, holes filled).
 */
async function copySparse(srcFd: number, dstFd: number, size: number): Promise<void> {
  let off = 0;
  try {
    off = await nextData(srcFd, 0);
  } catch (err) {
    if (!SEEK_UNSUPPORTED.some((c) => hasErrnoCode(err, c))) throw err;
    await copyRange(srcFd, dstFd, 0, size);
    return;
  }
  while (off >= 0 && off < size) {
    const hole = Math.min(await sys.lseek(srcFd, off, SEEK_HOLE), size);
    await copyRange(srcFd, dstFd, off, hole - off);
    off = hole < size ? await nextData(srcFd, hole) : size;
  }
  await ftruncateFd(dstFd, size);
}

/** The next offset at or after `off` holding data; -1 when only a hole follows. */
async function nextData(fd: number, off: number): Promise<number> {
  try {
    return await sys.lseek(fd, off, SEEK_DATA);
  } catch (err) {
    // ENXIO is not among core's errno names (layerfs never replies with it).
    if ((err as NodeJS.ErrnoException | undefined)?.code === 'ENXIO') return -1;
    throw err;
  }
}

/** Copies every xattr but the overlay's own markers. */
export async function copyXattrs(src: Buffer, dst: Buffer, isSymlink: boolean): Promise<void> {
  const names = await backing.llistxattr(src);
  for (const name of names) {
    if (isPrivateStoredXattr(name)) continue;
    const value = await backing.lgetxattr(src, name);
    if (value === null) continue;
    try {
      await backing.lsetxattr(dst, name, value);
    } catch (err) {
      // Linux refuses user.* xattrs on symlinks; they cannot exist on the source either.
      if (!(isSymlink && hasErrnoCode(err, 'EPERM'))) throw err;
    }
  }
}
