/**
 * Serves a PathFilesystem on a mountpoint through the patched fuse-native. This adapter
 * is the errno boundary: every op answers exactly once, every failure (a rejection, a
 * synchronous throw) becomes an errno, and nothing a caller does can end the process.
 */
import { LayerfsError } from '../core/errors.js';
import type { Caller, FileStat, PathFilesystem, TimeUpdate } from '../core/filesystem.js';
import { loadFuseNative, type NativeFuse, type NativeOps } from '../sys/fuse-native.js';
import { isUnexpectedFailure, toNegativeErrno } from './errno.js';
import { allowOtherPermitted, mountOptions, type MountOptionChoices } from './mount-options.js';
import { nativeMirror } from './native-mirror.js';

export interface ServeOptions extends Partial<MountOptionChoices> {
  /**
   * Let the binding answer what it can without JS (default true): lookups of read-only
   * paths from the filesystem's mirror, and data I/O on handed-over fds. Off, every op
   * goes through JS (for measuring, and as a way around a fast-path bug).
   */
  nativeFastPath?: boolean;
  /** Called with every request that reaches JS (op name, first path argument). */
  traceOps?: (op: string, path: string) => void;
  /** Called for every op that failed with something other than an ordinary errno. */
  onUnexpectedError?: (err: unknown, op: string) => void;
}

export interface FuseMount {
  readonly mountpoint: string;
  /** Unmounts (lazily, so a busy mount still detaches) and releases the filesystem. */
  unmount(): Promise<void>;
}

type NativeCb = (result: number, ...values: unknown[]) => void;

