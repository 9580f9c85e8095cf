/**
 * UpperWriter: every change to the writable layer, in the kernel overlayfs on-disk
 * format: copy-up of a path and its parents, creation of new objects (over a whiteout
 * when the name was deleted from a lower layer, then opaque for directories), and removal
 * (leaving a whiteout when a lower object would otherwise show through again). Callers
 * hold the union's namespace lock and have already checked the POSIX preconditions.
 */
import * as fsp from './backing-calls.js';
import { RenameFlags, type Caller, type CopyUpTarget } from '../core/filesystem.js';
import { copyUpObject, durableByDefault, type CopyCaps } from './copy-up.js';
import type { LowerIndex } from './lower-index.js';
import type { OverrideStat } from '../core/override-stat.js';
import { AUFS_PREFIX, aufsName, baseOf, isAufsReserved, joinPath, lowerIno, markOpaque, mknodWhiteout, ORIGIN_XATTR, parentOf, S_IFLNK, S_IFMT, S_IFREG, S_ISGID } from '../overlay/index.js';
import { OWNER_OVERRIDES, setOwnership } from './owner-override.js';
import { closeFd, fchmodFd, fchownFd } from './sys.js';
import { fixedProcessUmask, processUmask } from './process-umask.js';
import { atPath, backing } from './backing-path.js';
import { ACL_ACCESS_XATTR, ACL_DEFAULT_XATTR, inheritAcl } from './posix-acl.js';
import type { UpperNode, UpperState } from './upper-state.js';
import type { Resolved, UnionView } from './union-view.js';
import { nullOnSystemError } from '../core/errors.js';

/**
 * Builds a new object at a backing path with `mode` (type and permission bits, umask
 * already applied where it applies); regular files return their open fd.
 */
export type MakeObject = (real: Buffer, mode: number) => Promise<number | void>;

const MY_UID = process.getuid?.() ?? 0;
const MY_GID = process.getgid?.() ?? 0;


export class UpperWriter {
  private seq = 0;
  readonly index: LowerIndex;
  private readonly caps: CopyCaps;

  constructor(
    readonly view: UnionView,
    readonly upper: UpperState,
    /** A private directory inside the overlay work dir, on the upper's filesystem. */
    readonly work: Buffer,
    copy: Pick<CopyCaps, 'durable'> = {},
  ) {
    this.index = view.index;
    this.caps = { reflink: true, ...copy };
  }

  /** Told of each copy-up the kernel's caches may not know of (PathFilesystem.onCopiedUp). */
  copiedUp: ((path: string) => void) | undefined;

  /** A fresh temporary path in the work directory. */
  tmpPath(): Buffer {
    return Buffer.concat([this.work, Buffer.from(`/#${process.pid}.${++this.seq}`)]);
  }

  /**
   * Makes `path` an upper object, copying it (and first its parents) up from the lower
   * layers when needed. `data` false copies a regular file empty (for O_TRUNC/truncate 0).
   */
  async ensureUpper(path: string, data = true): Promise<Resolved> {
    const r = this.view.resolve(path);
    if (r.upper !== undefined) return r;
    await this.ensureUpper(parentOf(path));
    const parentReal = this.upper.realPath(parentOf(path));
    const { origin, override } = await copyUpObject(this.caps, this.index, r.lowerPath!, r.lower!, this.tmpPath(), this.upper.realPath(path), parentReal, data);
    this.recordCopy(path, r, origin, override);
    // A copy that keeps no origin is a new inode: a file with other names below.
    if (r.isDir || origin === undefined) this.copiedUp?.(path);
    return this.view.resolve(path);
  }

  /** The writable layer now holds the copy of lower object `r` at `path`. */
  private recordCopy(path: string, r: Resolved, origin: number | undefined, override: OverrideStat | undefined): void {
    const node: UpperNode = { kind: r.isDir ? 'dir' : 'other', ...(origin !== undefined ? { originIno: origin } : {}), ...(override ? { override } : {}) };
    if (r.lower!.xattrs === false) node.noXattrs = true;
    this.upper.set(path, node);
  }

  /**
   * Where a FUSE server may copy lower files up itself (PathFilesystem.copyUpTarget): the
   * same work directory (its temp names differ), origin xattr, umask and flush rule as
   * copyUpObject's one-call path, which it must match; none while the umask is not fixed.
   */
  copyUpTarget(): CopyUpTarget | undefined {
    const umask = fixedProcessUmask();
    if (umask === undefined) return undefined;
    return { upper: this.upper.realPath('/'), work: this.work, originName: ORIGIN_XATTR, umask, durable: this.caps.durable ?? durableByDefault() };
  }

