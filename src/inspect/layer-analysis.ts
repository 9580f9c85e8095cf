/**
 * `layerfs layers`: what each layer of an image does to the tree below it (the analysis
 * dive made popular), from the extracted layer folders themselves.
 *
 * The layers are applied bottom up onto an in-memory tree, with overlay semantics: a
 * whiteout removes a name (and its subtree), an opaque directory removes what was below
 * it, a non-directory replaces whatever was there. Each layer's paths are classified
 * against the tree BELOW it: added (new path), modified (the path existed), removed
 * (whiteouts, opaque directories, a directory replaced by a file). Counts are of
 * non-directories; new directories are counted apart.
 *
 * Waste: every copy of a file that a later layer overwrites or deletes still ships in
 * its layer. Efficiency follows dive's score: for each path, the smallest size it was
 * ever seen with, summed, over the sum of every size it was seen with (a deletion
 * counting the bytes it removes) — 1.0 means no layer undoes another's work.
 */
import * as fsp from 'node:fs/promises';
import { isOpaqueDir, isWhiteoutStat, joinPath } from '../overlay/index.js';
import type { ImageStack, StackLayer } from './image-stack.js';

/** What one layer does. */
export interface LayerReport {
  layer: StackLayer;
  added: string[];
  modified: string[];
  removed: string[];
  /** Directories this layer creates. */
  addedDirs: number;
  /** Bytes of the files this layer adds or replaces. */
  bytesWritten: number;
  /** Bytes of lower files this layer's changes make dead weight. */
  bytesWasted: number;
}

/** One path whose bytes ship more than once or after deletion. */
export interface WastedPath {
  path: string;
  /** How many copies of the path the layers hold. */
  copies: number;
  /** Bytes of the copies nobody sees (all of them when the path ends deleted). */
  wastedBytes: number;
  deleted: boolean;
}

/** The whole analysis. */
export interface ImageAnalysis {
  layers: LayerReport[];
  /** Sum of the layers' file bytes. */
  totalBytes: number;
  wastedBytes: number;
  /** dive's efficiency score, 0..1. */
  efficiency: number;
  /** Largest waste first. */
  wasted: WastedPath[];
}

interface Node {
  dir: boolean;
  size: number;
  children?: Map<string, Node>;
}

interface PathStats {
  /** Sizes of the copies layers hold, bottom first. */
  copies: number[];
  /** dive's bookkeeping: smallest and total size seen (a deletion counts what it removes). */
  min: number;
  sum: number;
  deleted: boolean;
}

/** Non-directory paths of a subtree, with their sizes. */
function filesUnder(n: Node, path: string, out: [string, number][]): void {
  if (!n.dir) {
    out.push([path, n.size]);
    return;
  }
  for (const [name, c] of n.children!) filesUnder(c, joinPath(path, name), out);
}

/** Analyses every layer of `stack`. */
export async function analyzeImage(stack: ImageStack): Promise<ImageAnalysis> {
  const root: Node = { dir: true, size: 0, children: new Map() };
  const paths = new Map<string, PathStats>();
  const seen = (path: string, size: number, deleted: boolean): void => {
    const p = paths.get(path) ?? { copies: [], min: Number.POSITIVE_INFINITY, sum: 0, deleted: false };
    if (!deleted) p.copies.push(size);
    p.min = Math.min(p.min, size);
    p.sum += size;
    p.deleted = deleted;
    paths.set(path, p);
  };
  const layers: LayerReport[] = [];
  for (const layer of stack.layers) {
    const report: LayerReport = { layer, added: [], modified: [], removed: [], addedDirs: 0, bytesWritten: 0, bytesWasted: 0 };
    const remove = (path: string, n: Node): void => {
      const files: [string, number][] = [];
      filesUnder(n, path, files);
      for (const [f, size] of files) {
        report.removed.push(f);
        report.bytesWasted += size;
        seen(f, size, true);
      }
    };
    const walk = async (dirPath: string, real: string, into: Node): Promise<void> => {
      if (dirPath !== '/' && (await isOpaqueDir(Buffer.from(real, 'latin1')))) {
        // Opaque: what the layers below put here is gone (its own entries are re-added below).
        for (const [name, c] of into.children!) remove(joinPath(dirPath, name), c);
        into.children!.clear();
      }
      const entries = await fsp.readdir(Buffer.from(real, 'latin1'), { withFileTypes: true, encoding: 'buffer' });
      for (const d of entries) {
        const name = d.name.toString('latin1');
        const path = joinPath(dirPath, name);
        const childReal = `${real}/${name}`;
        const st = await fsp.lstat(Buffer.from(childReal, 'latin1'));
        const below = into.children!.get(name);
        if (isWhiteoutStat(st)) {
          if (below) {
            remove(path, below);
            into.children!.delete(name);
          }
          continue;
        }
        if (st.isDirectory()) {
          let node = below;
          if (!node || !node.dir) {
            if (node) remove(path, node);
            node = { dir: true, size: 0, children: new Map() };
            into.children!.set(name, node);
            report.addedDirs++;
          }
          await walk(path, childReal, node);
          continue;
        }
        const size = st.isFile() ? st.size : 0;
        if (below) {
          if (below.dir) remove(path, below);
          else report.bytesWasted += below.size;
          report.modified.push(path);
        } else {
          report.added.push(path);
        }
        report.bytesWritten += size;
        seen(path, size, false);
        into.children!.set(name, { dir: false, size });
      }
    };
    await walk('/', Buffer.from(layer.dir).toString('latin1'), root);
    for (const list of [report.added, report.modified, report.removed]) list.sort();
    layers.push(report);
  }
  let minimum = 0;
  let discovered = 0;
  const wasted: WastedPath[] = [];
  for (const [path, p] of paths) {
    minimum += p.min;
    discovered += p.sum;
    if (!p.deleted && p.copies.length < 2) continue;
    // Every copy but the visible last one ships unseen; all of them when the path ends deleted.
    const shipped = p.copies.reduce((n, c) => n + c, 0);
    const wastedBytes = p.deleted ? shipped : shipped - p.copies[p.copies.length - 1]!;
    wasted.push({ path, copies: p.copies.length, wastedBytes, deleted: p.deleted });
  }
  wasted.sort((a, b) => b.wastedBytes - a.wastedBytes || (a.path < b.path ? -1 : 1));
  return {
    layers,
    totalBytes: stack.layers.reduce((n, l) => n + l.size, 0),
    wastedBytes: wasted.reduce((n, w) => n + w.wastedBytes, 0),
    efficiency: discovered === 0 ? 1 : minimum / discovered,
    wasted,
  };
}

/** Sizes as dive takes them: decimal units (`20MB` = 20,000,000), binary with `i` (`20MiB`). */
export function parseByteSize(s: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(|k|m|g|t)(i?)b?$/i.exec(s.trim());
  if (!m) throw new Error(`invalid size ${JSON.stringify(s)}: expected e.g. 20MB, 1.5GB, 512KiB`);
  const exp = ['', 'k', 'm', 'g', 't'].indexOf(m[2]!.toLowerCase());
  return Math.round(Number(m[1]) * (m[3] ? 1024 : 1000) ** exp);
}
