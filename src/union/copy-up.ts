/**
 * Copy-up of one lower object into the writable layer, built in the work directory and
 * renamed into place, so a process killed mid-copy never leaves a half file visible
 * (the kernel overlayfs algorithm). Data goes by reflink (FICLONE) when the filesystem
 * offers it, else copy_file_range(2), else a read/write loop. Mode, owner, xattrs (minus
 * overlay markers) and atime/mtime to the nanosecond are preserved; the origin inode
 * number is recorded so st_ino does not change. The parent's times are restored after
 * the rename, as the kernel does, so a copy-up is invisible in the parent's mtime.
 */
import * as fsp from 'node:fs/promises';
import { constants as C } from 'node:fs';
import { hasErrnoCode } from '../core/errors.js';
import { encodeOrigin, lowerIno } from './inode.js';
import type { LowerEntry, LowerIndex } from './lower-index.js';
import { isPrivateStoredXattr, ORIGIN_XATTR, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG } from './overlay-format.js';
import { closeFd, fchmodFd, fchownFd, ftruncateFd, openFd, readFd, sys, writeFd } from './sys.js';

/** Largest single copy_file_range request (the kernel caps one call near 2 GiB). */
const RANGE_CHUNK = 1 << 30;
const LOOP_CHUNK = 1 << 20;

/** What the filesystem pair has been found to support (learned on first use, then kept). */
export interface CopyCaps {
  /** False once FICLONE failed: later copy-ups skip straight to copy_file_range. */
  reflink: boolean;
}

/**
 * Copies lower object `entry` (at index path `lowerPath`) to `dest` via the temp path
 * `tmp`. With `data` false a regular file is copied empty (the caller truncates it).
 */
export async function copyUpObject(
  caps: CopyCaps,
  index: LowerIndex,
  lowerPath: string,
  entry: LowerEntry,
  tmp: Buffer,
  dest: Buffer,
  data: boolean,
): Promise<number> {
  const src = index.realPath(entry.layer, lowerPath);
  const type = entry.mode & S_IFMT;
  const perm = entry.mode & 0o7777;
  const origin = lowerIno(entry.layer, entry.ino);
  const atime = { sec: entry.atimeSec, nsec: entry.atimeNsec };
  const mtime = { sec: entry.mtimeSec, nsec: entry.mtimeNsec };
  try {
    if (type === S_IFREG) {
      const srcFd = await openFd(src, C.O_RDONLY | C.O_NOFOLLOW);
      try {
        const dstFd = await openFd(tmp, C.O_WRONLY | C.O_CREAT | C.O_EXCL, 0o600);
        try {
          if (data && entry.size > 0) {
            // A sparse file (fewer blocks than bytes) keeps its holes; others go fast.
            if (entry.blocks * 512 < entry.size) await copySparse(srcFd, dstFd, entry.size);
            else await copyData(caps, srcFd, dstFd, entry.size);
          }
          // chown before chmod: chown clears setuid/setgid bits.
          await fchownFd(dstFd, entry.uid, entry.gid);
          await fchmodFd(dstFd, perm);
        } finally {
          await closeFd(dstFd);
        }
      } finally {
        await closeFd(srcFd);
      }
    } else if (type === S_IFDIR) {
      await fsp.mkdir(tmp, 0o700);
      await fsp.lchown(tmp, entry.uid, entry.gid);
      await fsp.chmod(tmp, perm);
    } else if (type === S_IFLNK) {
      const target = await index.readlink(lowerPath, entry);
      await fsp.symlink(Buffer.from(target, 'latin1'), tmp);
      await fsp.lchown(tmp, entry.uid, entry.gid);
    } else {
      await sys.mknod(tmp, entry.mode, entry.rdev);
      await fsp.lchown(tmp, entry.uid, entry.gid);
      await fsp.chmod(tmp, perm);
    }
    await copyXattrs(src, tmp, type === S_IFLNK);
    await sys.lsetxattr(tmp, ORIGIN_XATTR, encodeOrigin(origin));
    await sys.utimens(tmp, atime, mtime);
    await fsp.rename(tmp, dest);
  } catch (err) {
    await fsp.rm(tmp, { recursive: true, force: true }).catch(() => undefined);
    throw err;
  }
  return origin;
}

/** Copies `size` bytes between fds, fastest way first. */
async function copyData(caps: CopyCaps, srcFd: number, dstFd: number, size: number): Promise<void> {
  if (caps.reflink) {
    try {
      await sys.ficlone(srcFd, dstFd);
      return;
    } catch (err) {
      // No reflink here (ext4, tmpfs, across filesystems): remember, and fall through.
      if (hasErrnoCode(err, 'EOPNOTSUPP') || hasErrnoCode(err, 'EXDEV') || hasErrnoCode(err, 'EINVAL')) caps.reflink = false;
    }
  }
  let off = 0;
  try {
    while (off < size) {
      const n = await sys.copyFileRange(srcFd, off, dstFd, off, Math.min(RANGE_CHUNK, size - off));
      if (n <= 0) break;
      off += n;
    }
    return;
  } catch (err) {
    if (!['EXDEV', 'EOPNOTSUPP', 'ENOSYS', 'EINVAL'].some((c) => hasErrnoCode(err, c as 'EXDEV'))) throw err;
  }
  const buf = Buffer.allocUnsafe(LOOP_CHUNK);
  while (off < size) {
    const n = await readFd(srcFd, buf, 0, Math.min(LOOP_CHUNK, size - off), off);
    if (n === 0) break;
    let w = 0;
    while (w < n) w += await writeFd(dstFd, buf, w, n - w, off + w);
    off += n;
  }
}

/**
 * Copies a sparse file without filling its holes: all-zero chunks are skipped and the
 * size is set at the end, so holes stay holes. (SEEK_DATA/SEEK_HOLE would avoid reading
 * the holes at all; node:fs has no lseek, and reading a hole costs no disk I/O.)
 */
async function copySparse(srcFd: number, dstFd: number, size: number): Promise<void> {
  const buf = Buffer.allocUnsafe(LOOP_CHUNK);
  const zero = Buffer.alloc(LOOP_CHUNK);
  let off = 0;
  while (off < size) {
    const n = await readFd(srcFd, buf, 0, Math.min(LOOP_CHUNK, size - off), off);
    if (n === 0) break;
    if (!buf.subarray(0, n).equals(zero.subarray(0, n))) {
      let w = 0;
      while (w < n) w += await writeFd(dstFd, buf, w, n - w, off + w);
    }
    off += n;
  }
  await ftruncateFd(dstFd, size);
}

/** Copies every xattr but the overlay's own markers. */
export async function copyXattrs(src: Buffer, dst: Buffer, isSymlink: boolean): Promise<void> {
  const names = await sys.llistxattr(src);
  for (const name of names) {
    if (isPrivateStoredXattr(name)) continue;
    const value = await sys.lgetxattr(src, name);
    if (value === null) continue;
    try {
      await sys.lsetxattr(dst, name, value);
    } catch (err) {
      // Linux refuses user.* xattrs on symlinks; they cannot exist on the source either.
      if (!(isSymlink && hasErrnoCode(err, 'EPERM'))) throw err;
    }
  }
}
