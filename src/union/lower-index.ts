/**
 * LowerIndex: the merged view of the read-only lower layers, built once by walking them
 * (lstat only, never following a symlink) and then answering lookup, getattr and readdir
 * of lower paths with no syscall. Lower layers never change, so the index never goes stale.
 *
 * Merging follows the kernel overlayfs rules, top layer (index 0) first: the first layer
 * holding a name serves it; a whiteout (char device 0/0) hides the name in deeper layers;
 * a non-directory hides deeper layers; a directory merges with same-name directories
 * below until one of them is opaque (trusted.overlay.opaque=y) or a deeper layer holds a
 * whiteout or non-directory under that name.
 *
 * The entries live in a flat column table (lower-index-table.ts), not as objects: `get`
 * hands out a fresh LowerEntry snapshot per call. `open` loads the table from an on-disk
 * cache (lower-index-cache.ts) when one is given and current, else builds and writes it.
 */
import * as fsp from 'node:fs/promises';
import { lstat, readlink, type BigIntStats } from 'node:fs';
import { hasErrnoCode, nullOnSystemError } from '../core/errors.js';
import { OVERRIDE_STAT_XATTR, overriddenDevice, overriddenMode, parseOverrideStat, type OverrideStat } from '../core/override-stat.js';
import { checkIndexCache, indexCacheBytes, readIndexCache, writeIndexCache } from './lower-index-cache.js';
import {
  childNames,
  dirLayersOf,
  findRow,
  FLAG_XATTRS,
  pathOf,
  TableBuilder,
  targetOf,
  type IndexTable,
} from './lower-index-table.js';
import { aufsName, hasAufsOpaqueMarker, inRoot, isOpaqueDir, isWhiteoutStat, joinPath, S_IFDIR, S_IFLNK, S_IFMT } from '../overlay/index.js';
import { overrideOwnerOnHost } from './owner-override.js';
import { atPath, backing } from './backing-path.js';
import { sys } from './sys.js';
import { drainQueue } from './work-queue.js';

export { INDEX_VERSION } from './lower-index-table.js';

/** One merged lower path, as a snapshot. Times are seconds + nanoseconds. */
export interface LowerEntry {
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly size: number;
  readonly nlink: number;
  readonly rdev: number;
  readonly blksize: number;
  readonly blocks: number;
  readonly atimeSec: number;
  readonly atimeNsec: number;
  readonly mtimeSec: number;
  readonly mtimeNsec: number;
  readonly ctimeSec: number;
  readonly ctimeNsec: number;
  /** Index of the layer that serves this path (0 = top lower layer). */
  readonly layer: number;
  /** Inode number in that layer's backing filesystem. */
  readonly ino: number;
  /**
   * Whether the backing object has any extended attribute at all (llistxattr non-empty,
   * overlay markers included). False answers every xattr probe with "none"; it is also
   * true when the list could not be read, so a reader asks the layer itself.
   */
  readonly xattrs: boolean;
  /** Directories: the layers merged into this directory, top first. */
  readonly dirLayers?: number[];
  /** Directories: merged child names, each once, whiteouts applied, in readdir order. */
  readonly children?: string[];
  /** Symlinks: the target, read at build (undefined only if that read failed). */
  readonly target?: string;
}

/** Where `LowerIndex.open` got its index from. */
export interface IndexOrigin {
  /** True when it was read from the cache file. */
  loaded: boolean;
  /** Why the cache was not used (missing, stale, corrupt…); absent when loaded or no cache was asked for. */
  reason?: string;
  /** Why writing the rebuilt cache failed (the index is served all the same). */
  writeError?: string;
}

export interface OpenOptions {
  /**
   * The cache file. Only give one when the lower directories are immutable for this
   * name (store layers: keyed by the top layer's chain ID); the check on load is cheap
   * (version, checksum, layer roots' paths, inode numbers and ctimes), not a re-walk.
   */
  cacheFile?: string | undefined;
  /**
   * Also read the AUFS whiteout format (`.wh.NAME`, `.wh..wh..opq`: overlay/aufs-whiteouts.ts), as
   * containers-storage writes layers for a mount program. A cache file records it: one
   * written the other way is stale to this reader (and rebuilt, replacing it).
   */
  aufsWhiteouts?: boolean | undefined;
}

