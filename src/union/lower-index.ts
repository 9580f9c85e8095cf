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
 * Entries are plain data (numbers, strings, string arrays) so the index can later be
 * cached on disk as JSON or a binary table without changing its users.
 */
import * as fsp from 'node:fs/promises';
import { lstat, type BigIntStats, type Dirent } from 'node:fs';
import { inRoot, joinPath } from './paths.js';
import { drainQueue } from './work-queue.js';
import { isOpaqueDir, isWhiteoutStat, S_IFDIR, S_IFMT } from './overlay-format.js';

/** One merged lower path. Times are seconds + nanoseconds. */
export interface LowerEntry {
  mode: number;
  uid: number;
  gid: number;
  size: number;
  nlink: number;
  rdev: number;
  blksize: number;
  blocks: number;
  atimeSec: number;
  atimeNsec: number;
  mtimeSec: number;
  mtimeNsec: number;
  ctimeSec: number;
  ctimeNsec: number;
  /** Index of the layer that serves this path (0 = top lower layer). */
  layer: number;
  /** Inode number in that layer's backing filesystem. */
  ino: number;
  /** Directories: the layers merged into this directory, top first. */
  dirLayers?: number[];
  /** Directories: merged child names, each once, whiteouts applied. */
  children?: string[];
  /** Symlinks: target, read lazily on first readlink. */
  target?: string;
}

/** Version of the serialized form; bump when LowerEntry changes. */
export const INDEX_VERSION = 1;

/** What `LowerIndex.serialize()` produces. */
export interface SerializedLowerIndex {
  version: number;
  /** Layer roots (latin1 byte strings), top first. */
  roots: string[];
  entries: [string, LowerEntry][];
}

interface NameRecord {
  layer: number;
  dirent: Dirent<Buffer> | null;
  dirLayers: number[];
  closed: boolean;
  whiteout: boolean;
}

/** How many directories the build reads at once (the libuv pool bounds real parallelism). */
const BUILD_CONCURRENCY = 16;

export class LowerIndex {
  private constructor(
    /** Layer roots, top first, as node:fs paths. */
    readonly roots: Buffer[],
    private readonly entries: Map<string, LowerEntry>,
  ) {}

  /** Walks `layerDirs` (top first) into an index. No layers gives an empty index. */
  static async build(layerDirs: string[]): Promise<LowerIndex> {
    const roots = layerDirs.map((d) => Buffer.from(d));
    const entries = new Map<string, LowerEntry>();
    const index = new LowerIndex(roots, entries);
    if (roots.length === 0) return index;
    const rootLayers: number[] = [];
    for (let l = 0; l < roots.length; l++) {
      rootLayers.push(l);
      // The root of a layer can be opaque like any directory: deeper layers stop there.
      if (l < roots.length - 1 && (await isOpaqueDir(roots[l]!))) break;
    }
    const rootStat = await fsp.lstat(roots[0]!, { bigint: true });
    entries.set('/', entryFromStat(rootStat, 0, rootLayers));
    await drainQueue(['/'], BUILD_CONCURRENCY, (dir, push) => index.indexDir(dir, push));
    return index;
  }

  /**
   * The index as plain data (for an on-disk cache; `LowerIndex.deserialize` reads it
   * back). `version` changes whenever the entry shape does.
   */
  serialize(): SerializedLowerIndex {
    return { version: INDEX_VERSION, roots: this.roots.map((r) => r.toString('latin1')), entries: [...this.entries] };
  }

  /** Rebuilds an index from `serialize()` output; undefined when the version differs. */
  static deserialize(data: SerializedLowerIndex): LowerIndex | undefined {
    if (data.version !== INDEX_VERSION) return undefined;
    return new LowerIndex(data.roots.map((r) => Buffer.from(r, 'latin1')), new Map(data.entries));
  }

  /** The merged entry at `path`, or undefined. */
  get(path: string): LowerEntry | undefined {
    return this.entries.get(path);
  }

