/**
 * The AUFS whiteout format, read as well as the kernel's when a mount is asked to
 * (`UnionOptions.aufsWhiteouts`; `layerfs-overlay` always asks, as fuse-overlayfs reads it).
 *
 * containers-storage's overlay driver writes every layer in this format once a
 * `mount_program` is configured (drivers/overlay `getWhiteoutFormat`: a mount program
 * usually means an unprivileged user, who could not mknod whiteouts before Linux 5.8):
 * - `.wh.NAME`, an empty regular file: NAME is deleted (hides NAME in deeper layers);
 * - `.wh..wh..opq`, an empty regular file: its directory is opaque;
 * - other `.wh..wh.*` names (AUFS bookkeeping such as `.wh..wh.plnk`): no meaning.
 * None of these names is ever shown. Within one layer a real NAME beside `.wh.NAME`
 * wins (the whiteout speaks of the layers below only).
 *
 * layerfs itself keeps writing the kernel format into the writable layer (char 0/0,
 * the opaque xattr); a whiteout file met there is turned into a char 0/0 whiteout only
 * when a change lands on its name (see UpperWriter.materializeWhiteout).
 */
import { lstat } from 'node:fs/promises';
import { inRoot, joinPath } from './paths.js';
import { OPAQUE_MARKER, WHITEOUT_PREFIX } from './whiteout-policy.js';

export const AUFS_PREFIX = WHITEOUT_PREFIX;
export const AUFS_OPAQUE = OPAQUE_MARKER;

/**
 * Whether a fuse-overlayfs-style mount program (`layerfs-overlay`) reads this format: it
 * does, in every layer, as fuse-overlayfs does. Whoever prepares an index cache for its
 * mounts (the containerd snapshotter) builds it the same way, or each mount rebuilds it.
 */
export const MOUNT_PROGRAM_READS_AUFS = true;

/** What a directory entry's name means in the AUFS format. */
export type AufsName = { kind: 'plain' } | { kind: 'opaque' } | { kind: 'meta' } | { kind: 'whiteout'; target: string };

export function aufsName(name: string): AufsName {
  if (!name.startsWith(AUFS_PREFIX)) return { kind: 'plain' };
  if (name === AUFS_OPAQUE) return { kind: 'opaque' };
  const target = name.slice(AUFS_PREFIX.length);
  // `.wh.`, `.wh..`, `.wh...` name nothing in the directory; `.wh..wh.*` is bookkeeping.
  if (target === '' || target === '.' || target === '..' || target.startsWith(AUFS_PREFIX)) return { kind: 'meta' };
  return { kind: 'whiteout', target };
}

/** True for a name the AUFS format reserves (never shown, never made through the mount). */
export function isAufsReserved(name: string): boolean {
  return name.startsWith(AUFS_PREFIX);
}

/** True when the directory `path` of the layer at `root` holds the AUFS opaque marker. */
export async function hasAufsOpaqueMarker(root: Buffer, path: string): Promise<boolean> {
  return lstat(inRoot(root, joinPath(path, AUFS_OPAQUE))).then(
    (st) => st.isFile(),
    () => false,
  );
}
