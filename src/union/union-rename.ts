/**
 * rename(2) on the union, including directories that exist in lower layers (no EXDEV).
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
 * Only RENAME_NOREPLACE is supported among the flags; EXCHANGE gives EINVAL.
 */
import * as fsp from 'node:fs/promises';
import { hasErrnoCode } from '../core/errors.js';
import { RenameFlags } from '../core/filesystem.js';
import { fsError } from './fs-error.js';
import { mknodWhiteout, OPAQUE_XATTR, REDIRECT_XATTR } from './overlay-format.js';
import { baseOf, isWithin, joinPath, parentOf } from './paths.js';
import { sys } from './sys.js';
import type { UpperWriter } from './upper-writer.js';

/** Renames `from` to `to` in the merged view (caller holds the namespace lock). */
export async function renameInUnion(w: UpperWriter, from: string, to: string, flags: number): Promise<void> {
  const view = w.view;
  if ((flags & ~RenameFlags.NOREPLACE) !== 0) throw fsError('EINVAL', from, 'rename flags');
  const src = view.resolve(from);
  const toParent = view.resolve(parentOf(to));
  if (!toParent.isDir) throw fsError('ENOTDIR', to);
  if (from === to) return;
  if (from === '/' || isWithin(to, from)) throw fsError('EINVAL', to, 'rename into itself');
  if (isWithin(from, to)) throw fsError('ENOTEMPTY', to);
  const dst = view.tryResolve(to);
  if (dst === 'ENOTDIR') throw fsError('ENOTDIR', to);
  if (dst !== 'ENOENT') {
    if (flags & RenameFlags.NOREPLACE) throw fsError('EEXIST', to);
    if (src.isDir && !dst.isDir) throw fsError('ENOTDIR', to);
    if (!src.isDir && dst.isDir) throw fsError('EISDIR', to);
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
  const toNode = w.upper.get(to);
  if (toNode?.kind === 'dir') await w.clearWhiteouts(to);
  if (toNode?.kind === 'whiteout' && src.isDir) {
    // A directory cannot replace a non-directory in rename(2); the whiteout goes first.
    await fsp.unlink(toReal);
  }
  if (src.isDir && !node.opaque) {
    const stays = toParent.lowerPath !== null && joinPath(toParent.lowerPath, baseOf(to)) === srcLowerPath;
    if (srcLowerPath !== null && !stays) {
      await sys.lsetxattr(fromReal, REDIRECT_XATTR, Buffer.from(srcLowerPath, 'latin1'));
      node.redirect = srcLowerPath;
    } else if (srcLowerPath === null && dstShadowed) {
      await sys.lsetxattr(fromReal, OPAQUE_XATTR, Buffer.from('y'));
      node.opaque = true;
    }
  }
  if (srcShadowed) await renameLeavingWhiteout(fromReal, toReal);
  else await fsp.rename(fromReal, toReal);
  w.upper.moveTree(from, to);
  if (srcShadowed) w.upper.set(from, { kind: 'whiteout' });
}

/** rename + whiteout at the source, atomically where the filesystem supports it. */
async function renameLeavingWhiteout(fromReal: Buffer, toReal: Buffer): Promise<void> {
  try {
    await sys.renameat2(fromReal, toReal, RenameFlags.WHITEOUT);
  } catch (err) {
    if (!hasErrnoCode(err, 'EINVAL') && !hasErrnoCode(err, 'EOPNOTSUPP')) throw err;
    await fsp.rename(fromReal, toReal);
    await mknodWhiteout(fromReal);
  }
}

/** rename(2) of two names of one inode does nothing (POSIX). */
async function sameUpperObject(w: UpperWriter, from: string, to: string, bothUpper: boolean): Promise<boolean> {
  if (!bothUpper) return false;
  const [a, b] = await Promise.all([fsp.lstat(w.upper.realPath(from)), fsp.lstat(w.upper.realPath(to))]);
  return a.ino === b.ino && a.dev === b.dev;
}
