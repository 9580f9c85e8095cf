/**
 * A mounted /dev/fuse connection for the layerfs engine: mounting (mount(2) as root,
 * fusermount3 otherwise), the request loop (on the JS thread, or reader threads) that
 * hands every request to one JS callback, and the replies, passthrough registrations and
 * cache invalidations the engine sends back.
 * The native side is src/engine/native/ (addon layerfs_engine, built by
 * scripts/build-native.mjs); native-notes/engine.md describes protocol and threading.
 *
 * This module knows nothing about opcodes: requests arrive as raw frames (fuse_in_header
 * + body) and replies leave as raw parts; src/engine/wire.ts encodes and decodes them.
 */
import { existsSync, readFileSync } from 'node:fs';
import { lstat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { LayerfsError, hasErrnoCode } from '../core/errors.js';
import type { CopyUpTarget } from '../core/filesystem.js';
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


/**
 * What the request loop tells JS of its copy-ups (configureCopyUp), in order:
 * - kind COPIED: a copy-up of `node`'s file, opened as `fd` (handle NATIVE_OPEN + fd; -1:
 *   not opened, the OPEN goes on to JS) by `uid`; `flags` COPIED_PASSTHROUGH: by
 *   passthrough, COPIED_UNANSWERED: the OPEN's reply found nobody (no RELEASE will come);
 * - kind RELEASED: the loop answered the RELEASE of that handle, closed `fd` and dropped
 *   its backing reference: JS forgets the handle.
 */
export type CopiedUpHandler = (kind: number, node: number, fd: number, uid: number, flags: number) => void;

/** What the request loop answers LOOKUPs with (FuseDevice.configureLookups). */
export interface LoopLookupConfig {
  /** The lower-index cache file's bytes (8-aligned, unchanged while the mount serves). */
  index: Uint8Array;
  /** Seconds, as JS's entry replies say them. */
  entryValid: number;
  attrValid: number;
  /** 0: a miss is ENOENT, not a cached negative entry. */
  negativeValid: number;
  /** Lower files found are registered for their opens in C (the mount's directData). */
  registerFiles: boolean;
  /** ... answered with the page cache kept (no passthrough). */
  cached: boolean;
  /** ... and copied up in C where the union allows it (LowerFile.unionAt). */
  copyUp: boolean;
}
export const CopiedUp = { COPIED: 0, RELEASED: 1, PASSTHROUGH: 1, UNANSWERED: 2 } as const;

export interface FuseDevice {
  readonly fd: number;
  readonly mountpoint: string;
  /** Resolves once the device is closed: after unmount(), or when the kernel ended the
   *  connection (someone unmounted it; the connection was aborted). */
  readonly closed: Promise<void>;
  /** Delivers each request (fuse_in_header + body, WRITE data included) as a Buffer the
   *  JS side owns. Once. A throwing callback is reported, never fatal.
   *  threads 0 (default): the JS thread reads the device whenever libuv sees it readable —
   *  no thread hop; measured 2–4× less CPU per request than reader threads.
   *  threads N > 0: N reader threads read and hand frames over a thread-safe function. */
  start(onRequest: (req: Buffer) => void, threads?: number): void;
  /** error: 0 or a negative errno (an error reply carries no payload). A request that is
   *  gone (interrupted) is not an error; a reply the kernel rejects throws (EINVAL: a
   *  malformed reply). After unmount() began, replies are dropped. */
  reply(unique: bigint, error: number, ...payload: Uint8Array[]): void;
  /** READ reply with `size` bytes of `fd` at `offset`, read off the JS thread (short at EOF).
   *  `fd` must stay open until the kernel sends RELEASE for the file. */
  replyFromFd(unique: bigint, fd: number, offset: bigint, size: number): void;
  /** WRITE answered off the JS thread: pwrite `data` (the request's payload, kept alive
   *  until written) at `offset` of `fd`, then reply with the count (-errno if nothing
   *  was written). */
  writeToFd(unique: bigint, fd: number, offset: bigint, data: Uint8Array): void;
  /** FUSE_DEV_IOC_BACKING_OPEN: a backing id, or throws an Error with .errno/.code. */
  backingOpen(fd: number): number;
  backingClose(id: number): void;
  /** Marks node `nodeid` as having no xattr (or no longer): while marked, the JS-thread
   *  request loop answers its GETXATTR (ENODATA) and LISTXATTR (empty) itself. */
  setNoXattrs(nodeid: number | bigint, on: boolean): void;
  /** GETXATTR and LISTXATTR requests answered that way so far (they never reach JS), the
   *  copy-ups and the LOOKUPs the request loop made. */
  nativeAnswers(): { GETXATTR: number; LISTXATTR: number; 'copy-up': number; LOOKUP: number };
  /**
   * The node's one passthrough backing (the kernel allows one backing file per inode),
   * shared by the engine's opens and those the request loop answers itself: a reference
   * to it when it is the file `fd` is open on (and writable, if `write`); 'none' when the
   * node has none; 'busy' when this open cannot share it. fd -1 only asks.
   */
  backingShare(nodeid: number | bigint, fd: number, write: boolean): number | 'none' | 'busy';
  /** A new backing for a node that has none, on `fd`, with one reference; throws. */
  backingAdopt(nodeid: number | bigint, fd: number, writable: boolean): number;
  /** One reference less; the last closes the backing id. */
  backingRelease(nodeid: number | bigint): void;
  /**
   * Until the next lowerOpensEpoch(), the JS-thread request loop answers read-only OPEN of
   * `nodeid` itself by opening `path` (a lower file of `size` bytes) with passthrough —
   * `cached`: without, keeping the page cache, and answering the open's READs too — and
   * its RELEASE, and GETATTR with `attr` (a fuse_attr_out); null: no longer. Throws ENOMEM.
   */
  registerLowerOpen(nodeid: number | bigint, path: Uint8Array | null, size: number, attr: Uint8Array | null, cached: boolean, unionAt?: number): void;
  /**
   * The request loop copies up the first write open of a lower file registered with a
   * `unionAt` (LowerFile.unionAt) into `upper`, building it in `work` (native-notes/engine.md
   * "Copy-up in the request loop"), and calls `copiedUp` for each before JS runs anything
   * else; null: it copies nothing up.
   */
  configureCopyUp(target: CopyUpTarget | null, copiedUp: CopiedUpHandler): void;
  /** JS has (or no longer has) a request in flight that may change the writable layer:
   * meanwhile the request loop copies nothing up and looks nothing up. */
  setChanging(on: boolean): void;
  /**
   * The JS-thread request loop answers LOOKUPs in the directories marked (markLookups) from
   * `config.index` (the lower-index cache file's bytes, which must stay unchanged), and hands
   * `lookedUp` the nodes it made, as records (formats/loop-lookups.ts), before JS runs
   * anything else (native-notes/engine.md "LOOKUP in C"); null: it looks nothing up. Throws
   * (a bad index).
   */
  configureLookups(config: LoopLookupConfig | null, lookedUp: (records: Buffer) => void): void;
  /** Until the epoch or the node's registration ends, LOOKUPs in directory `nodeid` are the
   * request loop's: a name its writable-layer directory `upperDir` has no entry for is what
   * the index says at `indexPath` (null: nothing of the lower layers shows there; `samePath`
   * when that is its own path). Throws ENOMEM. */
  markLookups(nodeid: number, indexPath: Uint8Array | null, upperDir: Uint8Array | null, samePath: boolean): void;
  /** Ends markLookups of `nodeid` alone (its other registrations stay). */
  unmarkLookups(nodeid: number): void;
  /** JS made node `nodeid` for `name` in a marked directory: the loop answers that name with
   * it. Throws ENOMEM. */
  lookupChild(parent: number, name: Uint8Array, nodeid: number): void;
  /** JS forgot a node the loop knows a name of. */
  lookupForget(nodeid: number): void;
  /**
   * Until the next lowerOpensEpoch(), the JS-thread request loop answers GETATTR of
   * `nodeid` (not a regular file) itself with `attr` (a fuse_attr_out) when given, and, if
   * `opendir`, its OPENDIR (a handle of its own, isNativeDir); registerLowerOpen(nodeid,
   * null, …) ends it. Throws ENOMEM.
   */
  registerAttr(nodeid: number | bigint, attr: Uint8Array | null, opendir: boolean): void;
  /**
   * Until the next lowerOpensEpoch(), the JS-thread request loop answers GETATTR of
   * `nodeid` (a directory of the writable layer) with an lstat of `path`, showing st_ino
   * `ino` (0: the writable layer's number for the backing inode), one link if `nlinkOne`,
   * valid `attrValid` seconds; registerLowerOpen(nodeid, null, …) ends it. Throws ENOMEM.
   */
  registerUpperDir(nodeid: number | bigint, path: Uint8Array, ino: number, nlinkOne: boolean, attrValid: number): void;
  /** A READDIR of such a handle reached JS: its RELEASEDIR will too. Throws ENOMEM. */
  adoptDirHandle(fh: number): void;
  /** Ends every registerLowerOpen and registerDirOpen (anything may now resolve differently). */
  lowerOpensEpoch(): void;
  /** A descriptor the request loop holds open for `nodeid` (its own opens), or -1. */
  nativeOpenFd(nodeid: number | bigint): number;
  /**
   * OPEN `unique` of `nodeid` (the kernel's `flags`), a lower file just registered, answered
   * by the JS-thread request loop as it answers the node's next opens (so this open's READs
   * and RELEASE stay there too). false: not answered (no such loop, or the file is not what
   * the registration says); the caller answers.
   */
  answerOpen(unique: bigint, nodeid: number | bigint, flags: number): boolean;
  /** Written by a notify thread, in call order; resolves when the kernel took it (also when
   *  it had nothing cached). Never await it inside the request it concerns: the kernel may
   *  need a lock that request holds. */
  notifyInvalEntry(parent: number | bigint, name: Uint8Array): Promise<void>;
  /** offset -1n: attributes only; length 0n: to the end of the file. */
  notifyInvalInode(nodeid: number | bigint, offset: bigint, length: bigint): Promise<void>;
  /** Detaches the mount, stops the threads, closes the device. Idempotent. */
  unmount(): Promise<void>;
}

type Handle = { readonly __layerfsEngineHandle: unique symbol };
type Helper = { readonly __layerfsFusermountHelper: unique symbol };

interface Binding {
  mount(req: MountRequest): Handle;
  start(h: Handle, onRequest: (req: Buffer | null) => void, readers: number): void;
  reply(h: Handle, unique: bigint, error: number, parts: Uint8Array[]): number;
  replyFromFd(h: Handle, unique: bigint, fd: number, offset: bigint, size: number): number;
  writeToFd(h: Handle, unique: bigint, fd: number, offset: bigint, data: Uint8Array): number;
  backingOpen(h: Handle, fd: number): number;
  backingClose(h: Handle, id: number): number;
  setNoXattrs(h: Handle, nodeid: number | bigint, on: boolean): number;
  nativeAnswers(h: Handle): [number, number, number, number];
  backingShare(h: Handle, nodeid: number | bigint, fd: number, write: boolean): number;
  backingAdopt(h: Handle, nodeid: number | bigint, fd: number, writable: boolean): number;
  backingRelease(h: Handle, nodeid: number | bigint): number;
  openRegister(h: Handle, nodeid: number | bigint, path: Uint8Array | null, size: number, attr: Uint8Array | null, cached: boolean, unionAt: number): number;
  copyUpConfigure(
    h: Handle, upper: Uint8Array | null, work: Uint8Array | null, originName: Uint8Array | null, umask: number, durable: boolean, cb: CopiedUpHandler,
  ): number;
  setChanging(h: Handle, on: boolean): void;
  lookupConfigure(
    h: Handle, index: Uint8Array | null, entryValid: number, attrValid: number, negativeValid: number, registerFiles: boolean, cached: boolean,
    copyUp: boolean, cb: (records: Buffer) => void,
  ): number;
  lookupMark(h: Handle, nodeid: number, indexPath: Uint8Array | null, upperDir: Uint8Array | null, samePath: boolean): number;
  lookupChild(h: Handle, parent: number, name: Uint8Array, nodeid: number): number;
  lookupForget(h: Handle, nodeid: number): void;
  openEpoch(h: Handle): number;
  attrRegister(h: Handle, nodeid: number | bigint, attr: Uint8Array | null, dir: boolean): number;
  statRegister(h: Handle, nodeid: number | bigint, path: Uint8Array, ino: number, nlinkOne: boolean, attrValid: number): number;
  dirAdopt(h: Handle, fh: number): number;
  nativeOpenFd(h: Handle, nodeid: number | bigint): number;
  answerOpen(h: Handle, unique: bigint, nodeid: number | bigint, flags: number): boolean;
  notifyInvalEntry(h: Handle, parent: number | bigint, name: Uint8Array): Promise<number>;
  notifyInvalInode(h: Handle, nodeid: number | bigint, offset: bigint, length: bigint): Promise<number>;
  teardown(h: Handle, detach: boolean): Promise<void>;
  fd(h: Handle): number;
  unmountPath(mountpoint: string, fusermount: boolean): number;
  socketDevice(): [Handle, number];
  fusermount(req: MountRequest): { fd: number; helper: Helper };
  releaseFusermount(helper: Helper): void;
  attach(fd: number, mountpoint: string, detach: boolean): Handle;
  readonly protocolMinor: number;
  readonly requestBufferSize: number;
}

const ADDON_RELATIVE = join('src', 'engine', 'native', 'build', 'Release', 'layerfs_engine.node');
const HINT = 'run npm install (scripts/build-native.mjs builds src/engine/native)';
const ENOENT = -2;
const EBADF = -9;
const EBUSY = -16;

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
    const rc = native.unmountPath(mountpoint, !isRoot());
    if (rc !== 0) return;
  }
}