/** Mounts `filesystem` on `mountpoint`; resolves once the kernel has sent FUSE_INIT. */
export async function serveFilesystem(
  filesystem: PathFilesystem,
  mountpoint: string,
  options: ServeOptions = {},
): Promise<FuseMount> {
  const Fuse = loadFuseNative();
  let native: NativeFuse | undefined;
  const caller = (): Caller => native!.context();
  const report = options.onUnexpectedError;

  // One wrapper for all ops: run, then answer once with a value or an errno.
  function answer<T>(op: string, cb: NativeCb, run: () => Promise<T>, reply: (value: T) => void): void {
    let promise: Promise<T>;
    try {
      promise = run();
    } catch (err) {
      report?.(err, op);
      cb(toNegativeErrno(err));
      return;
    }
    promise.then(reply, (err: unknown) => {
      const errno = toNegativeErrno(err);
      if (report && isUnexpectedFailure(err, errno)) report(err, op);
      cb(errno);
    });
  }

  const timeUpdate = (t: { sec: number; nsec: number }): TimeUpdate =>
    t.nsec === Fuse.UTIME_NOW ? 'now' : t.nsec === Fuse.UTIME_OMIT ? 'omit' : { sec: t.sec, nsec: t.nsec };
  const ok = (cb: NativeCb) => () => cb(0);
  const useFastPath = options.nativeFastPath ?? true;
  // open/create hand over the backing fd: the binding reads and writes it itself.
  const opened = (cb: NativeCb, fh: number) => {
    const direct = useFastPath ? filesystem.directIo?.(fh) : undefined;
    cb(0, fh, filesystem.keepCache?.(fh) ?? false, direct?.fd ?? -1, direct?.write ?? false, direct?.upperIno ?? false);
  };

  const ops: NativeOps = {
    getattr: (path: string, cb: NativeCb) => answer('getattr', cb, () => filesystem.getattr(path), (st: FileStat) => cb(0, st)),
    fgetattr: (path: string, fh: number, cb: NativeCb) =>
      answer('fgetattr', cb, () => (filesystem.fgetattr ? filesystem.fgetattr(path, fh) : filesystem.getattr(path)), (st: FileStat) => cb(0, st)),
    readlink: (path: string, cb: NativeCb) => answer('readlink', cb, () => filesystem.readlink(path), (t: string) => cb(0, t)),
    readdir: (path: string, cb: NativeCb) =>
      answer('readdir', cb, () => filesystem.readdir(path), (entries) => {
        // The kernel does not invent '.' and '..' for FUSE; without a stat their d_ino is
        // "unknown", which readdir(3) users accept.
        const names = ['.', '..'];
        const stats: (FileStat | null)[] = [null, null];
        for (const e of entries) {
          names.push(e.name);
          stats.push(e.stat ?? null);
        }
        cb(0, names, stats);
      }),
    open: (path: string, flags: number, cb: NativeCb) => {
      const who = caller();
      answer('open', cb, () => filesystem.open(path, flags, who), (fh: number) => opened(cb, fh));
    },
    create: (path: string, mode: number, flags: number, cb: NativeCb) => {
      const who = caller();
      answer('create', cb, () => filesystem.create(path, mode, flags, who), (fh: number) => opened(cb, fh));
    },
    read: (path: string, fh: number, buf: Buffer, len: number, pos: number, cb: NativeCb) =>
      answer('read', cb, () => filesystem.read(path, fh, buf, len, pos), (n: number) => cb(n)),
    write: (path: string, fh: number, buf: Buffer, len: number, pos: number, cb: NativeCb) =>
      answer('write', cb, () => filesystem.write(path, fh, buf, len, pos), (n: number) => cb(n)),
    // Without a flush op the kernel stops sending FLUSH (a round trip saved per close).
    ...(filesystem.flush
      ? { flush: (path: string, fh: number, cb: NativeCb) => answer('flush', cb, () => filesystem.flush!(path, fh), ok(cb)) }
      : {}),
    release: (path: string, fh: number, cb: NativeCb) => answer('release', cb, () => filesystem.release(path, fh), ok(cb)),
    fsync: (path: string, datasync: number, fh: number, cb: NativeCb) =>
      answer('fsync', cb, () => filesystem.fsync(path, datasync !== 0, fh), ok(cb)),
    truncate: (path: string, size: number, cb: NativeCb) => {
      const who = caller();
      answer('truncate', cb, () => filesystem.truncate(path, size, who), ok(cb));
    },
    ftruncate: (path: string, fh: number, size: number, cb: NativeCb) =>
      answer('ftruncate', cb, () => filesystem.ftruncate(path, fh, size), ok(cb)),
    chmod: (path: string, mode: number, cb: NativeCb) => {
      const who = caller();
      answer('chmod', cb, () => filesystem.chmod(path, mode, who), ok(cb));
    },
    chown: (path: string, uid: number, gid: number, cb: NativeCb) => {
      const who = caller();
      answer('chown', cb, () => filesystem.chown(path, uid, gid, who), ok(cb));
    },
    utimens: (path: string, atime: { sec: number; nsec: number }, mtime: { sec: number; nsec: number }, cb: NativeCb) => {
      const who = caller();
      answer('utimens', cb, () => filesystem.utimens(path, timeUpdate(atime), timeUpdate(mtime), who), ok(cb));
    },
    mknod: (path: string, mode: number, dev: number, cb: NativeCb) => {
      const who = caller();
      answer('mknod', cb, () => filesystem.mknod(path, mode, dev, who), ok(cb));
    },
    mkdir: (path: string, mode: number, cb: NativeCb) => {
      const who = caller();
      answer('mkdir', cb, () => filesystem.mkdir(path, mode, who), ok(cb));
    },
    rmdir: (path: string, cb: NativeCb) => {
      const who = caller();
      answer('rmdir', cb, () => filesystem.rmdir(path, who), ok(cb));
    },
    unlink: (path: string, cb: NativeCb) => {
      const who = caller();
      answer('unlink', cb, () => filesystem.unlink(path, who), ok(cb));
    },
    symlink: (target: string, path: string, cb: NativeCb) => {
      const who = caller();
      answer('symlink', cb, () => filesystem.symlink(target, path, who), ok(cb));
    },
    link: (existing: string, newPath: string, cb: NativeCb) => {
      const who = caller();
      answer('link', cb, () => filesystem.link(existing, newPath, who), ok(cb));
    },
    rename: (from: string, to: string, cb: NativeCb) => {
      const who = caller();
      answer('rename', cb, () => filesystem.rename(from, to, 0, who), ok(cb));
    },
    setxattr: (path: string, name: string, value: Buffer, _position: number, flags: number, cb: NativeCb) => {
      const who = caller();
      // libfuse's buffer is only valid during the call: copy before going async.
      const copy = Buffer.from(value);
      answer('setxattr', cb, () => filesystem.setxattr(path, name, copy, flags, who), ok(cb));
    },
    getxattr: (path: string, name: string, _position: number, cb: NativeCb) => {
      const who = caller();
      answer('getxattr', cb, () => filesystem.getxattr(path, name, who), (v: Buffer | null) => cb(0, v));
    },
    listxattr: (path: string, cb: NativeCb) => {
      const who = caller();
      answer('listxattr', cb, () => filesystem.listxattr(path, who), (names: string[]) => cb(0, names));
    },
    removexattr: (path: string, name: string, cb: NativeCb) => {
      const who = caller();
      answer('removexattr', cb, () => filesystem.removexattr(path, name, who), ok(cb));
    },
    statfs: (path: string, cb: NativeCb) => answer('statfs', cb, () => filesystem.statfs(path), (s) => cb(0, s)),
  };

  const trace = options.traceOps;
  if (trace) {
    for (const [name, fn] of Object.entries(ops) as [string, (...args: unknown[]) => void][]) {
      ops[name] = (...args: unknown[]) => {
        trace(name, typeof args[0] === 'string' ? args[0] : '');
        fn(...args);
      };
    }
  }

  native = new Fuse(mountpoint, ops, {
    options: mountOptions({ fsname: options.fsname ?? 'layerfs', allowOther: options.allowOther ?? allowOtherPermitted(), extra: options.extra ?? [] }),
    onHandlerError: (err, op) => report?.(err, op),
    fastPath: useFastPath && filesystem.attachMirror !== undefined,
    // close(2) has returned by the time RELEASE arrives and nobody sees its answer: the
    // binding replies at once and the filesystem releases the handle afterwards.
    releaseLater: useFastPath,
  });
  if (filesystem.attachMirror && native.fastPath) filesystem.attachMirror(nativeMirror(native.fastPath));

  await new Promise<void>((resolve, reject) => {
    native!.mount((err) => {
      if (err) {
        reject(new LayerfsError('MOUNT_FAILED', `cannot mount on ${mountpoint}: ${err.message}`, { cause: err }));
      } else resolve();
    });
  });

  let unmounted = false;
  return {
    mountpoint,
    async unmount() {
      if (unmounted) return;
      unmounted = true;
      await new Promise<void>((resolve, reject) => native!.unmount((err) => (err ? reject(err) : resolve())));
      await filesystem.destroy?.();
    },
  };
}
