/**
 * Syscalls Node.js does not offer (xattrs, mknod, utimensat with nanoseconds, renameat2),
 * from layerfs's own small native addon (src/sys/native/). Every call runs on libuv's
 * thread pool, never blocking the event loop, and never follows a final symlink.
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
 */
export {};