const isRoot = () => process.geteuid?.() === 0;

function mountFailed(req: MountRequest, cause: unknown): LayerfsError {
  const code = (cause as NodeJS.ErrnoException).code;
  return new LayerfsError('MOUNT_FAILED', `cannot mount the layerfs engine on ${req.mountpoint}: ${(cause as Error).message}`, {
    cause,
    errno: code === 'EPERM' || code === 'EACCES' || code === 'ENOENT' || code === 'ENOTDIR' || code === 'EBUSY' ? code : undefined,
    hint: isRoot() ? undefined : 'as a non-root user, mounting needs fusermount3 (Debian: fuse3) and a mountpoint you own',
  });
}

/** fusermount3 refuses allow_other from users unless /etc/fuse.conf says user_allow_other. */
function checkAllowOther(req: MountRequest): void {
  if (!req.allowOther || (isRoot() && !req.useFusermount)) return;
  let conf = '';
  try {
    conf = readFileSync('/etc/fuse.conf', 'utf8');
  } catch {
    // No file: the option is off.
  }
  if (isRoot() || /^\s*user_allow_other\s*$/m.test(conf)) return;
  throw new LayerfsError('MOUNT_FAILED', `cannot mount on ${req.mountpoint} with allowOther as a non-root user: /etc/fuse.conf lacks user_allow_other`, {
    errno: 'EPERM',
    hint: 'mount without allowOther, or add user_allow_other to /etc/fuse.conf (as root)',
  });
}

