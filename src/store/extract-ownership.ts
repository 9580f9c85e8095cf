/**
 * How an extracted entry gets the owner and mode its tar header gives, with or without
 * the privilege to chown (README "Rootless", native-notes/rootless.md):
 *
 * - 'chown': lchown + chmod, as root does, and as a rootless extraction does inside its
 *   user namespace (layer-extract-runner.ts), where image uid N becomes the mapped host
 *   uid. An id outside the namespace's mapping (EINVAL) falls back to the xattr below
 *   for that entry, instead of failing the whole image.
 * - 'override-xattr': no subordinate ids (a single mapping): the entry stays owned by the
 *   user, its mode on disk keeps the owner's read/write(/search) bits (so the user can
 *   still read it and remove it) without set-id bits, and the image's uid, gid and mode
 *   go into user.containers.override_stat, which the mount reports back.
 *
 * Device nodes cannot be made without CAP_MKNOD in the initial namespace (only the 0/0
 * whiteout can): a rootless store keeps them as empty regular files whose override names
 * the device (`char-M-m`), as containers-storage does. Symlinks and fifos cannot carry
 * user.* xattrs (the kernel refuses them there), so in 'override-xattr' mode they keep
 * the user as owner.
 */
import { chmod, lchown } from 'node:fs/promises';
import { LayerfsError, hasErrnoCode } from '../core/errors.js';
import { formatOverrideStat, OVERRIDE_STAT_XATTR, type OverrideType } from '../core/override-stat.js';
import * as sys from '../sys/native.js';

export type OwnerMode = 'chown' | 'override-xattr';

/** The type of entry, as far as ownership cares. */
export type OwnedKind = 'dir' | 'file' | 'symlink' | 'fifo';

export interface ImageOwner {
  uid: number;
  gid: number;
  /** Permission bits from the header. */
  mode: number;
  /** A device kept as an empty regular file. */
  device?: OverrideType;
}

/** Applies `owner` to the entry at `p` (already created). */
export async function applyOwnership(p: Buffer, kind: OwnedKind, owner: ImageOwner, mode: OwnerMode): Promise<void> {
  if (mode === 'chown') {
    try {
      await lchown(p, owner.uid, owner.gid);
      if (kind !== 'symlink') await chmod(p, owner.mode);
      if (owner.device) await writeOverride(p, owner);
      return;
    } catch (err) {
      // EINVAL: the id has no mapping in this user namespace.
      if (!hasErrnoCode(err, 'EINVAL')) throw err;
      if (kind !== 'dir' && kind !== 'file') {
        throw new LayerfsError('FAILED_PRECONDITION', `owner ${owner.uid}:${owner.gid} of a ${kind} is outside this user's subordinate id range`, {
          cause: err,
          hint: 'give the user a larger range in /etc/subuid and /etc/subgid (65536 ids cover ordinary images)',
        });
      }
    }
  }
  if (kind === 'symlink') return;
  const keep = kind === 'dir' ? 0o700 : 0o600;
  await chmod(p, (owner.mode & 0o777) | keep);
  if (kind === 'fifo') return;
  await writeOverride(p, owner);
}

function writeOverride(p: Buffer, owner: ImageOwner): Promise<void> {
  return sys.lsetxattr(p, OVERRIDE_STAT_XATTR, formatOverrideStat({ uid: owner.uid, gid: owner.gid, mode: owner.mode, ...(owner.device ? { type: owner.device } : {}) }), 0);
}
