/**
 * The native syscall helpers as the union calls them (contract in src/sys/native.ts),
 * plus small promise wrappers over node:fs callbacks that take raw file descriptors.
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

/** open(2) on a raw fd. */
export function openFd(path: Buffer, flags: number, mode = 0o666): Promise<number> {
  return new Promise((resolve, reject) => {
    fs.open(path, flags, mode, (err, fd) => (err ? reject(err) : resolve(fd)));
  });
}

/** close(2). */
export function closeFd(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fs.close(fd, (err) => (err ? reject(err) : resolve())));
}

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

/** fstat(2) with nanosecond times. */
export function fstatFd(fd: number): Promise<fs.BigIntStats> {
  return new Promise((resolve, reject) => {
    fs.fstat(fd, { bigint: true }, (err, st) => (err ? reject(err) : resolve(st)));
  });
}

/** ftruncate(2). */
export function ftruncateFd(fd: number, len: number): Promise<void> {
  return new Promise((resolve, reject) => fs.ftruncate(fd, len, (err) => (err ? reject(err) : resolve())));
}

/** fsync(2) or fdatasync(2). */
export function fsyncFd(fd: number, datasync: boolean): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (err: NodeJS.ErrnoException | null): void => (err ? reject(err) : resolve());
    if (datasync) fs.fdatasync(fd, done);
    else fs.fsync(fd, done);
  });
}

/** fchown(2). */
export function fchownFd(fd: number, uid: number, gid: number): Promise<void> {
  return new Promise((resolve, reject) => fs.fchown(fd, uid, gid, (err) => (err ? reject(err) : resolve())));
}

/** fchmod(2). */
export function fchmodFd(fd: number, mode: number): Promise<void> {
  return new Promise((resolve, reject) => fs.fchmod(fd, mode, (err) => (err ? reject(err) : resolve())));
}
