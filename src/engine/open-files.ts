/**
 * Open regular files and where their data goes.
 *
 * - passthrough: the kernel reads and writes the backing file itself (FOPEN_PASSTHROUGH +
 *   a backing id); no READ or WRITE request reaches the engine.
 * - fd: READ is answered from the backing fd off the JS thread (replyFromFd), WRITE is a
 *   pwrite on it (write()); the data never passes through the filesystem's JS.
 * - fs: filesystem.read/write (no fd handed over, or the write must clear setuid first).
 *
 * The kernel allows ONE backing file per inode at a time and refuses to mix passthrough and
 * page-cached opens of one inode (fs/fuse/iomode.c: EBUSY / ETXTBSY). So a node's backing
 * id is shared by all its passthrough opens (refcounted, closed with the last) — kept in
 * the device (FuseDevice.backingShare), because the device's request loop opens lower
 * files of the same nodes itself (registerLowerOpen) and must share it too. When
 * passthrough is on, an open that cannot use it (another backing file after a copy-up, a
 * read-only backing for a writer) gets FOPEN_DIRECT_IO, which stays out of that accounting.
 */
import { fstatSync, writeSync } from 'node:fs';
import type { DirectIo, PathFilesystem } from '../core/filesystem.js';
import type { FuseDevice } from './device.js';
import type { Node } from './node-table.js';
import { FOpen } from './wire.js';

const O_ACCMODE = 3;
/**
 * A WRITE up to this size is made on the JS thread: a pwrite of a few KiB into the page
 * cache takes microseconds, less than handing it to another thread (native-notes/engine.md,
 * "Writes without passthrough"). fuse-overlayfs makes every write on its one thread; bigger
 * writes go to the device's IO threads, where a slow disk stalls no other request.
 */
const INLINE_WRITE_MAX = 64 * 1024;
const S_ISUID = 0o4000;
const S_ISGID = 0o2000;

export interface OpenFile {
  fh: number;
  node: Node;
  mode: 'passthrough' | 'fd' | 'fs';
  fd: number;
  /** fd is open for writing and the filesystem lets the engine write it. */
  writeFd: boolean;
}

export interface OpenPolicy {
  /** The kernel accepted FUSE_PASSTHROUGH at INIT. */
  passthrough: boolean;
  /** Use fds the filesystem hands over (directIo); off, all data goes through it. */
  directData: boolean;
}

export class OpenFiles {
  private readonly files = new Map<number, OpenFile>();
  /** Why passthrough was refused, once (for the log). */
  lastBackingError: Error | undefined;

  constructor(
    private readonly filesystem: PathFilesystem,
    private readonly device: FuseDevice,
    readonly policy: OpenPolicy,
  ) {}

  get(fh: number): OpenFile | undefined {
    return this.files.get(fh);
  }

  /**
   * Registers the filesystem's handle `fh` for `node`; returns open_out's flags and
   * backing id, or null when the node cannot take this open (it has passthrough opens on
   * another backing file: the caller retires the node and has the kernel look it up anew).
   */
  opened(node: Node, fh: number, flags: number): { openFlags: number; backingId: number } | null {
    const wantWrite = (flags & O_ACCMODE) !== 0;
    const direct = this.policy.directData ? this.filesystem.directIo?.(fh) : undefined;
    const file: OpenFile = { fh, node, mode: 'fs', fd: -1, writeFd: false };
    if (direct !== undefined) {
      file.fd = direct.fd;
      file.writeFd = wantWrite && direct.write;
      file.mode = 'fd';
    }
    let openFlags = 0;
    let backingId = 0;
    if (this.policy.passthrough) {
      const id = direct !== undefined ? this.shareBacking(node, fh, direct, wantWrite) : undefined;
      if (id !== undefined) {
        file.mode = 'passthrough';
        openFlags |= FOpen.PASSTHROUGH;
        backingId = id;
      } else if (this.device.backingShare(node.id, -1, false) !== 'none') {
        // The kernel refuses a non-passthrough open of an inode with passthrough opens.
        return null;
      } else {
        // Direct I/O stays out of the kernel's inode I/O modes, so later opens of the same
        // node can still be passthrough.
        openFlags |= FOpen.DIRECT_IO;
      }
    } else if (this.filesystem.keepCache?.(fh)) {
      openFlags |= FOpen.KEEP_CACHE;
    }
    this.files.set(fh, file);
    node.addHandle(fh);
    return { openFlags, backingId };
  }