  /** A server copied the lower regular file `r` (the LowerFile it was told of) to `path`
   * as copyUpObject would, keeping its origin: record it. */
  copiedElsewhere(path: string, r: Resolved): void {
    this.recordCopy(path, r, lowerIno(r.lower!.layer, r.lower!.ino), undefined);
  }

  /**
   * Creates a new object at `path` (absent from the merged view; its parent a directory)
   * owned by the caller, returning the fd `make` opened, if any. Over a whiteout the
   * object is built in the work dir and renamed (or exchanged) into place; a directory
   * that hides a lower one becomes opaque, as after the kernel's rmdir-then-mkdir.
   *
   * `mode` is as asked, before the umask: the caller's umask applies unless the parent has
   * a default ACL, which then decides the permission bits (and the new object's ACLs), as
   * on the kernel's overlayfs (a kernel that masks already did: masking again changes
   * nothing). In place the backing filesystem applies the default ACL; an object built in
   * the work directory gets what it would have applied (posix-acl.ts).
   */
  async createNew(path: string, isDir: boolean, mode: number, caller: Caller, make: MakeObject, isSymlink = false): Promise<number | undefined> {
    const parent = parentOf(path);
    await this.ensureUpper(parent);
    const parentReal = this.upper.realPath(parent);
    const parentSt = await backing.lstat(parentReal);
    const setgidParent = (parentSt.mode & S_ISGID) !== 0;
    const gid = setgidParent ? parentSt.gid : caller.gid;
    if (isDir && setgidParent) mode |= S_ISGID;
    // A parent without xattrs has no default ACL; a symlink takes none.
    const defaultAcl = isSymlink || this.upper.get(parent)?.noXattrs === true ? null : await backing.lgetxattr(parentReal, ACL_DEFAULT_XATTR).catch(nullOnSystemError);
    const existing = await this.materializeWhiteout(path);
    const opaque = isDir && this.view.lowerShadowed(path);
    const real = this.upper.realPath(path);
    const viaWork = existing?.kind === 'whiteout' || opaque;
    const target = viaWork ? this.tmpPath() : real;
    const inherited = defaultAcl !== null && viaWork ? inheritAcl(defaultAcl, mode, isDir) : undefined;
    const aclInPlace = defaultAcl !== null && !viaWork;
    if (inherited !== undefined) mode = inherited.mode;
    else if (!aclInPlace && !isSymlink) mode &= ~(caller.umask & 0o777);
    const fd = await make(target, mode);
    // Until the object is in place, a failure removes it again (in place: it is ours,
    // just made), so the writable layer never holds an object UpperState does not know.
    let override: OverrideStat | undefined;
    try {
      override = await applyOwner(target, typeof fd === 'number' ? fd : undefined, caller.uid, gid, mode, isSymlink, viaWork || setgidParent, aclInPlace);
      // After the mode: setting an access ACL sets the permission bits to match it.
      if (inherited?.access) await backing.lsetxattr(target, ACL_ACCESS_XATTR, inherited.access);
      if (inherited?.default) await backing.lsetxattr(target, ACL_DEFAULT_XATTR, inherited.default);
      if (opaque) await atPath(target, (p) => markOpaque(p));
      if (viaWork) {
        if (isDir && existing?.kind === 'whiteout') {
          // rename(2) cannot put a directory over a non-directory: swap with the whiteout.
          await backing.renameat2(target, real, RenameFlags.EXCHANGE);
        } else {
          await backing.rename(target, real);
        }
      }
    } catch (err) {
      if (typeof fd === 'number') await closeFd(fd).catch(() => undefined);
      await backing.removeAll(target).catch(() => undefined);
      throw err;
    }
    // The swapped-out whiteout now sits in the work dir; a leftover is cleared at next start.
    if (viaWork && isDir && existing?.kind === 'whiteout') await backing.unlink(target).catch(() => undefined);
    const node: UpperNode = { kind: isDir ? 'dir' : 'other', ownStat: true };
    if (opaque) node.opaque = true;
    if (override) node.override = override;
    // A parent without xattrs has no default ACL to pass on.
    if (this.upper.get(parent)?.noXattrs === true) node.noXattrs = true;
    this.upper.set(path, node);
    return typeof fd === 'number' ? fd : undefined;
  }

