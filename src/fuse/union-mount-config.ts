/**
 * What a union mount process serves: the same words as overlayfs's options. Passed to
 * the mount process as one JSON argument.
 */
import { LayerfsError } from '../core/errors.js';
import { parseEngine, type EngineName } from './engine-choice.js';

export interface UnionMountConfig {
  mountpoint: string;
  /** Lower directories, top first (overlayfs's lowerdir= order). */
  lowerDirs: string[];
  /** Absent for a read-only mount. */
  upperDir?: string;
  workDir?: string;
  /** Source name shown in /proc/mounts. */
  fsname?: string;
  /** Extra raw libfuse options. */
  extraOptions?: string[];
  /**
   * Where the lower index is cached (loaded when current, else built and written). Only
   * for lower directories that never change under this name: the supervisor passes one
   * for store images (keyed by the top layer's chain ID); raw-directory mounts
   * (layerfs-overlay) pass none and index at every mount.
   */
  indexCache?: string;
  /**
   * The writable layer is thrown away with its container (`run --rm`), so a kernel crash
   * may lose it: copy-ups skip flushing their data (as podman mounts `--rm` containers
   * with overlayfs `volatile`). Default false: copied-up data is on disk before it shows.
   */
  volatile?: boolean;
  /**
   * Where to record the first damage the mount finds (a layer file that disagrees with
   * the index: store/damage-record.ts); the supervisor passes `containers/<id>/damage.json`.
   */
  damageFile?: string;
  /**
   * Read the AUFS whiteout format too (src/overlay/aufs-whiteouts.ts): containers-storage
   * writes its layers so when layerfs-overlay is its mount_program.
   */
  aufsWhiteouts?: boolean;
  /** Which engine serves the mount (src/fuse/engine-choice.ts); absent: LAYERFS_ENGINE or the default. */
  engine?: EngineName;
}

export function parseUnionMountConfig(json: string): UnionMountConfig {
  let c: unknown;
  try {
    c = JSON.parse(json);
  } catch (cause) {
    throw new LayerfsError('INVALID_ARGUMENT', 'mount config is not valid JSON', { cause });
  }
  const o = c as Partial<UnionMountConfig>;
  if (typeof o.mountpoint !== 'string' || !Array.isArray(o.lowerDirs) || !o.lowerDirs.every((d) => typeof d === 'string')) {
    throw new LayerfsError('INVALID_ARGUMENT', 'mount config needs mountpoint and lowerDirs');
  }
  if (o.indexCache !== undefined && (typeof o.indexCache !== 'string' || o.indexCache === '')) {
    throw new LayerfsError('INVALID_ARGUMENT', 'indexCache must be a file path');
  }
  if (o.volatile !== undefined && typeof o.volatile !== 'boolean') {
    throw new LayerfsError('INVALID_ARGUMENT', 'volatile must be true or false');
  }
  if (o.aufsWhiteouts !== undefined && typeof o.aufsWhiteouts !== 'boolean') {
    throw new LayerfsError('INVALID_ARGUMENT', 'aufsWhiteouts must be true or false');
  }
  if (o.damageFile !== undefined && (typeof o.damageFile !== 'string' || o.damageFile === '')) {
    throw new LayerfsError('INVALID_ARGUMENT', 'damageFile must be a file path');
  }
  if (o.engine !== undefined) parseEngine(String(o.engine), 'the mount config');
  if ((o.upperDir === undefined) !== (o.workDir === undefined)) {
    throw new LayerfsError('INVALID_ARGUMENT', 'upperDir and workDir go together');
  }
  return o as UnionMountConfig;
}