interface NameRecord {
  layer: number;
  dirLayers: number[];
  closed: boolean;
  whiteout: boolean;
}

/** A directory whose row is filled and whose children are to be merged. */
interface DirJob {
  kind: 'dir';
  row: number;
  path: string;
  layers: number[];
}

/** A reserved row to fill from the layer serving it (`layers`: merged dir layers, if any). */
interface EntryJob {
  kind: 'entry';
  row: number;
  path: string;
  layer: number;
  layers: number[];
}

type BuildJob = DirJob | EntryJob;

/**
 * How many directory reads and entry stats the build keeps in flight. The libuv pool
 * (4 threads) bounds real parallelism anyway; more in flight only keeps more short-lived
 * objects alive across scavenges, which V8 then promotes. On the 102k-entry bench tree
 * (2 cores): 16 → peak RSS ~110 MiB; 256 → ~134 MiB; 1024 → ~144 MiB and more CPU.
 */
const BUILD_CONCURRENCY = 16;

export class LowerIndex {
  /** Targets read after the build (only when the build's readlink failed). */
  private lateTargets: Map<string, string> | undefined;

  private constructor(
    /** Layer roots, top first, as node:fs paths. */
    readonly roots: Buffer[],
    private readonly table: IndexTable,
    readonly origin: IndexOrigin,
    /** Whether AUFS whiteout files were read as whiteouts (OpenOptions.aufsWhiteouts). */
    private readonly aufs = false,
  ) {}

  /**
   * The index of `layerDirs` (top first): loaded from `cacheFile` when it is current,
   * else built by walking the layers and written there (temp file + rename). A missing,
   * old, corrupt or foreign cache is rebuilt; a cache that cannot be written is reported
   * in `origin.writeError` and does not fail the open.
   */
  static async open(layerDirs: string[], opts: OpenOptions = {}): Promise<LowerIndex> {
    const roots = layerDirs.map((d) => Buffer.from(d));
    const aufs = opts.aufsWhiteouts === true;
    if (opts.cacheFile === undefined) return LowerIndex.build(layerDirs, aufs);
    const cached = await readIndexCache(opts.cacheFile, roots, aufs);
    if (typeof cached !== 'string') return new LowerIndex(roots, cached, { loaded: true }, aufs);
    const built = await LowerIndex.build(layerDirs, aufs);
    const origin: IndexOrigin = { loaded: false, reason: cached };
    try {
      await writeIndexCache(opts.cacheFile, roots, built.table, aufs);
    } catch (err) {
      origin.writeError = (err as Error).message;
    }
    return new LowerIndex(roots, built.table, origin, aufs);
  }

  /**
   * Makes sure `cacheFile` holds a current index of `layerDirs` without loading it when
   * it does (only its header is checked): for a supervisor preparing a mount, so the
   * mount process itself only loads. Returns whether it had to build. `aufsWhiteouts`
   * must be what the mounts will read with: a cache of the other convention is stale to
   * them, so each side would rebuild and replace the other's.
   */
  static async ensureCache(layerDirs: string[], cacheFile: string, opts: Pick<OpenOptions, 'aufsWhiteouts'> = {}): Promise<{ built: boolean; reason?: string }> {
    const roots = layerDirs.map((d) => Buffer.from(d));
    const aufs = opts.aufsWhiteouts === true;
    const reason = await checkIndexCache(cacheFile, roots, aufs);
    if (reason === undefined) return { built: false };
    const built = await LowerIndex.build(layerDirs, aufs);
    await writeIndexCache(cacheFile, roots, built.table, aufs);
    return { built: true, reason };
  }

  /**
   * Walks `layerDirs` (top first) into an index. No layers gives an empty index. `aufs`:
   * whiteout files count too (OpenOptions.aufsWhiteouts).
   */
  static async build(layerDirs: string[], aufs = false): Promise<LowerIndex> {
    const roots = layerDirs.map((d) => Buffer.from(d));
    const b = new TableBuilder();
    if (roots.length === 0) return new LowerIndex(roots, b.finish(), { loaded: false }, aufs);
    const rootLayers: number[] = [];
    for (let l = 0; l < roots.length; l++) {
      rootLayers.push(l);
      // The root of a layer can be opaque like any directory: deeper layers stop there.
      if (l < roots.length - 1 && (await isOpaqueAt(roots[l]!, '/', aufs))) break;
    }
    const [rootStat, rootXattrs] = await Promise.all([lstatBig(roots[0]!), hasXattrs(roots[0]!)]);
    b.reserve(1);
    b.setPath(0, '/');
    fillRow(b.t, 0, rootStat, 0, rootXattrs);
    b.setDirLayers(0, rootLayers);
    await drainQueue<BuildJob>([{ kind: 'dir', row: 0, path: '/', layers: rootLayers }], BUILD_CONCURRENCY, (job, push) =>
      job.kind === 'dir' ? indexDir(b, roots, job, push, aufs) : indexEntry(b, roots, job, push),
    );
    return new LowerIndex(roots, b.finish(), { loaded: false }, aufs);
  }