/** Mounts a new FUSE connection on `mountpoint`; call start() next (the kernel's INIT is
 *  the first request). Throws LayerfsError MOUNT_FAILED with the errno when it cannot. */
export async function mountFuseDevice(req: MountRequest): Promise<FuseDevice> {
  const native = binding();
  checkAllowOther(req);
  await clearDeadMounts(req.mountpoint, native);
  let handle: Handle;
  try {
    handle = native.mount(req);
  } catch (cause) {
    throw mountFailed(req, cause);
  }
  return new Device(native, handle, req.mountpoint);
}

/** A mount made by fusermount3 (auto_unmount) and its /dev/fuse fd, not yet served. */
export interface FusermountMount {
  /** The connection fd (close-on-exec; hand it to a child through spawn's stdio). */
  readonly fd: number;
  /** Lets fusermount3 go: it unmounts (if still mounted) and exits. Until then, and at the
   *  latest when this process exits however it exits, the mount is tied to this process. */
  release(): void;
}

/**
 * Mounts through fusermount3 in this process's namespaces and returns the connection fd
 * without serving it: for a server that runs elsewhere (e.g. uid 0 of a user namespace,
 * where a setuid fusermount3 is not honoured) and gets the fd by inheritance, then calls
 * attachFuseDevice(fd, mountpoint, { detach: false }). The mount is made synchronously.
 */
