/**
 * The one place that loads `fuse-native`. It must be layerfs's patched build (see
 * patches/ and native-notes/): the unpatched binding loses caller credentials, 64-bit
 * inodes, nanosecond times and non-UTF-8 names, and can kill the process, so a mount
 * is refused with an explanation rather than served wrongly.
 */
import { createRequire } from 'node:module';
import { LayerfsError } from '../core/errors.js';

const require = createRequire(import.meta.url);

/** The patch level this code speaks (LAYERFS_PATCH_LEVEL in the patched fuse-native.c). */
export const EXPECTED_PATCH_LEVEL = 4;

/** Raw fuse-native stat input: times as { sec, nsec }; 64-bit fields as number or bigint. */
export interface NativeStat {
  mode: number;
  uid: number;
  gid: number;
  size: number | bigint;
  nlink: number;
  ino: number | bigint;
  rdev: number;
  blksize: number;
  blocks: number | bigint;
  atime: { sec: number; nsec: number };
  mtime: { sec: number; nsec: number };
  ctime: { sec: number; nsec: number };
}

type Cb = (err: number, ...rest: unknown[]) => void;

/** The callback-style operations the patched fuse-native calls (subset layerfs serves). */
export type NativeOps = Record<string, (...args: any[]) => void> & {
  getattr?: (path: string, cb: Cb) => void;
};

export interface NativeFuseOptions {
  allowOther?: boolean;
  defaultPermissions?: boolean;
  fsname?: string;
  subtype?: string;
  kernelCache?: boolean;
  entryTimeout?: number;
  attrTimeout?: number;
  maxRead?: number;
  /** Raw libfuse options (name or name=value), commas escaped by the binding. */
  options?: string[];
  /** Set up the native fast path (patch level 3): see NativeFuse.fastPath. */
  fastPath?: boolean;
  /** Answer RELEASE at once and run ops.release afterwards (its path is ''). */
  releaseLater?: boolean;
  onHandlerError?: (err: unknown, op: string) => void;
}

/**
 * The binding's native fast path (layerfs-fast.h in the patch, over src/engine/native/):
 * the read-only index and the writable layer's path set, answered from on FUSE threads.
 */
export interface NativeFastPath {
  /** Before mount only: the lower-index cache file's bytes (src/engine/formats/index-cache.ts),
   * read in place and kept alive by the binding; throws when their offsets do not check out. */
  loadIndex(bytes: Buffer): void;
  /** Before mount only: the cache file itself, mapped (checksum and layer roots checked). */
  loadIndexFile(file: string): void;
  /** The writable layer's directory (latin1 byte string). */
  upperRoot(dir: string): void;
  /** flags: src/engine/formats/upper-facts.ts (hides lower, no xattrs, own stat, whiteout). */
  upperSet(path: string, flags: number, originIno: number): void;
  upperRemoveTree(path: string, subtree: boolean): void;
}

export interface NativeFuse {
  /** Present when constructed with `fastPath: true`. */
  readonly fastPath: NativeFastPath | null;
  mount(cb: (err: Error | null) => void): void;
  unmount(cb: (err: Error | null) => void): void;
  context(): { uid: number; gid: number; pid: number; umask: number };
}

export interface NativeFuseModule {
  new (mountpoint: string, ops: NativeOps, opts: NativeFuseOptions): NativeFuse;
  PATCH_LEVEL?: number;
  UTIME_NOW: number;
  UTIME_OMIT: number;
  unmount(mountpoint: string, cb: (err: Error | null) => void): void;
}

let cached: NativeFuseModule | undefined;

/** Loads the patched fuse-native, or throws NATIVE_BINDING saying how to fix it. */
export function loadFuseNative(): NativeFuseModule {
  if (cached) return cached;
  let mod: NativeFuseModule;
  try {
    mod = require('fuse-native') as NativeFuseModule;
  } catch (cause) {
    throw new LayerfsError('NATIVE_BINDING', `cannot load fuse-native: ${(cause as Error).message}`, {
      cause,
      hint: 'run `npm install` (it patches fuse-native and rebuilds it against libfuse2; apt-get install libfuse2 libfuse-dev)',
    });
  }
  checkPatchLevel(mod);
  cached = mod;
  return mod;
}

/** Throws NATIVE_BINDING unless `mod` is the patched fuse-native this code speaks to. */
export function checkPatchLevel(mod: Pick<NativeFuseModule, 'PATCH_LEVEL'>): void {
  if (mod.PATCH_LEVEL !== EXPECTED_PATCH_LEVEL) {
    throw new LayerfsError(
      'NATIVE_BINDING',
      `fuse-native is not layerfs's patched build (patch level ${String(mod.PATCH_LEVEL)}, need ${EXPECTED_PATCH_LEVEL}): ` +
        'it would lose caller uids, 64-bit inodes, nanosecond times and non-UTF-8 names',
      { hint: 'run `npm install` so patch-package applies patches/fuse-native+2.2.6.patch and the binding is rebuilt' },
    );
  }
}
