/**
 * UnionView: the read side of the union. Resolves a path top-down (writable layer, then
 * the merged lower index) and builds stats and merged directory listings. It never
 * touches the disk for lower-only paths: the index already knows them.
 *
 * Resolution per component follows the kernel overlayfs lookup: an upper whiteout ends
 * it (ENOENT); an upper non-directory hides everything below; an upper directory merges
 * with the lower directory at its "lower path" unless it is opaque. The lower path is the
 * parent's lower path plus the name, or the directory's redirect (redirect_dir=on).
 */
import { backing } from './backing-path.js';
import type { BigIntStats } from 'node:fs';
import type { DirEntry, FileStat, UpperDirStat } from '../core/filesystem.js';
import { fsError } from './fs-error.js';
import { aufsName, baseOf, checkPath, isAufsReserved, joinPath, lowerIno, parentOf, S_IFDIR, S_IFMT, upperIno } from '../overlay/index.js';
import type { LowerEntry, LowerIndex } from './lower-index.js';
import { overriddenDevice, overriddenMode } from '../core/override-stat.js';
import { overrideOwnerOnHost } from './owner-override.js';
import { sys } from './sys.js';
import type { UpperNode, UpperState } from './upper-state.js';

/** Where a path is served from. */
export interface Resolved {
  path: string;
  /** The writable layer's object (absent: served by the lower index alone). */
  upper?: UpperNode;
  /** The lower object: the one served, or the lower part of a merged directory. */
  lower?: LowerEntry;
  /** Index path of `lower` (for directories, where lower children are looked up). */
  lowerPath: string | null;
  isDir: boolean;
}

const NS = 1_000_000_000n;

export class UnionView {
  constructor(
    readonly index: LowerIndex,
    readonly upper: UpperState | null,
  ) {}

  /** Resolves `path` or rejects ENOENT / ENOTDIR. */
  resolve(path: string): Resolved {
    const r = this.tryResolve(path);
    if (r === 'ENOENT' || r === 'ENOTDIR') throw fsError(r, path);
    return r;
  }

  /** Resolves `path`; a missing last component gives 'ENOENT' instead of throwing. */
  tryResolve(path: string): Resolved | 'ENOENT' | 'ENOTDIR' {
    // Component by component while the writable layer has them; the rest (most of a
    // path, usually) goes to the index whole, never split.
    checkPath(path);
    let up = this.upper?.get('/');
    let lowerPath: string | null = up?.opaque ? null : '/';
    let lower = lowerPath === null ? undefined : this.index.get('/');
    if (up === undefined && lower === undefined) return 'ENOENT';
    for (let start = 1; start < path.length; ) {
      let end = path.indexOf('/', start);
      if (end < 0) end = path.length;
      const name = path.slice(start, end);
      const isDir = up !== undefined ? up.kind === 'dir' : isLowerDir(lower);
      if (!isDir) return 'ENOTDIR';
      const candidate = lowerPath === null ? null : joinPath(lowerPath, name);
      const u = up !== undefined ? this.upper?.get(path.slice(0, end)) : undefined;
      if (u !== undefined) {
        if (u.kind === 'whiteout') return 'ENOENT';
        up = u;
        if (u.kind !== 'dir' || u.opaque) {
          lowerPath = null;
        } else if (u.redirect !== undefined) {
          lowerPath = u.redirect.startsWith('/')
            ? u.redirect
            : lowerPath === null
              ? null
              : joinPath(lowerPath, u.redirect);
        } else {
          lowerPath = candidate;
        }
        lower = lowerPath === null ? undefined : this.index.get(lowerPath);
        if (lower !== undefined && !isLowerDir(lower)) {
          // An upper directory never merges with a lower non-directory.
          lower = undefined;
          lowerPath = null;
        }
      } else {
        // From here down only the lower layers have anything.
        return candidate === null ? 'ENOENT' : this.resolveLower(path, candidate, end);
      }
      start = end + 1;
    }
    const isDir = up !== undefined ? up.kind === 'dir' : isLowerDir(lower);
    const r: Resolved = { path, lowerPath: lower !== undefined ? lowerPath : null, isDir };
    if (up !== undefined) r.upper = up;
    if (lower !== undefined) r.lower = lower;
    return r;
  }

