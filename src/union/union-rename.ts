/**
 * rename(2) on the union, including directories that exist in lower layers (no EXDEV;
 * except in a rootless store, see DIR_REDIRECTS in overlay/overlay-format.ts).
 *
 * The source is copied up (a directory: only the directory itself, not its subtree) and
 * renamed inside the writable layer. What was below it must keep showing at its new
 * name, and nothing foreign may show through there:
 * - a directory with a lower part gets trusted.overlay.redirect = its absolute lower
 *   path, exactly what the kernel writes with redirect_dir=on, so the same upper mounts
 *   unchanged under the kernel overlayfs with `redirect_dir=on`;
 * - a directory with no lower part that lands over a name a lower layer holds becomes
 *   opaque;
 * - a source name a lower layer also holds is left as a whiteout (RENAME_WHITEOUT).
 * RENAME_EXCHANGE swaps two existing names the same way (both copied up, markers set
 * for where each directory lands). RENAME_WHITEOUT from a caller gives EINVAL.
 */
import { hasErrnoCode } from '../core/errors.js';
import { RenameFlags } from '../core/filesystem.js';
import { fsError } from './fs-error.js';
import { baseOf, DIR_REDIRECTS, isWithin, joinPath, markOpaque, mknodWhiteout, parentOf, REDIRECT_XATTR } from '../overlay/index.js';
import type { Resolved } from './union-view.js';
import { atPath, backing } from './backing-path.js';
import type { UpperWriter } from './upper-writer.js';

/** Renames `from` to `to` in the merged view (caller holds the namespace lock). */
export async function renameInUnion(w: UpperWriter, from: string, to: string, flags: number): Promise<void> {
  const view = w.view;
  if (flags === RenameFlags.EXCHANGE) return exchangeInUnion(w, from, to);
  if ((flags & ~RenameFlags.NOREPLACE) !== 0) throw fsError('EINVAL', from, 'rename flags');
  const src = view.resolve(from);
  const toParent = view.resolve(parentOf(to));
  if (!toParent.isDir) throw fsError('ENOTDIR', to);
  if (from === '/') throw fsError('EINVAL', to, 'rename into itself');
  const dst = view.tryResolve(to);
  if (dst === 'ENOTDIR') throw fsError('ENOTDIR', to);
  // In the VFS's order (do_renameat2): an existing target under NOREPLACE first, then a
  // name onto itself, then one into its own subtree (or onto an ancestor).
  if (dst !== 'ENOENT' && flags & RenameFlags.NOREPLACE) throw fsError('EEXIST', to);
  if (from === to) return;
  if (isWithin(to, from)) throw fsError('EINVAL', to, 'rename into itself');
  if (isWithin(from, to)) throw fsError('ENOTEMPTY', to);
  if (dst !== 'ENOENT') {
    if (src.isDir && !dst.isDir) throw fsError('ENOTDIR', to);
    if (!src.isDir && dst.isDir) throw fsError('EISDIR', to);
  }
  // Checked where the kernel's ovl_rename checks it: after the VFS's checks above.
  if (!DIR_REDIRECTS && hasLowerPart(src)) throw fsError('EXDEV', from, 'directory with a lower part (no redirects in a rootless store)');
  if (dst !== 'ENOENT') {
    if (dst.isDir && (await view.readdir(dst)).length > 0) throw fsError('ENOTEMPTY', to);
    if (await sameUpperObject(w, from, to, src.upper !== undefined && dst.upper !== undefined)) return;
  }
  // Decide the markers from the state before anything moves.
  const srcLowerPath = src.isDir && src.lower !== undefined ? src.lowerPath : null;
  const srcShadowed = view.lowerShadowed(from);
  const dstShadowed = view.lowerShadowed(to);
  await w.ensureUpper(parentOf(to));
  const up = await w.ensureUpper(from);
  const node = up.upper!;
  const fromReal = w.upper.realPath(from);
  const toReal = w.upper.realPath(to);
  const toNode = await w.materializeWhiteout(to);
  if (toNode?.kind === 'dir') await w.clearWhiteouts(to);
  if (toNode?.kind === 'whiteout' && src.isDir) {
    // A directory cannot replace a non-directory in rename(2); the whiteout goes first.
    await backing.unlink(toReal);
  }
  await markMovedDir(w, from, to, src.isDir, srcLowerPath, dstShadowed);
  if (srcShadowed) await renameLeavingWhiteout(fromReal, toReal);
  else await backing.rename(fromReal, toReal);
  w.upper.moveTree(from, to);
  if (srcShadowed) w.upper.set(from, { kind: 'whiteout' });
}

