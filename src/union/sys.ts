/**
 * The native syscall helpers as the union calls them (contract in src/sys/native.ts),
 * plus small promise wrappers over node:fs callbacks that take raw file descriptors (the
 * data path's, always on the pool; the cheap ones live in ./backing-calls.ts).
 * Raw fds (not fs/promises FileHandle objects) keep per-request overhead low: the FUSE
 * data path calls read/write once per request.
 */
import * as fs from 'node:fs';
import * as sys from '../sys/native.js';

/**
 * The native helpers, by the one contract src/sys/native.ts declares (its exports are
 * typed by it), under the name union code calls them by (`sys.lgetxattr(…)`).
 */
export { sys };

/** The fd calls that run inline in a serving mount process (./backing-calls.ts). */
export { closeFd, fchmodFd, fchownFd, fstatFd, ftruncateFd, openFd } from './backing-calls.js';

/** pread(2): bytes read. */
export function readFd(fd: number, buf: Buffer, off: number, len: number, pos: number): Promise<number> {
  return new Promise((resolve, reject) => {
    fs.read(fd, buf, off, len, pos, (err, n) => (err ? reject(err) : resolve(n)));
  });
}

/** pwrite(2) (or write(2) at the end when `pos` is null, for O_APPEND): bytes written. */
export function writeFd(fd: number, buf: Buffer, off: number, len: number, pos: number | null): Promise<number> {
  return new Promise((resolve, reject) => {
    fs.write(fd, buf, off, len, pos, (err, n) => (err ? reject(err) : resolve(n)));
  });
}

/** fsync(2) or fdatasync(2). */
export function fsyncFd(fd: number, datasync: boolean): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (err: NodeJS.ErrnoException | null): void => (err ? reject(err) : resolve());
    if (datasync) fs.fdatasync(fd, done);
    else fs.fsync(fd, done);
  });
}
