/**
 * Owners a rootless mount cannot give: an ordinary user's mount process may chown only
 * to itself, so an upper object whose owner must be someone else (a copy-up of a file of
 * the image's uid 33, a container's chown) keeps the owner and mode it should have in
 * user.containers.override_stat (core/override-stat.ts), as fuse-overlayfs does with
 * containers-storage, and the mount reports them (UpperNode.override). Only files and
 * directories can carry a user.* xattr: a symlink or device whose owner cannot be set
 * fails with the errno the kernel gave (EPERM), as it would for the user without layerfs.
 *
 * Root, and a rootless process whose chown succeeds (its own ids, or a mapped id inside a
 * user namespace), never writes one, and removes one it finds when it sets a real owner.
 *
 * Ids: the override holds CONTAINER ids (the image's, as containers-storage writes them);
 * the mount is in the host's namespaces, so it reports and takes HOST ids, translated
 * through the user's namespace layout (userns/id-map.ts: container 0 = the user, N =
 * subuid+N-1; without ranges only 0 is mapped, the rest shows as the overflow id 65534,
 * as in a user namespace). A rootless container in that layout sees the image's ids.
 */
import { backing } from './backing-path.js';
import { hasErrnoCode, nullOnSystemError } from '../core/errors.js';
import { fsError } from './fs-error.js';
import { formatOverrideStat, OVERRIDE_STAT_XATTR, parseOverrideStat, type OverrideStat } from '../core/override-stat.js';
import { OVERLAY_XATTR_NS, S_IFDIR, S_IFLNK, S_IFREG, S_ISGID, S_ISUID } from '../overlay/index.js';
import { fchmodFd, fchownFd } from './sys.js';
import { fromHost, ownMapping, singleMapping, toHost, type UsernsMapping } from '../userns/index.js';

/** Whether this process keeps owners it cannot set in the override xattr (rootless stores). */
export const OWNER_OVERRIDES = OVERLAY_XATTR_NS === 'user';

/** The id layout overrides are read through (only used with OWNER_OVERRIDES). */
const LAYOUT: UsernsMapping = OWNER_OVERRIDES ? (ownMapping() ?? singleMapping(process.getuid!(), process.getgid!())) : singleMapping(0, 0);
/** What a user namespace shows for an unmapped id. */
const OVERFLOW_ID = 65534;

/** An override's owner as host ids (what the mount reports). */
export function overrideOwnerOnHost(o: OverrideStat): { uid: number; gid: number } {
  return { uid: toHost(LAYOUT.uids, o.uid) ?? OVERFLOW_ID, gid: toHost(LAYOUT.gids, o.gid) ?? OVERFLOW_ID };
}

/** An owner and permission bits (07777) to give an object. */
export interface Ownership {
  uid: number;
  gid: number;
  mode: number;
}

/** The override an upper object carries, if overrides are in use and it has one. */
export async function readOverride(real: Buffer): Promise<OverrideStat | undefined> {
  if (!OWNER_OVERRIDES) return undefined;
  const v = await backing.lgetxattr(real, OVERRIDE_STAT_XATTR).catch(nullOnSystemError);
  return v === null ? undefined : parseOverrideStat(v, `upper object ${real.toString('latin1')}`);
}

/**
 * Gives the object at `real` (or open as `fd`) of type `fileType` (S_IFMT bits) the owner
 * `want` (host ids) and mode: chown + chmod when allowed, else the override. `had`: its current
 * override. Returns the override now in force (undefined: none, the disk says it all).
 */
export async function setOwnership(real: Buffer, fd: number | undefined, fileType: number, want: Ownership, had: OverrideStat | undefined): Promise<OverrideStat | undefined> {
  const isLink = fileType === S_IFLNK;
  try {
    if (fd !== undefined) await fchownFd(fd, want.uid, want.gid);
    else await backing.lchown(real, want.uid, want.gid);
    if (!isLink) {
      if (fd !== undefined) await fchmodFd(fd, want.mode & 0o7777);
      else await backing.chmod(real, want.mode & 0o7777);
    }
    if (had) await backing.lremovexattr(real, OVERRIDE_STAT_XATTR);
    return undefined;
  } catch (err) {
    const cannot = hasErrnoCode(err, 'EPERM') || hasErrnoCode(err, 'EINVAL');
    if (!OWNER_OVERRIDES || !cannot || (fileType !== S_IFREG && fileType !== S_IFDIR)) throw err;
  }
  // Kept as container ids; a host id outside the layout has no container id to keep.
  const uid = fromHost(LAYOUT.uids, want.uid);
  const gid = fromHost(LAYOUT.gids, want.gid);
  if (uid === undefined || gid === undefined) throw fsError('EINVAL', real.toString('latin1'), `owner ${want.uid}:${want.gid} is outside this user's id mapping`);
  return writeOverride(real, fd, fileType, { uid, gid, mode: want.mode, ...(had?.type ? { type: had.type } : {}) });
}

/**
 * The owner and mode of a writable-layer object as the CONTAINER sees them (what a
 * committed layer's tar header must say): root's are the disk's; a rootless store's come
 * from the override, else from the disk's host ids mapped back through the layout.
 */
export async function containerOwnership(real: Buffer, st: { uid: number; gid: number; mode: number }): Promise<Ownership & { device?: { kind: 'char' | 'block'; major: number; minor: number } }> {
  if (!OWNER_OVERRIDES) return { uid: st.uid, gid: st.gid, mode: st.mode & 0o7777 };
  const o = await readOverride(real);
  if (o) return { uid: o.uid, gid: o.gid, mode: o.mode, ...(o.type && (o.type.kind === 'char' || o.type.kind === 'block') ? { device: { kind: o.type.kind, major: o.type.major, minor: o.type.minor } } : {}) };
  return { uid: fromHost(LAYOUT.uids, st.uid) ?? st.uid, gid: fromHost(LAYOUT.gids, st.gid) ?? st.gid, mode: st.mode & 0o7777 };
}

/** A new mode for an object with override `had` (chmod): the override changes, the disk keeps the user's access. */
export function chmodOverride(real: Buffer, fileType: number, had: OverrideStat, mode: number): Promise<OverrideStat> {
  return writeOverride(real, undefined, fileType, { ...had, mode: mode & 0o7777 });
}

/** chown's effect on set-id bits (kernel: S_ISUID always, S_ISGID when group-executable) for a regular file. */
export function modeAfterChown(fileType: number, mode: number): number {
  if (fileType !== S_IFREG) return mode;
  let m = mode & ~S_ISUID;
  if (m & 0o010) m &= ~S_ISGID;
  return m;
}

async function writeOverride(real: Buffer, fd: number | undefined, fileType: number, o: OverrideStat): Promise<OverrideStat> {
  // On disk: the permission bits without set-id bits, plus the user's own access, so the
  // mount process can still read, write and list what it serves.
  const disk = (o.mode & 0o777) | (fileType === S_IFDIR ? 0o700 : 0o600);
  if (fd !== undefined) await fchmodFd(fd, disk);
  else await backing.chmod(real, disk);
  await backing.lsetxattr(real, OVERRIDE_STAT_XATTR, formatOverrideStat(o));
  return o;
}
