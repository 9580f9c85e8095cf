/**
 * UnionFilesystem: the PathFilesystem layerfs serves — a writable upper directory over N
 * read-only lower directories, all in the kernel overlayfs on-disk format (see
 * src/overlay/). Reads of lower-only paths come from the in-memory LowerIndex;
 * the writable layer is consulted first through the exact in-memory UpperState. Every
 * namespace change (and copy-up) runs under one lock, so multi-step changes never
 * interleave; data I/O on open handles and all reads run freely.
 *
 * Permission checks are the kernel's (the mount uses default_permissions); this class
 * only sets ownership of new objects from the caller and clears setuid/setgid on writes
 * by callers without CAP_FSETID (non-root), as the kernel would.
 */
import * as fsp from './backing-calls.js';
import { LayerfsError } from '../core/errors.js';
import { constants as C, fstatSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import type { Caller, DirectIo, DirEntry, FileStat, LookupAnswer, LoopDir, LoopLookups, LowerFile, MetadataMirror, PathFilesystem, StatFs, TimeUpdate, UpperDirStat, CopyUpTarget } from '../core/filesystem.js';
import { mayAccessXattr, visibleXattrNamesFor } from './caller-privilege.js';
import { HandleTable } from './file-handles.js';
import { fsError } from './fs-error.js';
import { baseOf, isAufsReserved, lowerIno, parentOf, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG, S_ISGID, S_ISUID, storedXattrName, upperIno, visibleXattrName } from '../overlay/index.js';
import { LowerIndex, type LowerEntry } from './lower-index.js';
import { Mutex } from '../core/mutex.js';
import { chmodOverride, modeAfterChown, overrideOwnerOnHost, OWNER_OVERRIDES, setOwnership } from './owner-override.js';
import { closeFd, fchmodFd, fstatFd, fsyncFd, ftruncateFd, readFd, writeFd } from './sys.js';
import { backing, removeTree } from './backing-path.js';
import { durableByDefault } from './copy-up.js';
import { renameInUnion } from './union-rename.js';
import { lowerStat, UnionView, type Resolved } from './union-view.js';
import { UpperState } from './upper-state.js';
import { UpperWriter } from './upper-writer.js';

/** Where the layers are. Without `upperDir` the union is read-only (writes fail EROFS). */
export interface UnionOptions {
  /** Lower layer directories, TOP FIRST (as in overlayfs's lowerdir=). */
  lowerDirs: string[];
  upperDir?: string;
  /** Required with `upperDir`, on the same filesystem (as in overlayfs's workdir=). */
  workDir?: string;
  /** Where the lower index is cached (only for immutable lower dirs: see LowerIndex.open). */
  indexCache?: string;
  /** Copy-ups skip flushing their data (UnionMountConfig.volatile). Default: the process
   * default of copy-up.ts when the union opens (flush, unless LAYERFS_COPY_UP_FSYNC=0). */
  volatile?: boolean;
  /**
   * Read the AUFS whiteout format too (`.wh.NAME`, `.wh..wh..opq`: overlay/aufs-whiteouts.ts), in
   * the lowers and the upper, as containers-storage writes layers for a mount_program.
   */
  aufsWhiteouts?: boolean;
  /** Told once per path when a layer file disagrees with the index (see LayerDamage). */
  onDamage?: (damage: LayerDamage) => void;
}

/** A lower file whose backing object is not what the index promised (deleted, truncated, retyped by hand). */
export interface LayerDamage {
  /** The lower directory (a store's `layers/<cache-id>/diff`). */
  layer: string;
  path: string;
  reason: string;
}

const O_ACCMODE = 3;
const osErrno = osConstants.errno;

export class UnionFilesystem implements PathFilesystem {
  private readonly handles = new HandleTable();
  private readonly lock = new Mutex();
  /** Paths found damaged: answered EIO from then on (getattr too, not the index's stale size). */
  private readonly damaged = new Set<string>();
  private onDamage: ((d: LayerDamage) => void) | undefined;
  /**
   * ACLs live on the backing objects, whose modes the union reports and changes (chmod
   * rewrites an ACL's mask, setting an ACL the mode), and createNew applies the umask. Not
   * with owner overrides (rootless): an overridden object's reported mode is kept apart
   * from the disk's, so its ACL and its mode could disagree.
   */
  readonly posixAcls = !OWNER_OVERRIDES;

  private constructor(
    readonly view: UnionView,
    private readonly writer: UpperWriter | null,
  ) {}

  /** Indexes the lower layers, loads the writable layer, clears leftovers in the work dir. */
  static async open(opts: UnionOptions): Promise<UnionFilesystem> {
    const fs = await UnionFilesystem.build(opts);
    fs.onDamage = opts.onDamage;
    return fs;
  }

  private static async build(opts: UnionOptions): Promise<UnionFilesystem> {
    const aufs = opts.aufsWhiteouts === true;
    const index = await LowerIndex.open(opts.lowerDirs, { cacheFile: opts.indexCache, aufsWhiteouts: aufs });
    if (opts.upperDir === undefined) return new UnionFilesystem(new UnionView(index, null), null);
    if (opts.workDir === undefined) throw fsError('EINVAL', opts.upperDir, 'upper dir without work dir');
    // Our temp names live in work/layerfs; the kernel uses work/work, so both can share.
    const work = Buffer.from(opts.workDir + '/layerfs');
    await removeTree(work);
    await fsp.mkdir(work, { recursive: true, mode: 0o700 });
    const upper = await UpperState.load(opts.upperDir, aufs);
    const view = new UnionView(index, upper);
    // Decided once: process.env is a slow read on every copy-up's path (~10 µs).
    return new UnionFilesystem(view, new UpperWriter(view, upper, work, { durable: opts.volatile !== true && durableByDefault() }));
  }

  async getattr(path: string): Promise<FileStat> {
    if (this.damaged.size > 0 && this.damaged.has(path)) throw this.damageError(path);
    return this.view.stat(this.view.resolve(path));
  }

  /** Lower-only paths and misses from the index, at once; an upper object needs its lstat. */
  lookupSync(path: string): LookupAnswer | number | undefined {
    if (this.damaged.size > 0 && this.damaged.has(path)) return undefined;
    const r = this.view.tryResolve(path);
    if (r === 'ENOENT') return -osErrno.ENOENT;
    if (r === 'ENOTDIR') return -osErrno.ENOTDIR;
    if (r.upper !== undefined) return undefined;
    const e = r.lower!;
    if ((e.mode & S_IFMT) === S_IFDIR) return { stat: lowerStat(e), noXattrs: !e.xattrs, lowerDir: r.lowerPath! };
    if ((e.mode & S_IFMT) !== S_IFREG) return { stat: lowerStat(e), noXattrs: !e.xattrs };
    const lowerFile = this.lowerFileOf(r.lowerPath!, e, path);
    return { stat: lowerFile.stat, noXattrs: !e.xattrs, lowerFile };
  }

  /** The index's bytes, for a server's own lookups (LookupAnswer.lowerDir); none while
   * damage was found (the server would not know which paths). */
  loopLookups(): LoopLookups | undefined {
    if (this.damaged.size > 0) return undefined;
    return { index: this.view.index.cacheBytes(), copyUp: this.writer !== null && !OWNER_OVERRIDES };
  }

  loopDir(path: string): LoopDir | undefined {
    if (this.damaged.size > 0) return undefined;
    const r = this.view.tryResolve(path);
    if (typeof r === 'string' || !r.isDir) return undefined;
    if (r.upper === undefined) return r.lowerPath === null ? undefined : { index: r.lowerPath, upper: null };
    // An AUFS whiteout (`.wh.NAME`) hides a name without an entry of that name.
    if (r.upper.kind !== 'dir' || this.view.upper?.aufs) return undefined;
    return { index: r.lowerPath, upper: this.upperReal(path) };
  }

  kindSync(path: string): 'dir' | 'other' | 'missing' | undefined {
    if (this.damaged.size > 0 && this.damaged.has(path)) return undefined;
    const r = this.view.tryResolve(path);
    if (r === 'ENOENT') return 'missing';
    if (r === 'ENOTDIR') return undefined;
    return r.isDir ? 'dir' : 'other';
  }

  upperDirStat(path: string): UpperDirStat | undefined {
    if (this.damaged.size > 0 && this.damaged.has(path)) return undefined;
    const r = this.view.tryResolve(path);
    return typeof r === 'string' ? undefined : this.view.upperDirStat(r);
  }

  async fgetattr(path: string, fh: number): Promise<FileStat> {
    const f = this.handles.get(fh);
    // A lower file is what the index says, whatever its name now shows (a copy-up since).
    if (f.lower !== undefined) return lowerStat(f.lower.entry);
    const st = await fstatFd(f.fd);
    const r: Resolved = { path, lowerPath: null, isDir: (Number(st.mode) & S_IFMT) === S_IFDIR };
    return { ...this.view.upperStat(r, st), ino: f.ino ?? upperIno(st.ino) };
  }

  async readlink(path: string): Promise<string> {
    const r = this.view.resolve(path);
    if (r.upper === undefined) {
      if ((r.lower!.mode & S_IFMT) !== S_IFLNK) throw fsError('EINVAL', path, 'not a symlink');
      return this.view.index.readlink(r.lowerPath!, r.lower!);
    }
    const t = await backing.readlink(this.upperReal(path));
    return t.toString('latin1');
  }

  async readdir(path: string): Promise<DirEntry[]> {
    return this.view.readdir(this.view.resolve(path));
  }

  async open(path: string, flags: number, caller: Caller): Promise<number> {
    const acc = flags & O_ACCMODE;
    const trunc = (flags & C.O_TRUNC) !== 0;
    let r = this.view.resolve(path);
    if (r.isDir && (acc !== C.O_RDONLY || trunc)) throw fsError('EISDIR', path);
    if ((acc !== C.O_RDONLY || trunc) && r.upper === undefined) {
      const w = this.rw(path);
      r = await this.lock.run(() => w.ensureUpper(path, !trunc));
    }
    // O_DIRECT is the kernel's business (its direct I/O to the FUSE server); a backing fd
    // opened with it refuses the unaligned buffers servers read into (EINVAL).
    const openFlags = (flags & ~(C.O_CREAT | C.O_EXCL | C.O_NOCTTY | C.O_DIRECT)) | C.O_NOFOLLOW;
    const fd = r.upper !== undefined ? await backing.open(this.upperReal(path), openFlags) : await this.openLower(r, openFlags);
    return this.addHandle(fd, path, r, acc !== C.O_RDONLY && caller.uid !== 0);
  }

  /**
   * Opens a lower file and checks it is what the index promised — a file of that type and
   * size. Layer caches never change after import, so a difference is damage (a file
   * deleted or truncated by hand): EIO, reported once, never the index's stale answer.
   */
  private async openLower(r: Resolved, flags: number): Promise<number> {
    const e = r.lower!;
    if (this.damaged.has(r.path)) throw this.damageError(r.path);
    let fd: number;
    try {
      // Synchronous on purpose: open + fstat of a local layer file take microseconds, two
      // trips through libuv's thread pool took ~250 µs per open on a busy machine, and
      // `cat` of many small files is nothing but opens (native-notes/engine.md).
      fd = backing.openSync(this.view.index.realPath(e.layer, r.lowerPath!), flags);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // ELOOP is the ordinary answer for a symlink (O_NOFOLLOW); for anything else the
      // index promised, a missing or retyped backing object is damage.
      const retyped = code === 'ELOOP' && (e.mode & S_IFMT) !== S_IFLNK;
      if (code === 'ENOENT' || code === 'ENOTDIR' || retyped) throw this.damage(r, `backing object missing or of another type (${code})`);
      throw err;
    }
    const st = fstatSync(fd);
    const type = st.mode & S_IFMT;
    if (type !== (e.mode & S_IFMT) || (type === S_IFREG && st.size !== e.size)) {
      await closeFd(fd);
      throw this.damage(r, type !== (e.mode & S_IFMT) ? `backing object is of another type (mode ${Number(st.mode).toString(8)}, index ${e.mode.toString(8)})` : `backing file has ${st.size} bytes, the index ${e.size}`);
    }
    return fd;
  }

  private damage(r: Resolved, reason: string): LayerfsError {
    if (!this.damaged.has(r.path)) {
      this.damaged.add(r.path);
      this.onDamage?.({ layer: this.view.index.roots[r.lower!.layer]!.toString('latin1'), path: r.path, reason });
    }
    return this.damageError(r.path);
  }

  private damageError(path: string): LayerfsError {
    return new LayerfsError('DAMAGED', `layer damaged at ${JSON.stringify(path)}`, { errno: 'EIO' });
  }

  async create(path: string, mode: number, flags: number, caller: Caller): Promise<number> {
    const w = this.rw(path);
    const fd = await this.lock.run(async () => {
      this.checkNewName(path);
      const existing = this.view.tryResolve(path);
      if (existing === 'ENOTDIR') throw fsError('ENOTDIR', path);
      if (existing !== 'ENOENT') {
        if (flags & C.O_EXCL) throw fsError('EEXIST', path);
        return undefined;
      }
      const openFlags = (flags & ~(C.O_TRUNC | C.O_DIRECT)) | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW;
      return w.createNew(path, false, (mode & 0o7777) | S_IFREG, caller, (real, m) => backing.open(real, openFlags, m & 0o777));
    });
    if (fd === undefined) return this.open(path, flags & ~(C.O_CREAT | C.O_EXCL), caller);
    return this.addHandle(fd, path, this.view.resolve(path), (flags & O_ACCMODE) !== C.O_RDONLY && caller.uid !== 0);
  }

  /**
   * The server's native side answers lower-only paths from the index's own bytes (the
   * cache file's layout, read in place), and learns every change of the writable layer
   * from UpperState.
   */
  attachMirror(mirror: MetadataMirror): void {
    mirror.loadReadOnlyIndex(this.view.index.cacheBytes());
    this.writer?.upper.attachMirror(mirror);
  }

  onCopiedUp(listener: (path: string) => void): void {
    if (this.writer) this.writer.copiedUp = listener;
  }

  /** Reads go straight to the fd; writes too, unless the first write must clear
   * setuid/setgid (done here, in JS). */
  directIo(fh: number): DirectIo {
    const f = this.handles.get(fh);
    return { fd: f.fd, write: !f.killPrivs, upperIno: f.layer < 0 && f.ino === undefined };
  }

  /** A lower handle is read-only (any write copies up first): its backing file. */
  lowerFile(fh: number): LowerFile | undefined {
    const f = this.handles.get(fh);
    if (f.layer < 0 || f.lower === undefined || (f.lower.entry.mode & S_IFMT) !== S_IFREG) return undefined;
    return this.lowerFileOf(f.lower.path, f.lower.entry, f.path);
  }

  /** `path`: the union path it was reached by. */
  private lowerFileOf(lowerPath: string, e: LowerEntry, path: string): LowerFile {
    const real = this.view.index.realPath(e.layer, lowerPath);
    const file: LowerFile = { path: real, size: e.size, ino: lowerIno(e.layer, e.ino), stat: lowerStat(e) };
    // What the small copy-up in one call copies the same way from the index's facts alone
    // (copy-up.ts inOneCall; a file with other names becomes a new inode; a write to a
    // set-id file must clear the bits first), to the same name on the writable layer.
    if (this.writer !== null && !OWNER_OVERRIDES && !e.xattrs && e.nlink <= 1 && (e.mode & 0o6000) === 0 && lowerPath === path) {
      file.unionAt = real.length - lowerPath.length;
    }
    return file;
  }

  copyUpTarget(): CopyUpTarget | undefined {
    return this.writer?.copyUpTarget();
  }

  adoptCopyUp(path: string, fd: number, fh: number, uid: number): void {
    const r = this.view.resolve(path);
    if (r.upper === undefined) this.writer!.copiedElsewhere(path, r);
    if (fd >= 0) this.handles.adopt(fh, { fd, path, ino: lowerIno(r.lower!.layer, r.lower!.ino), layer: -1, killPrivs: uid !== 0 });
  }

  forgetAdopted(fh: number): void {
    this.handles.forget(fh);
  }

  fgetattrLowerFd(fd: number, ino: number): FileStat {
    const st = fstatSync(fd, { bigint: true });
    return { ...this.view.upperStat({ path: '', lowerPath: null, isDir: (Number(st.mode) & S_IFMT) === S_IFDIR }, st), ino };
  }

  /** Lower layers never change, so their pages may stay cached; upper files may not
   * (another name of a hard link is another kernel inode with its own cache). */
  keepCache(fh: number): boolean {
    return this.handles.get(fh).layer >= 0;
  }

  async read(_path: string, fh: number, buf: Buffer, length: number, position: number): Promise<number> {
    return readFd(this.handles.get(fh).fd, buf, 0, length, position);
  }

  async write(_path: string, fh: number, buf: Buffer, length: number, position: number): Promise<number> {
    const f = this.handles.get(fh);
    if (f.killPrivs) await killPrivs(f.fd).finally(() => (f.killPrivs = false));
    return writeFd(f.fd, buf, 0, length, position);
  }

  async release(_path: string, fh: number): Promise<void> {
    await this.handles.release(fh);
  }

  async fsync(_path: string, datasync: boolean, fh: number): Promise<void> {
    await fsyncFd(this.handles.get(fh).fd, datasync);
  }

  async truncate(path: string, size: number, _caller: Caller): Promise<void> {
    await this.mutate(path, async (w) => {
      const r = this.view.resolve(path);
      if (r.isDir) throw fsError('EISDIR', path);
      const type = (r.upper !== undefined ? await this.typeOfUpper(path) : r.lower!.mode & S_IFMT);
      if (type !== S_IFREG) throw fsError('EINVAL', path, 'truncate of a special file');
      await w.ensureUpper(path, size > 0);
      await backing.truncate(this.upperReal(path), size);
    });
  }

  async ftruncate(_path: string, fh: number, size: number): Promise<void> {
    await ftruncateFd(this.handles.get(fh).fd, size);
  }

  async chmod(path: string, mode: number, _caller: Caller): Promise<void> {
    await this.mutate(path, async (w) => {
      const r = await w.ensureUpper(path);
      if (r.upper!.kind === 'other' && (await this.typeOfUpper(path)) === S_IFLNK) throw fsError('EOPNOTSUPP', path);
      const had = r.upper!.override;
      if (had === undefined) return void (await backing.chmod(this.upperReal(path), mode & 0o7777));
      const type = r.isDir ? S_IFDIR : await this.typeOfUpper(path);
      w.upper.set(path, { ...r.upper!, override: await chmodOverride(this.upperReal(path), type, had, mode) });
    });
  }

  async chown(path: string, uid: number, gid: number, _caller: Caller): Promise<void> {
    await this.mutate(path, async (w) => {
      const r = await w.ensureUpper(path);
      if (!OWNER_OVERRIDES) return void (await backing.lchown(this.upperReal(path), idOrKeep(uid), idOrKeep(gid)));
      // Rootless: chown when allowed, else the owner goes into the override (owner-override.ts).
      const real = this.upperReal(path);
      const st = await backing.lstat(real);
      const type = st.mode & S_IFMT;
      const had = r.upper!.override;
      const cur = had ? { ...overrideOwnerOnHost(had), mode: had.mode } : { uid: st.uid, gid: st.gid, mode: st.mode & 0o7777 };
      const want = { uid: idOrKeep(uid) === -1 ? cur.uid : uid, gid: idOrKeep(gid) === -1 ? cur.gid : gid, mode: modeAfterChown(type, cur.mode) };
      const override = await setOwnership(real, undefined, type, want, had);
      const { override: _old, ...node } = r.upper!;
      w.upper.set(path, override ? { ...node, override } : node);
    });
  }

  async utimens(path: string, atime: TimeUpdate, mtime: TimeUpdate, _caller: Caller): Promise<void> {
    await this.mutate(path, async (w) => {
      await w.ensureUpper(path);
      await backing.utimens(this.upperReal(path), atime, mtime);
    });
  }

  async mknod(path: string, mode: number, rdev: number, caller: Caller): Promise<void> {
    await this.createObject(path, mode, caller, false, (real, m) => backing.mknod(real, m, rdev));
  }

  async mkdir(path: string, mode: number, caller: Caller): Promise<void> {
    await this.createObject(path, (mode & 0o7777) | S_IFDIR, caller, true, (real, m) => backing.mkdir(real, m & 0o777));
  }

  async symlink(target: string, path: string, caller: Caller): Promise<void> {
    const t = Buffer.from(target, 'latin1');
    await this.createObject(path, 0o777 | S_IFLNK, caller, false, (real) => backing.symlink(t, real), true);
  }

  async unlink(path: string, _caller: Caller): Promise<void> {
    await this.mutate(path, async (w) => {
      const r = this.view.resolve(path);
      if (r.isDir) throw fsError('EISDIR', path);
      await w.remove(path, r);
    });
  }

  async rmdir(path: string, _caller: Caller): Promise<void> {
    await this.mutate(path, async (w) => {
      const r = this.view.resolve(path);
      if (!r.isDir) throw fsError('ENOTDIR', path);
      if (path === '/') throw fsError('EBUSY', path);
      if ((await this.view.readdir(r)).length > 0) throw fsError('ENOTEMPTY', path);
      await w.remove(path, r);
    });
  }

  async link(existing: string, newPath: string, _caller: Caller): Promise<void> {
    await this.mutate(newPath, async (w) => {
      // The VFS order: the old name must exist, the new one must not, then type checks.
      const src = this.view.resolve(existing);
      this.checkNewName(newPath);
      const dst = this.view.tryResolve(newPath);
      if (dst === 'ENOTDIR') throw fsError('ENOTDIR', newPath);
      if (dst !== 'ENOENT') throw fsError('EEXIST', newPath);
      if (src.isDir) throw fsError('EPERM', existing, 'hard link to a directory');
      const up = await w.ensureUpper(existing);
      // Both names will share the inode: a setxattr through one changes the other.
      forgetNoXattrs(w, existing);
      await w.ensureUpper(parentOf(newPath));
      const from = this.upperReal(existing);
      const to = this.upperReal(newPath);
      if ((await w.materializeWhiteout(newPath))?.kind === 'whiteout') {
        const tmp = w.tmpPath();
        await backing.link(from, tmp);
        await backing.rename(tmp, to);
      } else {
        await backing.link(from, to);
      }
      const node = { kind: 'other' as const, ...(up.upper!.originIno !== undefined ? { originIno: up.upper!.originIno } : {}) };
      w.upper.set(newPath, node);
    });
  }

  async rename(from: string, to: string, flags: number, _caller: Caller): Promise<void> {
    this.checkNewName(to);
    await this.mutate(from, (w) => renameInUnion(w, from, to, flags));
  }

  async setxattr(path: string, name: string, value: Buffer, flags: number, caller: Caller): Promise<void> {
    const stored = storedXattrName(name);
    if (stored === 'private' || !(await mayAccessXattr(name, caller))) throw fsError('EPERM', path, `xattr ${name}`);
    await this.mutate(path, async (w) => {
      await this.checkUserXattr(this.view.resolve(path), name);
      await w.ensureUpper(path);
      await backing.lsetxattr(this.upperReal(path), stored, value, flags);
      forgetNoXattrs(w, path);
    });
  }

  async getxattr(path: string, name: string, caller?: Caller): Promise<Buffer | null> {
    const stored = storedXattrName(name);
    if (stored === 'private') return null;
    if (!(await mayAccessXattr(name, caller))) return null; // ENODATA, as the kernel answers
    const r = this.view.resolve(path);
    if (r.upper !== undefined) return backing.lgetxattr(this.upperReal(path), stored);
    // The index knows which lower objects have no xattr at all (most): no syscall. (With
    // the native fast path on, the binding answers those without asking JS.)
    if (!r.lower!.xattrs) return null;
    return backing.lgetxattr(this.backingPath(r), stored);
  }

  hasNoXattrs(path: string): boolean {
    const r = this.view.tryResolve(path);
    if (typeof r === 'string') return false;
    return r.upper !== undefined ? r.upper.noXattrs === true : !r.lower!.xattrs;
  }

  async listxattr(path: string, caller?: Caller): Promise<string[]> {
    const r = this.view.resolve(path);
    if (r.upper === undefined && !r.lower!.xattrs) return [];
    const names = await backing.llistxattr(this.backingPath(r));
    const out: string[] = [];
    for (const n of names) {
      const v = visibleXattrName(n);
      if (v !== null) out.push(v);
    }
    return visibleXattrNamesFor(out, caller);
  }

  async removexattr(path: string, name: string, caller: Caller): Promise<void> {
    const stored = storedXattrName(name);
    if (stored === 'private' || !(await mayAccessXattr(name, caller))) throw fsError('EPERM', path, `xattr ${name}`);
    await this.mutate(path, async (w) => {
      const r = this.view.resolve(path);
      await this.checkUserXattr(r, name);
      // Like the kernel: a missing attribute fails before any copy-up.
      if (r.upper === undefined && (await backing.lgetxattr(this.backingPath(r), stored)) === null) {
        throw fsError('ENODATA', path, `xattr ${name}`);
      }
      await w.ensureUpper(path);
      await backing.lremovexattr(this.upperReal(path), stored);
      forgetNoXattrs(w, path);
    });
  }

  async statfs(_path: string): Promise<StatFs> {
    const root = this.writer !== null ? this.writer.upper.root : this.view.index.roots[0];
    if (root === undefined) throw fsError('ENOENT', '/', 'no layers');
    const s = await fsp.statfs(root);
    return {
      bsize: s.bsize, frsize: s.bsize, blocks: s.blocks, bfree: s.bfree, bavail: s.bavail,
      files: s.files, ffree: s.ffree, favail: s.ffree, fsid: 0,
      flag: this.writer === null ? 1 /* ST_RDONLY */ : 0, namemax: 255,
    };
  }

  async destroy(): Promise<void> {
    await this.handles.closeAll();
  }

  /** The writer, or EROFS for a read-only union. */
  private rw(path: string): UpperWriter {
    if (this.writer === null) throw fsError('EROFS', path);
    return this.writer;
  }

  /** Runs a namespace change under the lock (EROFS when read-only). */
  private mutate<T>(path: string, fn: (w: UpperWriter) => Promise<T>): Promise<T> {
    const w = this.rw(path);
    return this.lock.run(() => fn(w));
  }

  private async createObject(path: string, mode: number, caller: Caller, isDir: boolean, make: (real: Buffer, mode: number) => Promise<void>, isSymlink = false): Promise<void> {
    await this.mutate(path, async (w) => {
      this.checkNewName(path);
      const existing = this.view.tryResolve(path);
      if (existing === 'ENOTDIR') throw fsError('ENOTDIR', path);
      if (existing !== 'ENOENT') throw fsError('EEXIST', path);
      if (!this.view.resolve(parentOf(path)).isDir) throw fsError('ENOTDIR', path);
      await w.createNew(path, isDir, mode, caller, make, isSymlink);
    });
  }

  /** A parent that does not exist or is not a directory fails first, as in the kernel. */
  private checkNewName(path: string): void {
    const p = this.view.tryResolve(parentOf(path));
    if (p === 'ENOENT' || p === 'ENOTDIR') throw fsError(p, path);
    if (!p.isDir) throw fsError('ENOTDIR', path);
    // Such a name would read back as a whiteout or opaque marker (overlay/aufs-whiteouts.ts).
    if (this.view.upper?.aufs && isAufsReserved(baseOf(path))) throw fsError('EINVAL', path, 'name reserved by the AUFS whiteout format');
  }

  private addHandle(fd: number, path: string, r: Resolved, mayKillPrivs: boolean): number {
    const layer = r.upper !== undefined ? -1 : r.lower!.layer;
    // An upper object without origin gets its number from its backing inode, read only
    // if fgetattr asks (saves an fstat per open).
    const ino = r.upper === undefined ? lowerIno(r.lower!.layer, r.lower!.ino) : r.upper.originIno;
    const lower = r.upper === undefined ? { path: r.lowerPath!, entry: r.lower! } : undefined;
    return this.handles.add({ fd, path, ino, layer, killPrivs: mayKillPrivs, lower });
  }

  private upperReal(path: string): Buffer {
    return this.writer!.upper.realPath(path);
  }

  private backingPath(r: Resolved): Buffer {
    if (r.upper !== undefined) return this.upperReal(r.path);
    return this.view.index.realPath(r.lower!.layer, r.lowerPath!);
  }

  /** The VFS allows user.* xattrs on regular files and directories only (EPERM). */
  private async checkUserXattr(r: Resolved, name: string): Promise<void> {
    if (!name.startsWith('user.') || r.isDir) return;
    const type = r.upper !== undefined ? await this.typeOfUpper(r.path) : r.lower!.mode & S_IFMT;
    if (type !== S_IFREG) throw fsError('EPERM', r.path, `xattr ${name}`);
  }

  private async typeOfUpper(path: string): Promise<number> {
    return (await backing.lstat(this.upperReal(path))).mode & S_IFMT;
  }
}

/** `path` may have xattrs now: stop claiming it has none. */
function forgetNoXattrs(w: UpperWriter, path: string): void {
  const node = w.upper.get(path);
  if (node?.noXattrs === true) w.upper.set(path, { ...node, noXattrs: false });
}

/** chown(2) leaves an id unchanged when it is -1 (the kernel passes it as 0xffffffff). */
function idOrKeep(id: number): number {
  return id === 0xffffffff ? -1 : id;
}

/** Clears setuid, and setgid when group-executable, as the kernel does on write. */
async function killPrivs(fd: number): Promise<void> {
  const st = await fstatFd(fd);
  const mode = Number(st.mode);
  let kill = mode & S_ISUID;
  if ((mode & S_ISGID) !== 0 && (mode & 0o010) !== 0) kill |= S_ISGID;
  if (kill !== 0) await fchmodFd(fd, mode & 0o7777 & ~kill);
}
