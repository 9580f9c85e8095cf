/**
 * A mounted /dev/fuse connection for the layerfs engine: mounting (mount(2) as root,
 * fusermount3 otherwise), reader threads that hand every request to one JS callback, and
 * the replies, passthrough registrations and cache invalidations the engine sends back.
 * The native side is src/engine/native/ (addon layerfs_engine, built by
 * scripts/build-native.mjs); native-notes/engine.md describes protocol and threading.
 *
 * This module knows nothing about opcodes: requests arrive as raw frames (fuse_in_header
 * + body) and replies leave as raw parts; src/engine/wire.ts encodes and decodes them.
 */
import { existsSync } from 'node:fs';
import { lstat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { LayerfsError, hasErrnoCode } from '../core/errors.js';
import { packageRoot } from '../sys/native.js';
import { mountsAt } from '../sys/mount-table.js';

export interface MountRequest {
  mountpoint: string;
  /** The source column of /proc/mounts. */
  fsname: string;
  /** The type shows as fuse.<subtype> (layerfs's own cleanup finds mounts by it). */
  subtype?: string;
  /** Let other users in (root only, unless /etc/fuse.conf has user_allow_other). */
  allowOther: boolean;
  /** The kernel checks permissions against the attributes the engine returns. */
  defaultPermissions: boolean;
  /** Type and mode of the root before its first GETATTR, e.g. 0o40755. */
  rootMode: number;
  readOnly?: boolean;
  /** Honour setuid bits / device nodes (default off: nosuid,nodev, as libfuse). */
  suid?: boolean;
  dev?: boolean;
  /** Mount through fusermount3 even as root (its auto_unmount survives a killed server). */
  useFusermount?: boolean;
}

export interface FuseDevice {
  readonly fd: number;
  readonly mountpoint: string;
  /** Resolves once the device is closed: after unmount(), or when the kernel ended the
   *  connection (someone unmounted it; the connection was aborted). */
  readonly closed: Promise<void>;
  /** Reader threads deliver each request (fuse_in_header + body, WRITE data included)
   *  as a Buffer the JS side owns. Once. A throwing callback is reported, never fatal. */
  start(onRequest: (req: Buffer) => void, threads?: number): void;
  /** error: 0 or a negative errno (an error reply carries no payload). A request that is
   *  gone (interrupted) is not an error; a reply the kernel rejects throws (EINVAL: a
   *  malformed reply). After unmount() began, replies are dropped. */
  reply(unique: bigint, error: number, ...payload: Uint8Array[]): void;
  /** READ reply with `size` bytes of `fd` at `offset`, read off the JS thread (short at EOF).
   *  `fd` must stay open until the kernel sends RELEASE for the file. */
  replyFromFd(unique: bigint, fd: number, offset: bigint, size: number): void;
  /** FUSE_DEV_IOC_BACKING_OPEN: a backing id, or throws an Error with .errno/.code. */
  backingOpen(fd: number): number;
  backingClose(id: number): void;
  /** Written by a notify thread, in call order; resolves when the kernel took it (also when
   *  it had nothing cached). Never await it inside the request it concerns: the kernel may
   *  need a lock that request holds. */
  notifyInvalEntry(parent: bigint, name: Uint8Array): Promise<void>;
  /** offset -1n: attributes only; length 0n: to the end of the file. */
  notifyInvalInode(nodeid: bigint, offset: bigint, length: bigint): Promise<void>;
  /** Detaches the mount, stops the threads, closes the device. Idempotent. */
  unmount(): Promise<void>;
}

type Handle = { readonly __layerfsEngineHandle: unique symbol };

interface Binding {
  mount(req: MountRequest): Handle;
  start(h: Handle, onRequest: (req: Buffer | null) => void, readers: number): void;
  reply(h: Handle, unique: bigint, error: number, parts: Uint8Array[]): number;
  replyFromFd(h: Handle, unique: bigint, fd: number, offset: bigint, size: number): number;
  backingOpen(h: Handle, fd: number): number;
  backingClose(h: Handle, id: number): number;
  notifyInvalEntry(h: Handle, parent: bigint, name: Uint8Array): Promise<number>;
  notifyInvalInode(h: Handle, nodeid: bigint, offset: bigint, length: bigint): Promise<number>;
  teardown(h: Handle, detach: boolean): Promise<void>;
  fd(h: Handle): number;
  unmountPath(mountpoint: string, fusermount: boolean): number;
  readonly protocolMinor: number;
  readonly requestBufferSize: number;
}

const ADDON_RELATIVE = join('src', 'engine', 'native', 'build', 'Release', 'layerfs_engine.node');
const HINT = 'run npm install (scripts/build-native.mjs builds src/engine/native)';
const ENOENT = -2;
const EBADF = -9;

let loaded: Binding | undefined;

function binding(): Binding {
  if (loaded) return loaded;
  const file = join(packageRoot(), ADDON_RELATIVE);
  if (!existsSync(file)) throw new LayerfsError('NATIVE_BINDING', `layerfs's engine addon is not built (${file} is missing)`, { hint: HINT });
  try {
    loaded = createRequire(import.meta.url)(file) as Binding;
  } catch (cause) {
    throw new LayerfsError('NATIVE_BINDING', `cannot load ${file}: ${(cause as Error).message}`, { cause, hint: HINT });
  }
  return loaded;
}

/** The highest FUSE protocol minor version the native side knows (7.40: passthrough). */
export function engineProtocolMinor(): number {
  return binding().protocolMinor;
}

/** A Node-style system error (code, negative errno, syscall), as node:fs throws. */
function systemError(errno: number, syscall: string, what: string): NodeJS.ErrnoException {
  const code = ERRNO_NAMES[-errno] ?? `E${-errno}`;
  const err = new Error(`${code}: ${what}`) as NodeJS.ErrnoException;
  err.code = code;
  err.errno = errno;
  err.syscall = syscall;
  return err;
}

const ERRNO_NAMES: Record<number, string> = {
  1: 'EPERM', 2: 'ENOENT', 5: 'EIO', 9: 'EBADF', 12: 'ENOMEM', 16: 'EBUSY', 21: 'EISDIR', 22: 'EINVAL',
  25: 'ENOTTY', 40: 'ELOOP', 95: 'EOPNOTSUPP', 107: 'ENOTCONN',
};

/**
 * A mount at `mountpoint` whose server is gone answers ENOTCONN: detach every such mount
 * (a killed engine leaves one behind when it mounted with mount(2)) so a new one can go
 * in its place. A live mount stays; the new one stacks on it, as with libfuse.
 */
async function clearDeadMounts(mountpoint: string, native: Binding): Promise<void> {
  for (let i = 0; i < 16; i++) {
    const fuse = (await mountsAt(mountpoint)).filter((m) => m.fstype === 'fuse' || m.fstype.startsWith('fuse.'));
    if (fuse.length === 0) return;
    try {
      await lstat(mountpoint);
      return;
    } catch (err) {
      if (!hasErrnoCode(err, 'ENOTCONN')) return;
    }
    const rc = native.unmountPath(mountpoint, process.geteuid?.() !== 0);
    if (rc !== 0) return;
  }
}

/** Mounts a new FUSE connection on `mountpoint`; call start() next (the kernel's INIT is
 *  the first request). Throws LayerfsError MOUNT_FAILED with the errno when it cannot. */
export async function mountFuseDevice(req: MountRequest): Promise<FuseDevice> {
  const native = binding();
  await clearDeadMounts(req.mountpoint, native);
  let handle: Handle;
  try {
    handle = native.mount(req);
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    throw new LayerfsError('MOUNT_FAILED', `cannot mount the layerfs engine on ${req.mountpoint}: ${(cause as Error).message}`, {
      cause,
      errno: code === 'EPERM' || code === 'EACCES' || code === 'ENOENT' || code === 'ENOTDIR' || code === 'EBUSY' ? code : undefined,
      hint: process.geteuid?.() === 0 ? undefined : 'as a non-root user, mounting needs fusermount3 (Debian: fuse3) and a mountpoint you own',
    });
  }
  return new Device(native, handle, req.mountpoint);
}

class Device implements FuseDevice {
  readonly fd: number;
  readonly closed: Promise<void>;
  private started = false;
  private teardown: Promise<void> | undefined;
  private markClosed!: () => void;

  constructor(
    private readonly native: Binding,
    private readonly handle: Handle,
    readonly mountpoint: string,
  ) {
    this.fd = native.fd(handle);
    this.closed = new Promise((resolve) => (this.markClosed = resolve));
  }

  start(onRequest: (req: Buffer) => void, threads = 2): void {
    if (this.started) throw new LayerfsError('INVALID_ARGUMENT', 'the engine device is already started');
    this.started = true;
    this.native.start(
      this.handle,
      (req) => {
        if (req === null) {
          // The kernel ended the connection: nothing left to detach.
          void this.close(false).catch(() => undefined);
          return;
        }
        try {
          onRequest(req);
        } catch (err) {
          // The dispatcher answers its own failures; reaching here is a bug, not a reason to stop serving.
          process.emitWarning(`layerfs engine: request handler threw: ${(err as Error)?.stack ?? String(err)}`);
        }
      },
      threads,
    );
  }

  reply(unique: bigint, error: number, ...payload: Uint8Array[]): void {
    const rc = this.native.reply(this.handle, unique, error, payload);
    if (rc === 0 || rc === ENOENT || (rc === EBADF && this.teardown)) return;
    throw systemError(rc, 'write', `reply to FUSE request ${unique} (error ${error}, ${payload.length} parts)`);
  }

  replyFromFd(unique: bigint, fd: number, offset: bigint, size: number): void {
    const rc = this.native.replyFromFd(this.handle, unique, fd, offset, size);
    if (rc === 0 || (rc === EBADF && this.teardown)) return;
    throw systemError(rc, 'write', `reply to FUSE READ ${unique} from fd ${fd}`);
  }

  backingOpen(fd: number): number {
    const id = this.native.backingOpen(this.handle, fd);
    if (id < 0) throw systemError(id, 'ioctl', `FUSE_DEV_IOC_BACKING_OPEN of fd ${fd}`);
    return id;
  }

  backingClose(id: number): void {
    const rc = this.native.backingClose(this.handle, id);
    if (rc !== 0 && !(rc === EBADF && this.teardown)) throw systemError(rc, 'ioctl', `FUSE_DEV_IOC_BACKING_CLOSE of id ${id}`);
  }

  async notifyInvalEntry(parent: bigint, name: Uint8Array): Promise<void> {
    this.settleNotify(await this.native.notifyInvalEntry(this.handle, parent, name), `FUSE_NOTIFY_INVAL_ENTRY ${parent}`);
  }

  async notifyInvalInode(nodeid: bigint, offset: bigint, length: bigint): Promise<void> {
    this.settleNotify(await this.native.notifyInvalInode(this.handle, nodeid, offset, length), `FUSE_NOTIFY_INVAL_INODE ${nodeid}`);
  }

  unmount(): Promise<void> {
    return this.close(true);
  }

  private settleNotify(rc: number, what: string): void {
    // ENOENT: the kernel had nothing cached under that name/node, which is the goal.
    if (rc === 0 || rc === ENOENT || (rc === EBADF && this.teardown)) return;
    throw systemError(rc, 'write', what);
  }

  private close(detach: boolean): Promise<void> {
    this.teardown ??= this.native.teardown(this.handle, detach).finally(() => this.markClosed());
    return this.teardown;
  }
}
