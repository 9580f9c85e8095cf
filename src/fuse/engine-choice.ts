/**
 * Which engine serves a union mount: `layerfs` (the project's own FUSE engine, src/engine/)
 * or `fuse-native` (the patched libfuse 2.9 binding, src/fuse/fuse-server.ts). Chosen by
 * `layerfs mount --engine`, `layerfs-overlay -o engine=`, else LAYERFS_ENGINE, else
 * DEFAULT_ENGINE.
 */
import { LayerfsError } from '../core/errors.js';
import { isRootless } from '../core/user-dirs.js';

export const ENGINES = ['layerfs', 'fuse-native'] as const;
export type EngineName = (typeof ENGINES)[number];

/** The one switch for the default: layerfs (the whole suite passes on it; fuse-native is the second engine). */
export const DEFAULT_ENGINE: EngineName = 'layerfs';

export function parseEngine(name: string, from: string): EngineName {
  if ((ENGINES as readonly string[]).includes(name)) return name as EngineName;
  throw new LayerfsError('INVALID_ARGUMENT', `unknown engine ${JSON.stringify(name)} in ${from}`, { hint: `one of: ${ENGINES.join(', ')}` });
}

/** The engine for a mount: an explicit choice, else LAYERFS_ENGINE, else the default. */
export function chooseEngine(explicit: string | undefined, env: NodeJS.ProcessEnv = process.env): EngineName {
  if (explicit !== undefined) return parseEngine(explicit, 'the mount options');
  const fromEnv = env.LAYERFS_ENGINE;
  if (fromEnv !== undefined && fromEnv !== '') return parseEngine(fromEnv, 'LAYERFS_ENGINE');
  // An ordinary user mounts through fusermount3, which only the layerfs engine calls
  // (libfuse 2.9 gives up when it cannot open /dev/fuse itself).
  return isRootless() ? 'layerfs' : DEFAULT_ENGINE;
}