  /** The merged entry at `path` (a fresh snapshot), or undefined. */
  get(path: string): LowerEntry | undefined {
    const row = findRow(this.table, path);
    return row < 0 ? undefined : new IndexEntry(this.table, row);
  }

  /** The row of `path` (-1: none): with entryAt, an entry made only when needed. Rows are
   * fixed for the index's life; a directory's children are the rows from
   * firstChildId(row) on, in `children` order. */
  rowOf(path: string): number {
    return findRow(this.table, path);
  }

  /** The entry of row `row` (from rowOf or firstChildId), a fresh snapshot. */
  entryAt(row: number): LowerEntry {
    return new IndexEntry(this.table, row);
  }

  /** True when `path` is a merged lower path (no entry is made). */
  has(path: string): boolean {
    return findRow(this.table, path) >= 0;
  }

  /** Number of merged paths. */
  get size(): number {
    return this.table.count;
  }

  /**
   * Calls `fn` for every merged path (latin1 byte strings), each parent before its
   * children. Entries are made one at a time, so a pass over the whole index keeps only
   * what `fn` keeps. `id` is the visit position ('/' is 0); a directory's children are
   * visited as one consecutive run in `children` order, from `firstChildId(id)` on, so a
   * packed copy can refer to children by position without a path → position map.
   */
  forEach(fn: (path: string, entry: LowerEntry, id: number) => void): void {
    const t = this.table;
    for (let row = 0; row < t.count; row++) fn(pathOf(t, row), new IndexEntry(t, row), row);
  }

  /** The `forEach` id of the first child of the directory visited as `id` (see forEach). */
  firstChildId(id: number): number {
    return this.table.aux0[id]!;
  }

  /**
   * The index as the bytes of its cache file (src/engine/formats/index-cache.ts): the
   * loaded file itself (no copy), or, for an index built without a cache file, the same
   * layout encoded once. Native code reads them in place.
   */
  cacheBytes(): Buffer {
    return indexCacheBytes(this.roots, this.table, this.aufs);
  }

  /** The backing path of `path` in layer `layer`. */
  realPath(layer: number, path: string): Buffer {
    return inRoot(this.roots[layer]!, path);
  }

  /** The symlink target of a lower symlink (read at build; read now if that failed). */
  async readlink(path: string, entry: LowerEntry): Promise<string> {
    if (entry.target !== undefined) return entry.target;
    const known = this.lateTargets?.get(path);
    if (known !== undefined) return known;
    const t = (await backing.readlink(this.realPath(entry.layer, path))).toString('latin1');
    (this.lateTargets ??= new Map()).set(path, t);
    return t;
  }
}

/** A row of the table as a LowerEntry; children and dirLayers are made on first use. */
class IndexEntry implements LowerEntry {
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly size: number;
  readonly nlink: number;
  readonly rdev: number;
  readonly blksize: number;
  readonly blocks: number;
  readonly atimeSec: number;
  readonly atimeNsec: number;
  readonly mtimeSec: number;
  readonly mtimeNsec: number;
  readonly ctimeSec: number;
  readonly ctimeNsec: number;
  readonly layer: number;
  readonly ino: number;
  readonly xattrs: boolean;
  readonly target: string | undefined;
  readonly #table: IndexTable;
  readonly #row: number;
  #children: string[] | undefined;