  /** The request loop opened a copy-up of `node` as `fd` and answered the OPEN with handle
   * `fh` (passthrough: on the node's backing, one reference of which is this open's);
   * the filesystem adopted it (adoptCopyUp). Its later requests are answered here. */
  adopted(node: Node, fh: number, fd: number, passthrough: boolean): void {
    this.files.set(fh, { fh, node, mode: passthrough ? 'passthrough' : 'fd', fd, writeFd: true });
    node.addHandle(fh);
  }

  /** Forgets `fh`, returning what it was: on its own, for an adopted handle the request
   * loop released itself (its backing reference too). */
  forget(fh: number): OpenFile | undefined {
    const f = this.files.get(fh);
    if (f === undefined) return undefined;
    this.files.delete(fh);
    f.node.deleteHandle(fh);
    return f;
  }

  /** RELEASE: forgets `fh` and drops its backing reference (the filesystem's release is
   * the caller's). */
  released(fh: number): void {
    const f = this.forget(fh);
    if (f?.mode === 'passthrough') this.device.backingRelease(f.node.id);
  }

  /** READ: answers with the data itself (fd, fs) — never called for passthrough opens. */
  async read(unique: bigint, path: string, fh: number, offset: bigint, size: number): Promise<Buffer | null> {
    const f = this.files.get(fh);
    if (f !== undefined && f.mode !== 'fs' && f.fd >= 0) {
      this.device.replyFromFd(unique, f.fd, offset, size);
      return null;
    }
    const buf = Buffer.allocUnsafe(size);
    const n = await this.filesystem.read(path, fh, buf, size, Number(offset));
    return buf.subarray(0, n);
  }

  /**
   * WRITE: the number of bytes written, or null when the device answers it. On an fd the
   * engine may write, a write up to INLINE_WRITE_MAX is made here and now, a bigger one by
   * the device's IO threads (writeToFd: pwrite of the request's own buffer, then the
   * reply), never through libuv's pool and a promise. Otherwise the filesystem writes.
   */
  write(unique: bigint, path: () => string, fh: number, data: Buffer, offset: bigint): number | null | Promise<number> {
    const f = this.files.get(fh);
    if (f !== undefined && f.writeFd) {
      if (data.length <= INLINE_WRITE_MAX) return writeSync(f.fd, data, 0, data.length, Number(offset));
      this.device.writeToFd(unique, f.fd, offset, data);
      return null;
    }
    return this.filesystem.write(path(), fh, data, data.length, Number(offset));
  }

  /**
   * The node's backing id for this open (one per node, shared), or undefined when it
   * cannot have one. A file whose content may change (not keepCache: the writable layer)
   * gets a backing readers and writers share from the start.
   */
  private shareBacking(node: Node, fh: number, direct: DirectIo, wantWrite: boolean): number | undefined {
    let st;
    try {
      st = fstatSync(direct.fd);
    } catch {
      return undefined;
    }
    if (!st.isFile()) return undefined;
    const refused = node.backingRefused;
    if (refused !== undefined && refused.dev === st.dev && refused.ino === st.ino) return undefined;
    // A write the filesystem must see first (it clears setuid/setgid): not behind its back.
    if (wantWrite && !direct.write && (st.mode & S_ISUID || (st.mode & S_ISGID && st.mode & 0o010))) return undefined;
    let shared;
    try {
      shared = this.device.backingShare(node.id, direct.fd, wantWrite);
    } catch (err) {
      this.lastBackingError = err as Error;
      return undefined;
    }
    if (shared === 'busy') return undefined;
    if (shared !== 'none') return shared;
    // The kernel never uses the backing file's own access mode: each passthrough open gets
    // a file of its own, opened on the backing's path with the opener's flags
    // (fs/fuse/passthrough.c, backing_file_open). So a file whose content may change (the
    // writable layer; not keepCache) takes any descriptor of it as a backing for readers
    // and writers alike; a lower file's serves reads only (writes copy up first).
    const writable = wantWrite || !this.filesystem.keepCache?.(fh);
    try {
      return this.device.backingAdopt(node.id, direct.fd, writable);
    } catch (err) {
      this.lastBackingError = err as Error;
      // What the file is (on a filesystem stacked too deep, e.g. a layer on another FUSE
      // mount: ELOOP; or one without read_iter/write_iter) the next open will not change;
      // a copy-up brings another file, which is asked about afresh.
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ELOOP' || code === 'EOPNOTSUPP') node.backingRefused = { dev: st.dev, ino: st.ino };
      return undefined;
    }
  }
}
