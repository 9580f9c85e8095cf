/**
 * The fuse-native op table: one function per libfuse 2.9 operation, each calling the
 * PathFilesystem and answering exactly once, with a value or an errno (the errno boundary
 * of the fuse-native engine). Kept apart from fuse-server.ts, which mounts and unmounts.
 */
import type { Caller, FileStat, PathFilesystem, TimeUpdate } from '../core/filesystem.js';
import type { NativeFuseModule, NativeOps } from '../sys/fuse-native.js';
import { isUnexpectedFailure, toNegativeErrno } from './errno.js';

type NativeCb = (result: number, ...values: unknown[]) => void;

export interface OpsContext {
  /** The loaded binding (its UTIME_* constants). */
  Fuse: Pick<NativeFuseModule, 'UTIME_NOW' | 'UTIME_OMIT'>;
  /** Who made the request being answered (valid only during the op's synchronous part). */
  caller: () => Caller;
  /** Told of every failure that is not an ordinary errno. */
  report?: (err: unknown, op: string) => void;
  /** Hand opened fds to the binding for reads and writes without JS. */
  useFastPath: boolean;
}

export function fuseNativeOps(filesystem: PathFilesystem, { Fuse, caller, report, useFastPath }: OpsContext): NativeOps {
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
  // open/create hand over the backing fd: the binding reads and writes it itself.
  const opened = (cb: NativeCb, fh: number) => {
    const direct = useFastPath ? filesystem.directIo?.(fh) : undefined;
    cb(0, fh, filesystem.keepCache?.(fh) ?? false, direct?.fd ?? -1, direct?.write ?? false, direct?.upperIno ?? false);
  };

  return {
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
}

/** Wraps every op so `trace` hears of each request that reaches JS (op, first path). */
export function withTrace(ops: NativeOps, trace: ((op: string, path: string) => void) | undefined): NativeOps {
  if (!trace) return ops;
  for (const [name, fn] of Object.entries(ops) as [string, (...args: unknown[]) => void][]) {
    ops[name] = (...args: unknown[]) => {
      trace(name, typeof args[0] === 'string' ? args[0] : '');
      fn(...args);
    };
  }
  return ops;
}
