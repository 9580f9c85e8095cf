/**
 * How OCI layer-tar conventions map onto the kernel overlayfs on-disk format, and which
 * layer contents layerfs refuses because they would forge that format.
 *
 * - `.wh.NAME` (OCI whiteout)            → NAME as a 0/0 character device.
 * - `.wh..wh..opq` (opaque marker)        → `trusted.overlay.opaque=y` on its directory
 *   (`user.overlay.opaque=y` in a rootless store: overlayfs's `userxattr` convention); it
 *   applies whatever its position in the tar, and never removes the directory's own entries.
 * - other `.wh..wh.*` (AUFS hard-link bookkeeping, `.wh..wh.plnk`…) → ignored, as Docker does.
 * - a bare `.wh.`, or `.wh..` / `.wh...`  → refused: they name no entry or the directory itself.
 * - a LITERAL 0/0 character device in the tar → refused. On disk it would be
 *   indistinguishable from a whiteout, so a layer could hide lower files without saying so;
 *   OCI layers express deletion only with `.wh.` entries.
 * - xattrs `trusted.overlay.*`, `user.overlay.*`, `user.fuseoverlayfs.*`,
 *   `user.containers.override_stat` → refused: the kernel overlayfs, fuse-overlayfs and
 *   layerfs's rootless stores read them as their own metadata (opaque, redirect, metacopy,
 *   origin, owner and mode…), so writing them from a layer would forge it.
 * - a whiteout *under a non-directory the same layer created* (`d -> t` then `d/.wh.x` from
 *   some builders; umoci writes `d` (now a file) then `d/.wh.child`) → dropped: that entry
 *   already hides the whole lower `d`, so the whiteout has nothing to hide, and following a
 *   symlink there would write outside the layer.
 */
import { LayerfsError } from '../core/errors.js';

/** Prefix of an OCI whiteout entry. */
export const WHITEOUT_PREFIX = '.wh.';
/** The OCI opaque-directory marker. */
export const OPAQUE_MARKER = '.wh..wh..opq';
const FORGED_XATTR = /^(trusted\.overlay\.|user\.overlay\.|user\.fuseoverlayfs\.|user\.containers\.override_stat$)/;

/** What a layer entry's base name means. */
export type WhiteoutKind = { kind: 'none' } | { kind: 'opaque' } | { kind: 'ignore' } | { kind: 'whiteout'; target: string };

/** Classifies a base name; throws for malformed whiteouts. */
export function classifyName(base: string, fullName: string): WhiteoutKind {
  if (!base.startsWith(WHITEOUT_PREFIX)) return { kind: 'none' };
  if (base === OPAQUE_MARKER) return { kind: 'opaque' };
  if (base.startsWith(WHITEOUT_PREFIX + WHITEOUT_PREFIX)) return { kind: 'ignore' };
  const target = base.slice(WHITEOUT_PREFIX.length);
  if (target === '') throw new LayerfsError('INVALID_IMAGE', `tar entry ${JSON.stringify(fullName)} is a bare whiteout (".wh." names nothing)`);
  if (target === '.' || target === '..') {
    throw new LayerfsError('UNSAFE_PATH', `whiteout ${JSON.stringify(fullName)} names ${JSON.stringify(target)}, outside its directory`);
  }
  return { kind: 'whiteout', target };
}

/** Throws when an xattr name would forge overlay metadata. */
export function checkXattrName(name: string, entry: string): void {
  if (FORGED_XATTR.test(name)) {
    throw new LayerfsError('INVALID_IMAGE', `tar entry ${JSON.stringify(entry)} carries xattr ${JSON.stringify(name)}, which would forge overlay metadata`, {
      hint: 'layers may not set trusted.overlay.*, user.overlay.*, user.fuseoverlayfs.* or user.containers.override_stat attributes',
    });
  }
}

/** Throws for a literal 0/0 character device (see the module comment). */
export function refuseLiteralWhiteout(entry: string): never {
  throw new LayerfsError('INVALID_IMAGE', `tar entry ${JSON.stringify(entry)} is a 0/0 character device, which the overlay format reserves for whiteouts`, {
    hint: 'OCI layers delete files with .wh.NAME entries',
  });
}
