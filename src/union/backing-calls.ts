/**
 * The node:fs/promises calls the union makes on backing files (upper and lower layers),
 * under the same names and types, so a file switches by its import line alone.
 *
 * By default each is node:fs/promises itself: a libuv pool hop per call, which keeps the
 * event loop free while the syscall runs. A FUSE server is different: its one JS thread
 * waits on each call before it can reply, and a pool hop (wake a pool thread, then wake
 * the loop) costs several times what an lstat, open or rename of a local file does — on 2
 * busy cores most of a request's time (native-notes/sys-addon.md, "Inline calls"). After
 * `runBackingCallsInline()` the cheap calls run synchronously on the calling thread and
 * return a settled Promise; the callers still await them, so nothing else changes.
 * `rm` stays asynchronous but for a small flat directory (see rm): a recursive removal
 * grows with the tree and would stall every other request for its whole length.
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import { promisify } from 'node:util';
import * as sys from '../sys/native.js';

let inline = false;

/**
 * From now on, in this process, metadata calls on backing files (these and the native
 * helpers' cheap ones, src/sys/native.ts `setInline`) run on the calling thread. For the
 * mount process, once it serves: an index build before that still overlaps its lstats.
 */
export function runBackingCallsInline(on = true): void {
  inline = on;
  sys.setInline(on);
}

/** Whether backing calls run inline in this process. */
export function backingCallsInline(): boolean {
  return inline;
}

/** `promised` or, inline, `sync` settled into a Promise (a throw becomes the rejection). */
function either<F extends (...args: never[]) => Promise<unknown>>(promised: F, sync: (...args: never[]) => unknown): F {
  return ((...args: Parameters<F>) => (inline ? settled(() => sync(...args)) : promised(...args))) as F;
}

export const chmod = either(fsp.chmod, fs.chmodSync);
export const lchown = either(fsp.lchown, fs.lchownSync);
export const link = either(fsp.link, fs.linkSync);
export const lstat = either(fsp.lstat, fs.lstatSync);
export const mkdir = either(fsp.mkdir, fs.mkdirSync);
export const readdir = either(fsp.readdir, fs.readdirSync);
export const readlink = either(fsp.readlink, fs.readlinkSync);
export const rename = either(fsp.rename, fs.renameSync);
export const rmdir = either(fsp.rmdir, fs.rmdirSync);
export const statfs = either(fsp.statfs, fs.statfsSync);
export const symlink = either(fsp.symlink, fs.symlinkSync);
export const truncate = either(fsp.truncate, fs.truncateSync);
export const unlink = either(fsp.unlink, fs.unlinkSync);

/** The most entries an inline rm -r removes itself (see rm). */
const SMALL_TREE = 64;

/**
 * rm(path, { recursive: true, force: true }). Inline, a directory of at most SMALL_TREE
 * entries none of which is a directory — what a removed merged directory leaves behind in
 * the work dir, its whiteouts — goes synchronously: on the pool each of its unlinks is a
 * hop, and `rm -rf` of a lower tree paid ~3 ms per directory (measured in the mount
 * process). Anything bigger, or any surprise, goes to node's own rm on the pool, where a
 * big tree cannot stall every other request.
 */
export function rm(path: string | Buffer, options: fs.RmOptions): Promise<void> {
  if (inline && options.recursive === true && removedFlatDir(path)) return Promise.resolve();
  return fsp.rm(path, options);
}

/** Removes `dir` and its non-directory entries if it holds at most SMALL_TREE; false (nothing or part removed) otherwise. */
function removedFlatDir(dir: string | Buffer): boolean {
  try {
    const base = typeof dir === 'string' ? Buffer.from(dir) : dir;
    const entries = fs.readdirSync(base, { withFileTypes: true, encoding: 'buffer' });
    if (entries.length > SMALL_TREE || entries.some((e) => e.isDirectory())) return false;
    for (const e of entries) fs.unlinkSync(Buffer.concat([base, Buffer.from('/'), e.name]));
    fs.rmdirSync(base);
    return true;
  } catch {
    return false; // not a directory, gone, or changed under us: node's rm decides
  }
}

/** open(2) on a raw fd. */
export function openFd(path: Buffer, flags: number, mode = 0o666): Promise<number> {
  if (inline) return settled(() => fs.openSync(path, flags, mode));
  return new Promise((resolve, reject) => {
    fs.open(path, flags, mode, (err, fd) => (err ? reject(err) : resolve(fd)));
  });
}

/** close(2). */
export const closeFd = either(promisify(fs.close), fs.closeSync);
/** ftruncate(2). */
export const ftruncateFd = either(promisify(fs.ftruncate) as (fd: number, len: number) => Promise<void>, fs.ftruncateSync);
/** fchown(2). */
export const fchownFd = either(promisify(fs.fchown), fs.fchownSync);
/** fchmod(2). */
export const fchmodFd = either(promisify(fs.fchmod), fs.fchmodSync);

/** fstat(2) with nanosecond times. */
export function fstatFd(fd: number): Promise<fs.BigIntStats> {
  if (inline) return settled(() => fs.fstatSync(fd, { bigint: true }));
  return new Promise((resolve, reject) => {
    fs.fstat(fd, { bigint: true }, (err, st) => (err ? reject(err) : resolve(st)));
  });
}

function settled<T>(call: () => T): Promise<T> {
  try {
    return Promise.resolve(call());
  } catch (err) {
    return Promise.reject(err as Error);
  }
}