  /**
   * The rest of `path` (from `end`, where the component whose index path is `candidate`
   * ends) in the lower layers alone. The index holds a path only below directories, so the
   * whole path is one probe; a miss whose parent is a directory there is ENOENT, a second
   * probe (a cold `stat` of an image's paths is one of these per component the kernel
   * looks up).
   */
  private resolveLower(path: string, candidate: string, end: number): Resolved | 'ENOENT' | 'ENOTDIR' {
    const last = end === path.length;
    const full = last ? candidate : candidate + path.slice(end);
    const found = this.index.get(full);
    if (found !== undefined) return { path, lowerPath: full, isDir: isLowerDir(found), lower: found };
    if (last || isLowerDir(this.index.get(parentOf(full)))) return 'ENOENT';
    // A missing or non-directory ancestor: which one says ENOENT or ENOTDIR.
    const rest = path.slice(end + 1).split('/');
    let lowerPath = candidate;
    for (let j = 0; j < rest.length; j++) {
      const e = this.index.get(lowerPath);
      if (e === undefined) return 'ENOENT';
      if (!isLowerDir(e)) return 'ENOTDIR';
      lowerPath = joinPath(lowerPath, rest[j]!);
    }
    return 'ENOENT';
  }

  /**
   * True when removing `path` from the writable layer would uncover a lower object: then
   * unlink, rmdir and rename away must leave a whiteout.
   */
  lowerShadowed(path: string): boolean {
    const parent = this.tryResolve(parentOf(path));
    if (typeof parent === 'string' || parent.lowerPath === null) return false;
    return this.index.get(joinPath(parent.lowerPath, baseOf(path))) !== undefined;
  }

  /** The stat of a resolved path. */
  async stat(r: Resolved): Promise<FileStat> {
    if (r.upper !== undefined) {
      const st = await backing.lstatBig(this.upper!.realPath(r.path));
      return this.upperStat(r, st);
    }
    return lowerStat(r.lower!);
  }

  /** The stat of an upper object from its backing stat. */
  upperStat(r: Resolved, st: BigIntStats): FileStat {
    const merged = r.isDir && r.lower !== undefined;
    const ino = this.keptIno(r) ?? upperIno(st.ino);
    const o = r.upper?.override;
    const dev = o && overriddenDevice(o);
    const owner = o && overrideOwnerOnHost(o);
    return {
      ino,
      mode: o ? overriddenMode(o, Number(st.mode)) : Number(st.mode),
      // Like the kernel: a merged directory reports one link (counting is not worth it).
      nlink: merged ? 1 : Number(st.nlink),
      uid: owner ? owner.uid : Number(st.uid),
      gid: owner ? owner.gid : Number(st.gid),
      rdev: dev ? sys.makedev(dev.major, dev.minor) : Number(st.rdev),
      size: Number(st.size),
      blksize: Number(st.blksize),
      blocks: Number(st.blocks),
      atime: { sec: Number(st.atimeNs / NS), nsec: Number(st.atimeNs % NS) },
      mtime: { sec: Number(st.mtimeNs / NS), nsec: Number(st.mtimeNs % NS) },
      ctime: { sec: Number(st.ctimeNs / NS), nsec: Number(st.ctimeNs % NS) },
    };
  }

  /** What upperStat changes of a writable-layer directory's lstat, when that is all it
   * changes (no owner override). */
  upperDirStat(r: Resolved): UpperDirStat | undefined {
    if (!r.isDir || r.upper === undefined || r.upper.override !== undefined) return undefined;
    return { path: this.upper!.realPath(r.path), ino: this.keptIno(r), nlinkOne: r.lower !== undefined };
  }