/**
 * Marks an upper directory about to move from `from` to `to` so that exactly its own
 * lower part shows at the new name: a redirect to that lower part, or opaque when it has
 * none and a lower layer holds `to`.
 */
async function markMovedDir(w: UpperWriter, from: string, to: string, isDir: boolean, lowerPath: string | null, toShadowed: boolean): Promise<void> {
  const node = w.upper.get(from);
  if (!isDir || node === undefined || node.opaque) return;
  const toParent = w.view.resolve(parentOf(to));
  const stays = toParent.lowerPath !== null && joinPath(toParent.lowerPath, baseOf(to)) === lowerPath;
  const real = w.upper.realPath(from);
  if (lowerPath !== null && !stays) {
    await backing.lsetxattr(real, REDIRECT_XATTR, Buffer.from(lowerPath, 'latin1'));
    node.redirect = lowerPath;
  } else if (lowerPath === null && toShadowed) {
    await atPath(real, (p) => markOpaque(p));
    node.opaque = true;
  }
  // Re-recorded so the native mirror sees the new marks even if the rename then fails.
  w.upper.set(from, node);
}

/** renameat2(RENAME_EXCHANGE) on the union: both names must exist. */
async function exchangeInUnion(w: UpperWriter, a: string, b: string): Promise<void> {
  const view = w.view;
  const ra = view.resolve(a);
  const rb = view.resolve(b);
  if (a === b) return;
  if (isWithin(a, b) || isWithin(b, a)) throw fsError('EINVAL', b, 'exchange with an ancestor');
  if (!DIR_REDIRECTS && (hasLowerPart(ra) || hasLowerPart(rb))) throw fsError('EXDEV', a, 'directory with a lower part (no redirects in a rootless store)');
  const lowerA = ra.isDir && ra.lower !== undefined ? ra.lowerPath : null;
  const lowerB = rb.isDir && rb.lower !== undefined ? rb.lowerPath : null;
  const shadowA = view.lowerShadowed(a);
  const shadowB = view.lowerShadowed(b);
  await w.ensureUpper(a);
  await w.ensureUpper(b);
  await markMovedDir(w, a, b, ra.isDir, lowerA, shadowB);
  await markMovedDir(w, b, a, rb.isDir, lowerB, shadowA);
  await backing.renameat2(w.upper.realPath(a), w.upper.realPath(b), RenameFlags.EXCHANGE);
  w.upper.swapTrees(a, b);
}

/** A directory the kernel calls "merge" or "lower": one it could move only with a redirect. */
function hasLowerPart(r: Resolved): boolean {
  return r.isDir && r.lower !== undefined;
}

/** rename + whiteout at the source, atomically where the filesystem supports it. */
async function renameLeavingWhiteout(fromReal: Buffer, toReal: Buffer): Promise<void> {
  try {
    await backing.renameat2(fromReal, toReal, RenameFlags.WHITEOUT);
  } catch (err) {
    if (!hasErrnoCode(err, 'EINVAL') && !hasErrnoCode(err, 'EOPNOTSUPP')) throw err;
    await backing.rename(fromReal, toReal);
    await atPath(fromReal, (p) => mknodWhiteout(p));
  }
}

/** rename(2) of two names of one inode does nothing (POSIX). */
async function sameUpperObject(w: UpperWriter, from: string, to: string, bothUpper: boolean): Promise<boolean> {
  if (!bothUpper) return false;
  const [a, b] = await Promise.all([backing.lstat(w.upper.realPath(from)), backing.lstat(w.upper.realPath(to))]);
  return a.ino === b.ino && a.dev === b.dev;
}