  constructor(t: IndexTable, row: number) {
    this.#table = t;
    this.#row = row;
    this.mode = t.mode[row]!;
    this.uid = t.uid[row]!;
    this.gid = t.gid[row]!;
    this.size = t.size[row]!;
    this.nlink = t.nlink[row]!;
    this.rdev = t.rdev[row]!;
    this.blksize = t.blksize[row]!;
    this.blocks = t.blocks[row]!;
    this.atimeSec = t.atimeSec[row]!;
    this.atimeNsec = t.atimeNsec[row]!;
    this.mtimeSec = t.mtimeSec[row]!;
    this.mtimeNsec = t.mtimeNsec[row]!;
    this.ctimeSec = t.ctimeSec[row]!;
    this.ctimeNsec = t.ctimeNsec[row]!;
    this.layer = t.layer[row]!;
    this.ino = t.ino[row]!;
    this.xattrs = (t.flags[row]! & FLAG_XATTRS) !== 0;
    this.target = (this.mode & S_IFMT) === S_IFLNK ? targetOf(t, row) : undefined;
  }

  get dirLayers(): number[] | undefined {
    return dirLayersOf(this.#table, this.#row);
  }

  get children(): string[] | undefined {
    if ((this.mode & S_IFMT) !== S_IFDIR) return undefined;
    return (this.#children ??= childNames(this.#table, this.#row));
  }
}

/**
 * Merges the children of directory `dir` (its row already filled): reserves their rows
 * and queues each for `indexEntry`.
 */
async function indexDir(b: TableBuilder, roots: Buffer[], dir: DirJob, push: (j: BuildJob) => void, aufs: boolean): Promise<void> {
  const names = new Map<string, NameRecord>();
  for (const l of dir.layers) {
    const dirents = await atPath(inRoot(roots[l]!, dir.path), (p) => fsp.readdir(p, { withFileTypes: true, encoding: 'latin1' }));
    // AUFS whiteout files of this layer, applied after its real entries (a real NAME in
    // the same layer wins over `.wh.NAME`); the marker names themselves are never shown.
    const aufsHidden: string[] = [];
    for (const d of dirents) {
      const name = d.name;
      if (aufs) {
        const a = aufsName(name);
        if (a.kind === 'whiteout') aufsHidden.push(a.target);
        if (a.kind !== 'plain') continue;
      }
      const rec = names.get(name);
      if (rec === undefined) {
        if (d.isCharacterDevice() && isWhiteoutStat(await backing.lstat(inRoot(roots[l]!, joinPath(dir.path, name))))) {
          names.set(name, { layer: l, dirLayers: [], closed: true, whiteout: true });
          continue;
        }
        const isDir = d.isDirectory();
        names.set(name, { layer: l, dirLayers: isDir ? [l] : [], closed: !isDir, whiteout: false });
        continue;
      }
      if (rec.closed) continue;
      // rec is an open directory: a deeper directory merges unless the one above is opaque.
      if (!d.isDirectory()) {
        rec.closed = true;
        continue;
      }
      const above = rec.dirLayers[rec.dirLayers.length - 1]!;
      if (await isOpaqueAt(roots[above]!, joinPath(dir.path, name), aufs)) {
        rec.closed = true;
        continue;
      }
      rec.dirLayers.push(l);
    }
    for (const name of aufsHidden) {
      const rec = names.get(name);
      // Hides the name below this layer: nothing deeper merges into a directory above.
      if (rec === undefined) names.set(name, { layer: l, dirLayers: [], closed: true, whiteout: true });
      else rec.closed = true;
    }
  }
  let visible = 0;
  for (const rec of names.values()) if (!rec.whiteout) visible++;
  // The children get one contiguous run of rows, in readdir order.
  let row = b.reserve(visible);
  b.setChildren(dir.row, row, visible);
  for (const [name, rec] of names) {
    if (rec.whiteout) continue;
    const path = joinPath(dir.path, name);
    b.setPath(row, path);
    push({ kind: 'entry', row: row++, path, layer: rec.layer, layers: rec.dirLayers });
  }
}

/** Fills one row: stat, xattr presence, symlink target; queues it when it is a directory. */
function indexEntry(b: TableBuilder, roots: Buffer[], job: EntryJob, push: (j: BuildJob) => void): Promise<void> {
  return atPath(inRoot(roots[job.layer]!, job.path), (real) => indexEntryAt(b, real, job, push));
}

async function indexEntryAt(b: TableBuilder, real: Buffer, job: EntryJob, push: (j: BuildJob) => void): Promise<void> {
  const [st, xattrs] = await Promise.all([lstatBig(real), hasXattrs(real)]);
  const override = xattrs ? await readOverride(real, job.path) : undefined;
  // b.t's arrays are looked up only now: reserving rows meanwhile may have replaced them.
  fillRow(b.t, job.row, st, job.layer, xattrs);
  if (override) applyOverride(b.t, job.row, override);
  const type = Number(st.mode) & S_IFMT;
  if (type === S_IFDIR) {
    // A filesystem without d_type gives no directory hint in readdir: serve it unmerged.
    const layers = job.layers.length > 0 ? job.layers : [job.layer];
    b.setDirLayers(job.row, layers);
    push({ kind: 'dir', row: job.row, path: job.path, layers });
  } else if (type === S_IFLNK) {
    const target = await readlinkLatin1(real).catch(() => undefined);
    if (target !== undefined) b.setTarget(job.row, target);
  }
}

const NS = 1_000_000_000n;

/** Whether directory `path` of the layer at `root` is opaque (xattr; or marker file when `aufs`). */
async function isOpaqueAt(root: Buffer, path: string, aufs: boolean): Promise<boolean> {
  if (await atPath(inRoot(root, path), isOpaqueDir)) return true;
  return aufs && hasAufsOpaqueMarker(root, path);
}

/** The owner override of a rootless store's file (core/override-stat.ts), if it has one. */
async function readOverride(real: Buffer, path: string): Promise<OverrideStat | undefined> {
  const v = await sys.lgetxattr(real, OVERRIDE_STAT_XATTR).catch(nullOnSystemError);
  return v === null ? undefined : parseOverrideStat(v, `lower layer file ${JSON.stringify(path)}`);
}

/** Reports the image's owner, mode and type (a device kept as a file) instead of the disk's. */
function applyOverride(t: IndexTable, row: number, o: OverrideStat): void {
  t.mode[row] = overriddenMode(o, t.mode[row]!);
  const owner = overrideOwnerOnHost(o);
  t.uid[row] = owner.uid;
  t.gid[row] = owner.gid;
  const dev = overriddenDevice(o);
  if (dev) t.rdev[row] = sys.makedev(dev.major, dev.minor);
}

function fillRow(t: IndexTable, row: number, st: BigIntStats, layer: number, xattrs: boolean): void {
  t.mode[row] = Number(st.mode);
  t.uid[row] = Number(st.uid);
  t.gid[row] = Number(st.gid);
  t.size[row] = Number(st.size);
  t.nlink[row] = Number(st.nlink);
  t.rdev[row] = Number(st.rdev);
  t.blksize[row] = Number(st.blksize);
  t.blocks[row] = Number(st.blocks);
  setTime(t.atimeSec, t.atimeNsec, row, st.atimeNs);
  setTime(t.mtimeSec, t.mtimeNsec, row, st.mtimeNs);
  setTime(t.ctimeSec, t.ctimeNsec, row, st.ctimeNs);
  t.layer[row] = layer;
  t.ino[row] = Number(st.ino);
  t.flags[row] = xattrs ? FLAG_XATTRS : 0;
}

/** Splits ns since the epoch into seconds and 0 ≤ nsec < 1e9 (times before 1970 too). */
function setTime(sec: Float64Array, nsec: Uint32Array, row: number, ns: bigint): void {
  let s = ns / NS;
  let n = ns % NS;
  if (n < 0n) {
    n += NS;
    s -= 1n;
  }
  sec[row] = Number(s);
  nsec[row] = Number(n);
}

/** lstat with nanosecond times; the callback API costs less per call than fs/promises. */
function lstatBig(path: Buffer): Promise<BigIntStats> {
  return new Promise((resolve, reject) => {
    lstat(path, { bigint: true }, (err, st) => (err ? reject(err) : resolve(st)));
  });
}

function readlinkLatin1(path: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    readlink(path, { encoding: 'latin1' }, (err, t) => (err ? reject(err) : resolve(t)));
  });
}

/** Whether `path` has any xattr; a filesystem without xattrs has none, other failures say "maybe". */
function hasXattrs(path: Buffer): Promise<boolean> {
  return sys.llistxattr(path).then(
    (names) => names.length > 0,
    // Unknown (but not unsupported): say "has some", so they are asked for.
    (err: unknown) => nullOnSystemError(err) ?? !hasErrnoCode(err, 'EOPNOTSUPP'),
  );
}
