/**
 * The open-file table: one backing fd per open file, kept from open to release, so the
 * data path costs one pread/pwrite per request. A handle opened read-only on a lower file
 * keeps reading that lower file even if another writer copies it up meanwhile (as with
 * the kernel overlayfs).
 */
import { closeSync } from 'node:fs';
import { fsError } from './fs-error.js';
import type { LowerEntry } from './lower-index.js';
import { closeFd } from './sys.js';

/** One open file. */
export interface OpenFile {
  fd: number;
  path: string;
  /** st_ino to report for fgetattr; undefined: derive from the backing inode. */
  ino: number | undefined;
  /** Lower layer backing the fd, or -1 for the writable layer. */
  layer: number;
  /** Set when a write must clear setuid/setgid first (writer lacks CAP_FSETID). */
  killPrivs: boolean;
  /** A lower file's path in its layer and index entry (UnionFilesystem.lowerFile). */
  lower?: { path: string; entry: LowerEntry };
}

export class HandleTable {
  private readonly files = new Map<number, OpenFile>();
  private next = 1;

  /** Registers an open file; returns its handle number. */
  add(file: OpenFile): number {
    while (this.files.has(this.next)) this.next = this.next >= 0x7fffffff ? 1 : this.next + 1;
    const fh = this.next;
    this.next = this.next >= 0x7fffffff ? 1 : this.next + 1;
    this.files.set(fh, file);
    return fh;
  }

  /** Registers an open file under a number chosen elsewhere (above add()'s range: a FUSE
   * server's own handle for a file it opened, PathFilesystem.adoptCopyUp). */
  adopt(fh: number, file: OpenFile): void {
    if (fh <= 0x7fffffff || this.files.has(fh)) throw fsError('EINVAL', String(fh), 'adopted file handle');
    this.files.set(fh, file);
  }

  /** Forgets `fh` without closing its fd (closed by whoever adopt()ed it into the table). */
  forget(fh: number): void {
    this.files.delete(fh);
  }

  /** The open file behind `fh`, or EBADF. */
  get(fh: number): OpenFile {
    const f = this.files.get(fh);
    if (f === undefined) throw fsError('EBADF', String(fh), 'file handle');
    return f;
  }

  /** Closes and forgets `fh`. */
  async release(fh: number): Promise<void> {
    const f = this.get(fh);
    this.files.delete(fh);
    // A read-only layer file closes in microseconds (nothing to write back): at once,
    // without waking a libuv pool thread, which cost ~45 µs per release on 2 busy cores.
    if (f.layer >= 0) closeSync(f.fd);
    else await closeFd(f.fd);
  }

  /** Closes every open file (at unmount). */
  async closeAll(): Promise<void> {
    const fds = [...this.files.values()].map((f) => f.fd);
    this.files.clear();
    await Promise.all(fds.map((fd) => closeFd(fd).catch(() => undefined)));
  }
}