export function fusermountFd(req: MountRequest): FusermountMount {
  const native = binding();
  checkAllowOther({ ...req, useFusermount: true });
  let made: { fd: number; helper: Helper };
  try {
    made = native.fusermount(req);
  } catch (cause) {
    throw mountFailed(req, cause);
  }
  let released = false;
  return {
    fd: made.fd,
    release() {
      if (released) return;
      released = true;
      native.releaseFusermount(made.helper);
    },
  };
}

/**
 * A FuseDevice over a connection fd obtained elsewhere (fusermountFd here or in a parent),
 * mounted at `mountpoint`; it takes the fd over. `detach: false`: unmount() stops serving
 * and closes the fd but leaves removing the mount to whoever made it (fusermountFd's
 * release(), or its process ending).
 */
export function attachFuseDevice(fd: number, mountpoint: string, options: { detach?: boolean } = {}): FuseDevice {
  const native = binding();
  const detach = options.detach ?? true;
  return new Device(native, native.attach(fd, mountpoint, detach), mountpoint, detach);
}

/**
 * A device on one end of a SOCK_SEQPACKET socketpair instead of /dev/fuse, for tests: write
 * request frames (valid, random, truncated) to `peerFd` and read the replies from it; each
 * message is one frame, as on the device. Closing `peerFd` ends the device like an unmount.
 */