  /** The st_ino an upper object keeps from below (its origin's; a merged directory's lower
   * one), or undefined: its own. */
  private keptIno(r: Resolved): number | undefined {
    const ino = r.upper?.originIno;
    if (ino !== undefined || !r.isDir || r.lower === undefined) return ino;
    return lowerIno(r.lower.layer, r.lower.ino);
  }

  /** The merged listing of a resolved directory: each name once, whiteouts hidden. */
  async readdir(r: Resolved): Promise<DirEntry[]> {
    if (!r.isDir) throw fsError('ENOTDIR', r.path);
    const out: DirEntry[] = [];
    const seen = new Set<string>();
    if (r.upper !== undefined) {
      const names = await backing.readdir(this.upper!.realPath(r.path));
      const stats: Promise<void>[] = [];
      for (const b of names) {
        const name = b.toString('latin1');
        if (this.upper!.aufs && isAufsReserved(name)) {
          // An AUFS marker: never listed; `.wh.NAME` hides NAME of the lower layers.
          const a = aufsName(name);
          if (a.kind === 'whiteout') seen.add(a.target);
          continue;
        }
        seen.add(name);
        const childPath = joinPath(r.path, name);
        if (this.upper!.get(childPath)?.kind === 'whiteout') continue;
        const entry: DirEntry = { name };
        out.push(entry);
        // Upper entries come with their stat too (one lstat here instead of a LOOKUP
        // round trip per entry); an entry that vanished meanwhile is listed bare.
        const child = this.tryResolve(childPath);
        if (typeof child !== 'string') {
          if (child.upper !== undefined ? child.upper.noXattrs === true : !child.lower!.xattrs) entry.noXattrs = true;
          stats.push(this.stat(child).then((st) => void (entry.stat = st), () => undefined));
        }
      }
      await Promise.all(stats);
    }
    const row = r.lowerPath === null ? -1 : this.index.rowOf(r.lowerPath);
    const names = row < 0 ? undefined : this.index.entryAt(row).children;
    if (names !== undefined) {
      const first = this.index.firstChildId(row);
      for (let k = 0; k < names.length; k++) {
        if (!seen.has(names[k]!)) out.push(new LowerChild(names[k]!, this.index, first + k));
      }
    }
    return out;
  }
}

/**
 * A lower-only child in a listing. It comes with its stat (no getattr round trip per
 * entry), made when asked: a listing is held from the first READDIR to RELEASEDIR, and
 * stats made up front (~400 bytes an entry) outlived V8's young generation — a `find`
 * over 100k entries left ~50 MiB of old-space garbage (native-notes/engine.md, "LOOKUP").
 */
class LowerChild implements DirEntry {
  constructor(
    readonly name: string,
    private readonly index: LowerIndex,
    private readonly row: number,
  ) {}

  get stat(): FileStat {
    return lowerStat(this.index.entryAt(this.row));
  }

  get noXattrs(): true | undefined {
    return this.index.entryAt(this.row).xattrs ? undefined : true;
  }
}

/** True when a lower entry is a directory. */
export function isLowerDir(e: LowerEntry | undefined): boolean {
  return e !== undefined && (e.mode & S_IFMT) === S_IFDIR;
}

/** The stat of a lower-only object, from the index. */
export function lowerStat(e: LowerEntry): FileStat {
  const merged = e.dirLayers !== undefined && e.dirLayers.length > 1;
  return {
    ino: lowerIno(e.layer, e.ino),
    mode: e.mode,
    nlink: merged ? 1 : e.nlink,
    uid: e.uid,
    gid: e.gid,
    rdev: e.rdev,
    size: e.size,
    blksize: e.blksize,
    blocks: e.blocks,
    atime: { sec: e.atimeSec, nsec: e.atimeNsec },
    mtime: { sec: e.mtimeSec, nsec: e.mtimeNsec },
    ctime: { sec: e.ctimeSec, nsec: e.ctimeNsec },
    // A copy-up breaks a lower hard link (each name gets its own copy).
    ...(e.nlink > 1 && (e.mode & S_IFMT) !== S_IFDIR ? { perName: true } : {}),
  };
}
