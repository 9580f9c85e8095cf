/**
 * The kernel overlayfs on-disk format, as layerfs reads and writes it, so that a writable
 * layer written by layerfs mounts unchanged under the kernel's overlayfs (and back):
 * - whiteout: a character device 0/0 hides the same name in the layers below;
 * - opaque directory: xattr trusted.overlay.opaque = "y" hides the layers below it;
 * - redirect (redirect_dir=on): xattr trusted.overlay.redirect on an upper directory names
 *   the lower directory it was renamed from (absolute, from the layer root, when it starts
 *   with '/'); its lower contents are looked up there instead of at its own path.
 * Plus one private name of layerfs: trusted.overlay.layerfs.origin on a copied-up object
 * keeps the inode number it had in its lower layer, so copy-up does not change st_ino. It
 * sits under the overlay's own prefix, which the kernel's overlayfs neither lists nor
 * reads (fs/overlayfs/xattrs.c: an unescaped `trusted.overlay.` name is private), so the
 * writable layer mounted by the kernel shows none of layerfs's bookkeeping; a caller's
 * `trusted.overlay.layerfs.origin` is escaped like any overlay name and cannot collide.
 * Writable layers written before kept it as trusted.layerfs.origin, which is still read
 * (and still hidden and refused to callers).
 *
 * Names a container process uses under `trusted.overlay.` are ESCAPED exactly as the
 * kernel (6.7+) does: stored as `trusted.overlay.overlay.X`, shown back as
 * `trusted.overlay.X`. So no process can forge a whiteout, opaque or redirect marker, and
 * the same upper reads the same under both implementations.
 *
 * Rootless (an ordinary user may not write trusted.*): every `trusted.` above is `user.`
 * instead — user.overlay.opaque, user.overlay.redirect, user.overlay.layerfs.origin, escaping
 * of user.overlay.X — which is what the kernel overlayfs reads when mounted with `userxattr`
 * (as it is in a user namespace). One namespace per process: root's, unless it runs as an
 * ordinary user or LAYERFS_OVERLAY_XATTRS=user|trusted says otherwise (a mount process
 * running as uid 0 of a user namespace over a rootless store). Plus, in rootless stores,
 * user.containers.override_stat (core/override-stat.ts): private like the markers.
 */
import type { BigIntStats, Stats } from 'node:fs';
import { OVERRIDE_STAT_XATTR } from '../core/override-stat.js';
import { inUserNamespace, isRootless } from '../core/user-dirs.js';
import * as sys from '../sys/native.js';
import { decodeOrigin } from './inode.js';
import { nullOnSystemError } from '../core/errors.js';

/** Which xattr namespace holds overlay markers: root's `trusted.`, or `user.` (overlayfs `userxattr`). */
export type OverlayXattrs = 'trusted' | 'user';

/** The xattr namespace of overlay markers in this process: 'trusted' (root) or 'user' (rootless). */
export const OVERLAY_XATTR_NS: OverlayXattrs = pickNamespace();

function pickNamespace(): OverlayXattrs {
  const v = process.env.LAYERFS_OVERLAY_XATTRS;
  if (v === 'user' || v === 'trusted') return v;
  // uid 0 of a user namespace (rootless podman's mount_program) may not write trusted.* either.
  return isRootless() || inUserNamespace() ? 'user' : 'trusted';
}

/**
 * Whether renamed directories get redirects (the kernel's redirect_dir=on). Not in
 * rootless stores: the kernel overlayfs mounted with `userxattr` neither writes nor
 * follows redirects (redirect_dir=nofollow; user.* xattrs are the user's to forge), and
 * renaming a directory with a lower part fails with EXDEV there (mv then copies). layerfs
 * does the same, so both read the writable layer alike.
 */
export const DIR_REDIRECTS = OVERLAY_XATTR_NS === 'trusted';

/**
 * The overlayfs xattr marking a directory opaque, in namespace `ns` (a store's, which
 * need not be this process's: extraction writes a rootless store's layers as root).
 */
export function opaqueXattr(ns: OverlayXattrs): string {
  return `${ns}.overlay.opaque`;
}