  /**
   * Removes `path` (resolved, checked: a non-directory or an empty directory) from the
   * merged view: deletes its upper object and/or leaves a whiteout where a lower object
   * would show through. The whiteout replaces the object atomically (rename/exchange).
   */
  async remove(path: string, r: Resolved): Promise<void> {
    const shadowed = this.view.lowerShadowed(path);
    const real = this.upper.realPath(path);
    if (r.upper === undefined) {
      await this.ensureUpper(parentOf(path));
      await atPath(real, (p) => mknodWhiteout(p));
    } else if (shadowed) {
      const tmp = this.tmpPath();
      await mknodWhiteout(tmp);
      if (r.isDir) {
        await backing.renameat2(tmp, real, RenameFlags.EXCHANGE);
        // The old directory (only whiteouts inside) now sits in the work dir; a failure to
        // delete it leaves a leftover the next start clears, never a wrong view.
        await fsp.rm(tmp, { recursive: true, force: true }).catch(() => undefined);
      } else {
        await backing.rename(tmp, real);
      }
    } else if (r.isDir) {
      await this.clearWhiteouts(path);
      await backing.rmdir(real);
    } else {
      await backing.unlink(real);
    }
    this.upper.deleteTree(path);
    if (shadowed) this.upper.set(path, { kind: 'whiteout' });
  }

  /**
   * Deletes the whiteouts inside an upper directory that is empty in the merged view
   * (AUFS marker files too, which are all such a directory can hold besides).
   */
  async clearWhiteouts(path: string): Promise<void> {
    const names = await backing.readdir(this.upper.realPath(path));
    for (const b of names) {
      const name = b.toString('latin1');
      const child = joinPath(path, name);
      if (this.upper.aufs && isAufsReserved(name)) {
        await backing.unlink(this.upper.realPath(child));
        const a = aufsName(name);
        if (a.kind === 'whiteout' && this.upper.get(joinPath(path, a.target))?.aufsFile) this.upper.deleteTree(joinPath(path, a.target));
        continue;
      }
      if (this.upper.get(child)?.kind !== 'whiteout') continue;
      await backing.unlink(this.upper.realPath(child));
      this.upper.deleteTree(child);
    }
  }

  /**
   * The upper node at `path`, after turning an AUFS whiteout file there (`.wh.NAME`) into
   * the kernel's char 0/0 whiteout AT the name, which every change below expects to
   * replace or exchange. The new whiteout is in place before the file goes, so the name
   * never shows its lower object meanwhile.
   */
  async materializeWhiteout(path: string): Promise<UpperNode | undefined> {
    const node = this.upper.get(path);
    if (node?.aufsFile !== true) return node;
    await atPath(this.upper.realPath(path), (p) => mknodWhiteout(p));
    await backing.unlink(this.upper.realPath(joinPath(parentOf(path), AUFS_PREFIX + baseOf(path))));
    const whiteout: UpperNode = { kind: 'whiteout' };
    this.upper.set(path, whiteout);
    return whiteout;
  }
}

/**
 * Sets owner then mode (chown clears setuid/setgid, so mode goes last). A rootless mount
 * that cannot give the owner keeps it in an override (owner-override.ts), returned.
 */
async function applyOwner(
  real: Buffer,
  fd: number | undefined,
  uid: number,
  gid: number,
  mode: number,
  isSymlink: boolean,
  forceChown: boolean,
  /** The backing filesystem took the permission bits from the parent's default ACL. */
  aclPerms = false,
): Promise<OverrideStat | undefined> {
  if (OWNER_OVERRIDES && (uid !== MY_UID || gid !== MY_GID)) {
    const type = isSymlink ? S_IFLNK : (mode & S_IFMT) || S_IFREG;
    return setOwnership(real, fd, type, { uid, gid, mode: mode & 0o7777 }, undefined);
  }
  if (forceChown || uid !== MY_UID || gid !== MY_GID) {
    if (fd !== undefined) await fchownFd(fd, uid, gid);
    else await backing.lchown(real, uid, gid);
  }
  if (isSymlink) return undefined;
  if (aclPerms) {
    // Those bits are right (a chmod would rewrite the ACL); only setuid/setgid, which chown
    // may have cleared and mkdir ignores, still need setting.
    if ((mode & 0o7000) === 0) return undefined;
    const perms = (await backing.lstat(real)).mode & 0o777;
    if (fd !== undefined) await fchmodFd(fd, perms | (mode & 0o7000));
    else await backing.chmod(real, perms | (mode & 0o7000));
    return undefined;
  }
  // mkdir/open/mknod already applied `mode` minus the process umask; chmod only if that
  // lost bits, or chown may have cleared setuid/setgid, or mkdir ignored them.
  if ((mode & processUmask() & 0o777) === 0 && (mode & 0o7000) === 0) return undefined;
  if (fd !== undefined) await fchmodFd(fd, mode & 0o7777);
  else await backing.chmod(real, mode & 0o7777);
  return undefined;
}