export function socketFuseDevice(): { device: FuseDevice; peerFd: number } {
  const native = binding();
  const [handle, peerFd] = native.socketDevice();
  return { device: new Device(native, handle, ''), peerFd };
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
    private readonly detachable = true,
  ) {
    this.fd = native.fd(handle);
    this.closed = new Promise((resolve) => (this.markClosed = resolve));
  }

  start(onRequest: (req: Buffer) => void, threads = 0): void {
    if (this.started) throw new LayerfsError('INVALID_ARGUMENT', 'the engine device is already started');
    this.started = true;
    this.native.start(
      this.handle,
      (req) => {
        if (req === null) {
          // The kernel ended the connection: nothing left to detach.
          this.teardown ??= this.close(false);
          void this.teardown.catch(() => undefined);
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

  writeToFd(unique: bigint, fd: number, offset: bigint, data: Uint8Array): void {
    const rc = this.native.writeToFd(this.handle, unique, fd, offset, data);
    if (rc === 0 || (rc === EBADF && this.teardown)) return;
    throw systemError(rc, 'write', `reply to FUSE WRITE ${unique} to fd ${fd}`);
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

  setNoXattrs(nodeid: number | bigint, on: boolean): void {
    const rc = this.native.setNoXattrs(this.handle, nodeid, on);
    if (rc !== 0) throw systemError(rc, 'setNoXattrs', `node ${nodeid}`);
  }

  nativeAnswers(): { GETXATTR: number; LISTXATTR: number; 'copy-up': number; LOOKUP: number } {
    const [GETXATTR, LISTXATTR, copyUp, LOOKUP] = this.native.nativeAnswers(this.handle);
    return { GETXATTR, LISTXATTR, 'copy-up': copyUp, LOOKUP };
  }

  backingShare(nodeid: number | bigint, fd: number, write: boolean): number | 'none' | 'busy' {
    const rc = this.native.backingShare(this.handle, nodeid, fd, write);
    if (rc >= 0) return rc;
    if (rc === ENOENT) return 'none';
    if (rc === EBUSY) return 'busy';
    throw systemError(rc, 'fstat', `backing of node ${nodeid}`);
  }

  backingAdopt(nodeid: number | bigint, fd: number, writable: boolean): number {
    const id = this.native.backingAdopt(this.handle, nodeid, fd, writable);
    if (id < 0) throw systemError(id, 'ioctl', `FUSE_DEV_IOC_BACKING_OPEN of fd ${fd}`);
    return id;
  }

  backingRelease(nodeid: number | bigint): void {
    this.native.backingRelease(this.handle, nodeid);
  }

  registerLowerOpen(nodeid: number | bigint, path: Uint8Array | null, size: number, attr: Uint8Array | null, cached: boolean, unionAt = -1): void {
    const rc = this.native.openRegister(this.handle, nodeid, path, size, attr, cached, unionAt);
    if (rc !== 0 && !(rc === EBADF && this.teardown)) throw systemError(rc, 'registerLowerOpen', `node ${nodeid}`);
  }

  configureCopyUp(target: CopyUpTarget | null, copiedUp: CopiedUpHandler): void {
    const b = (s: string | Buffer) => (typeof s === 'string' ? Buffer.from(s, 'latin1') : s);
    const rc = target === null
      ? this.native.copyUpConfigure(this.handle, null, null, null, 0, true, copiedUp)
      : this.native.copyUpConfigure(this.handle, b(target.upper), b(target.work), b(target.originName), target.umask, target.durable, copiedUp);
    if (rc !== 0) throw systemError(rc, 'configureCopyUp', this.mountpoint);
  }

  setChanging(on: boolean): void {
    this.native.setChanging(this.handle, on);
  }

  lowerOpensEpoch(): void {
    this.native.openEpoch(this.handle);
  }

  configureLookups(config: LoopLookupConfig | null, lookedUp: (records: Buffer) => void): void {
    const rc = config === null
      ? this.native.lookupConfigure(this.handle, null, 0, 0, 0, false, false, false, lookedUp)
      : this.native.lookupConfigure(
          this.handle, config.index, config.entryValid, config.attrValid, config.negativeValid, config.registerFiles, config.cached, config.copyUp, lookedUp,
        );
    if (rc !== 0) throw systemError(rc, 'configureLookups', this.mountpoint);
  }

  markLookups(nodeid: number, indexPath: Uint8Array | null, upperDir: Uint8Array | null, samePath: boolean): void {
    const rc = this.native.lookupMark(this.handle, nodeid, indexPath, upperDir, samePath);
    if (rc !== 0 && !(rc === EBADF && this.teardown)) throw systemError(rc, 'markLookups', `node ${nodeid}`);
  }

  unmarkLookups(nodeid: number): void {
    this.native.lookupMark(this.handle, nodeid, null, null, false);
  }

  lookupChild(parent: number, name: Uint8Array, nodeid: number): void {
    const rc = this.native.lookupChild(this.handle, parent, name, nodeid);
    if (rc !== 0 && !(rc === EBADF && this.teardown)) throw systemError(rc, 'lookupChild', `node ${nodeid}`);
  }

  lookupForget(nodeid: number): void {
    this.native.lookupForget(this.handle, nodeid);
  }

  registerAttr(nodeid: number | bigint, attr: Uint8Array | null, opendir: boolean): void {
    const rc = this.native.attrRegister(this.handle, nodeid, attr, opendir);
    if (rc !== 0 && !(rc === EBADF && this.teardown)) throw systemError(rc, 'registerAttr', `node ${nodeid}`);
  }

  registerUpperDir(nodeid: number | bigint, path: Uint8Array, ino: number, nlinkOne: boolean, attrValid: number): void {
    const rc = this.native.statRegister(this.handle, nodeid, path, ino, nlinkOne, attrValid);
    if (rc !== 0 && !(rc === EBADF && this.teardown)) throw systemError(rc, 'registerUpperDir', `node ${nodeid}`);
  }

  adoptDirHandle(fh: number): void {
    const rc = this.native.dirAdopt(this.handle, fh);
    if (rc !== 0 && !(rc === EBADF && this.teardown)) throw systemError(rc, 'adoptDirHandle', `fh ${fh}`);
  }

  nativeOpenFd(nodeid: number | bigint): number {
    return this.native.nativeOpenFd(this.handle, nodeid);
  }

  answerOpen(unique: bigint, nodeid: number | bigint, flags: number): boolean {
    return this.native.answerOpen(this.handle, unique, nodeid, flags);
  }

  async notifyInvalEntry(parent: number | bigint, name: Uint8Array): Promise<void> {
    this.settleNotify(await this.native.notifyInvalEntry(this.handle, parent, name), `FUSE_NOTIFY_INVAL_ENTRY ${parent}`);
  }

  async notifyInvalInode(nodeid: number | bigint, offset: bigint, length: bigint): Promise<void> {
    this.settleNotify(await this.native.notifyInvalInode(this.handle, nodeid, offset, length), `FUSE_NOTIFY_INVAL_INODE ${nodeid}`);
  }

  unmount(): Promise<void> {
    // The native side detaches the mountpoint only while the mount on top there is still
    // this one (mount.h, lf_unmount_own), not another that replaced it after ours went away.
    this.teardown ??= this.close(this.detachable && this.mountpoint !== '');
    return this.teardown;
  }

  private settleNotify(rc: number, what: string): void {
    // ENOENT: the kernel had nothing cached under that name/node, which is the goal.
    if (rc === 0 || rc === ENOENT || (rc === EBADF && this.teardown)) return;
    throw systemError(rc, 'write', what);
  }

  private closing: Promise<void> | undefined;

  private close(detach: boolean): Promise<void> {
    this.closing ??= this.native.teardown(this.handle, detach).finally(() => this.markClosed());
    return this.closing;
  }
}