  /** Number of merged paths. */
  get size(): number {
    return this.entries.size;
  }

  /** The backing path of `path` in layer `layer`. */
  realPath(layer: number, path: string): Buffer {
    return inRoot(this.roots[layer]!, path);
  }

  /** The symlink target of a lower symlink, read once and then kept. */
  async readlink(path: string, entry: LowerEntry): Promise<string> {
    if (entry.target === undefined) {
      const t = await fsp.readlink(this.realPath(entry.layer, path), { encoding: 'buffer' });
      entry.target = t.toString('latin1');
    }
    return entry.target;
  }

  /** Merges the children of directory `dir` (already indexed) and queues subdirectories. */
  private async indexDir(dir: string, push: (dir: string) => void): Promise<void> {
    const self = this.entries.get(dir)!;
    const layers = self.dirLayers ?? [];
    const names = new Map<string, NameRecord>();
    for (const l of layers) {
      const dirents = await fsp.readdir(this.realPath(l, dir), { withFileTypes: true, encoding: 'buffer' });
      for (const d of dirents) {
        const name = d.name.toString('latin1');
        const rec = names.get(name);
        if (rec === undefined) {
          if (d.isCharacterDevice() && isWhiteoutStat(await fsp.lstat(this.realPath(l, joinPath(dir, name))))) {
            names.set(name, { layer: l, dirent: null, dirLayers: [], closed: true, whiteout: true });
            continue;
          }
          const isDir = d.isDirectory();
          names.set(name, { layer: l, dirent: d, dirLayers: isDir ? [l] : [], closed: !isDir, whiteout: false });
          continue;
        }
        if (rec.closed) continue;
        // rec is an open directory: a deeper directory merges unless the one above is opaque.
        if (!d.isDirectory()) {
          rec.closed = true;
          continue;
        }
        const above = rec.dirLayers[rec.dirLayers.length - 1]!;
        if (await isOpaqueDir(this.realPath(above, joinPath(dir, name)))) {
          rec.closed = true;
          continue;
        }
        rec.dirLayers.push(l);
      }
    }
    const children: string[] = [];
    const work: Promise<void>[] = [];
    for (const [name, rec] of names) {
      if (rec.whiteout) continue;
      children.push(name);
      const path = joinPath(dir, name);
      work.push(
        lstatBig(this.realPath(rec.layer, path)).then((st) => {
          const isDir = (Number(st.mode) & S_IFMT) === S_IFDIR;
          this.entries.set(path, entryFromStat(st, rec.layer, isDir ? rec.dirLayers : undefined));
          if (isDir) push(path);
        }),
      );
    }
    await Promise.all(work);
    self.children = children;
  }
}

const NS = 1_000_000_000n;

/** lstat with nanosecond times; the callback API costs less per call than fs/promises. */
function lstatBig(path: Buffer): Promise<BigIntStats> {
  return new Promise((resolve, reject) => {
    lstat(path, { bigint: true }, (err, st) => (err ? reject(err) : resolve(st)));
  });
}

function entryFromStat(st: BigIntStats, layer: number, dirLayers?: number[]): LowerEntry {
  const e: LowerEntry = {
    mode: Number(st.mode),
    uid: Number(st.uid),
    gid: Number(st.gid),
    size: Number(st.size),
    nlink: Number(st.nlink),
    rdev: Number(st.rdev),
    blksize: Number(st.blksize),
    blocks: Number(st.blocks),
    atimeSec: Number(st.atimeNs / NS),
    atimeNsec: Number(st.atimeNs % NS),
    mtimeSec: Number(st.mtimeNs / NS),
    mtimeNsec: Number(st.mtimeNs % NS),
    ctimeSec: Number(st.ctimeNs / NS),
    ctimeNsec: Number(st.ctimeNs % NS),
    layer,
    ino: Number(st.ino),
  };
  if (dirLayers !== undefined) e.dirLayers = dirLayers;
  return e;
}