export const OPAQUE_XATTR = opaqueXattr(OVERLAY_XATTR_NS);
export const REDIRECT_XATTR = `${OVERLAY_XATTR_NS}.overlay.redirect`;
export const ORIGIN_XATTR = `${OVERLAY_XATTR_NS}.overlay.layerfs.origin`;
/** Where writable layers written before kept the origin: read when ORIGIN_XATTR is absent. */
export const LEGACY_ORIGIN_XATTR = `${OVERLAY_XATTR_NS}.layerfs.origin`;

const OVERLAY_PREFIX = `${OVERLAY_XATTR_NS}.overlay.`;
const ESCAPED_PREFIX = `${OVERLAY_XATTR_NS}.overlay.overlay.`;
const LAYERFS_PREFIX = `${OVERLAY_XATTR_NS}.layerfs.`;

export const S_IFMT = 0o170000;
export const S_IFDIR = 0o040000;
export const S_IFCHR = 0o020000;
export const S_IFREG = 0o100000;
export const S_IFLNK = 0o120000;
export const S_ISUID = 0o4000;
export const S_ISGID = 0o2000;

/** True for a whiteout: a character device with device number 0/0. */
export function isWhiteoutStat(st: Stats | BigIntStats): boolean {
  return (Number(st.mode) & S_IFMT) === S_IFCHR && Number(st.rdev) === 0;
}

/** True when the directory at `realPath` carries the opaque marker. */
export async function isOpaqueDir(realPath: Buffer): Promise<boolean> {
  const v = await sys.lgetxattr(realPath, OPAQUE_XATTR).catch(nullOnSystemError);
  return v !== null && v.toString('latin1') === 'y';
}

/** Marks the directory at `realPath` opaque, in namespace `ns` (default: this process's). */
export function markOpaque(realPath: sys.SysPath, ns: OverlayXattrs = OVERLAY_XATTR_NS): Promise<void> {
  return sys.lsetxattr(realPath, opaqueXattr(ns), Buffer.from('y'), 0);
}

/** The redirect of an upper directory, or undefined. */
export async function readRedirect(realPath: Buffer): Promise<string | undefined> {
  if (!DIR_REDIRECTS) return undefined;
  const v = await sys.lgetxattr(realPath, REDIRECT_XATTR).catch(nullOnSystemError);
  return v === null ? undefined : v.toString('latin1');
}

/**
 * The origin inode number an upper object records, under either name, given the names
 * llistxattr gave for it (no read when it has neither); undefined when absent or malformed.
 */
export async function readOrigin(realPath: sys.SysPath, names: readonly string[]): Promise<number | undefined> {
  const name = names.includes(ORIGIN_XATTR) ? ORIGIN_XATTR : names.includes(LEGACY_ORIGIN_XATTR) ? LEGACY_ORIGIN_XATTR : undefined;
  return name === undefined ? undefined : decodeOrigin(await sys.lgetxattr(realPath, name).catch(nullOnSystemError));
}

/** Creates a whiteout (char device 0/0, mode 0) at `realPath`. */
export function mknodWhiteout(realPath: sys.SysPath): Promise<void> {
  return sys.mknod(realPath, S_IFCHR, sys.makedev(0, 0));
}

/**
 * Maps an xattr name a caller uses to the name stored in a layer: `trusted.overlay.X` →
 * `trusted.overlay.overlay.X` (kernel escaping); 'private' for layerfs's own names,
 * which callers may neither read nor write.
 */
export function storedXattrName(name: string): string | 'private' {
  if (name.startsWith(LAYERFS_PREFIX) || name === OVERRIDE_STAT_XATTR) return 'private';
  if (name.startsWith(OVERLAY_PREFIX)) return ESCAPED_PREFIX + name.slice(OVERLAY_PREFIX.length);
  return name;
}

/** Maps a stored xattr name back to what callers see, or null when it stays hidden. */
export function visibleXattrName(stored: string): string | null {
  if (stored.startsWith(LAYERFS_PREFIX) || stored === OVERRIDE_STAT_XATTR) return null;
  if (stored.startsWith(ESCAPED_PREFIX)) return OVERLAY_PREFIX + stored.slice(ESCAPED_PREFIX.length);
  if (stored.startsWith(OVERLAY_PREFIX)) return null;
  return stored;
}

/**
 * True for stored names a copy-up must not carry over (the overlay's own markers). The
 * owner override is carried: it is the copy's owner and mode too.
 */
export function isPrivateStoredXattr(stored: string): boolean {
  return stored !== OVERRIDE_STAT_XATTR && visibleXattrName(stored) === null;
}
