/**
 * Serves a PathFilesystem on a mountpoint through the patched fuse-native. This adapter
 * is the errno boundary: every op answers exactly once, every failure (a rejection, a
 * synchronous throw) becomes an errno, and nothing a caller does can end the process.
 */
import { LayerfsError } from '../core/errors.js';
import type { PathFilesystem } from '../core/filesystem.js';
import { loadFuseNative, type NativeFuse } from '../sys/fuse-native.js';
import { fuseNativeOps, withTrace } from './fuse-native-ops.js';
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
  /**
   * Resolves once the kernel has ended the connection (the last copy of the mount is gone)
   * or unmount() has: the engine that can tell (layerfs's; fuse-native's loop tells nobody).
   */
  readonly ended?: Promise<void>;
}

/** Mounts `filesystem` on `mountpoint`; resolves once the kernel has sent FUSE_INIT. */
export async function serveFilesystem(
  filesystem: PathFilesystem,
  mountpoint: string,
  options: ServeOptions = {},
): Promise<FuseMount> {
  const Fuse = loadFuseNative();
  let native: NativeFuse | undefined;
  const useFastPath = options.nativeFastPath ?? true;
  const ops = withTrace(
    fuseNativeOps(filesystem, { Fuse, caller: () => native!.context(), report: options.onUnexpectedError, useFastPath }),
    options.traceOps,
  );
  const report = options.onUnexpectedError;

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
