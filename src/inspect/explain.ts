/**
 * `layerfs explain`: where one path of a container or image comes from — which layer
 * serves it (chain id, CREATED BY, the file on disk), the lower copies it shadows, the
 * writable layer's copy (copied up or created, with its times), and every whiteout,
 * opaque directory or redirect met on the way. Pure reads of the layer folders: the same
 * index and lookup rules the mount uses, never a call into a mount.
 */
import * as fsp from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { baseOf, inRoot, isOpaqueDir, isWhiteoutStat, joinPath, parentOf, splitPath } from '../overlay/index.js';
import { isLowerDir } from '../union/index.js';
import type { ContainerView } from './container-view.js';
import { layerOfIndex, type ImageStack, type StackLayer } from './image-stack.js';

/** One layer's object at the looked-up path. */
export interface LayerCopy {
  layer: StackLayer;
  /** The file in the layer folder. */
  file: string;
  kind: 'file' | 'dir' | 'symlink' | 'whiteout' | 'other';
  size: number;
  /** served: the object shown; merged: a directory merged into the one shown; shadowed / hidden: not shown. */
  role: 'served' | 'merged' | 'shadowed' | 'hidden';
  /** For shadowed or hidden copies: what hides them. */
  why?: string;
}

/** A marker of the overlay format met on the way to the path. */
export interface WayMarker {
  path: string;
  where: string;
  what: 'whiteout' | 'opaque' | 'redirect' | 'non-directory';
  detail: string;
}

/** The writable layer's object at the path. */
export interface UpperCopy {
  file: string;
  kind: 'file' | 'dir' | 'symlink' | 'whiteout' | 'other';
  size: number;
  /** True when the image had the path: the copy was made by a copy-up. */
  copiedUp: boolean;
  mtime: string;
  ctime: string;
  redirect?: string;
  opaque?: boolean;
}

/** Everything `explain` says about a path. */
export interface Explanation {
  path: string;
  exists: boolean;
  /** Where lower layers are looked up for this path (differs after a directory rename). */
  lowerPath: string | null;
  servedBy: 'writable layer' | StackLayer | null;
  upper?: UpperCopy;
  copies: LayerCopy[];
  markers: WayMarker[];
}

function kindOf(st: Stats): LayerCopy['kind'] {
  if (isWhiteoutStat(st)) return 'whiteout';
  return st.isDirectory() ? 'dir' : st.isFile() ? 'file' : st.isSymbolicLink() ? 'symlink' : 'other';
}

async function lstatOrNull(p: Buffer): Promise<Stats | null> {
  return fsp.lstat(p).catch(() => null);
}

const layerName = (l: StackLayer): string => `layer ${l.position}`;

/** Explains `path` in an image (no writable layer) or a container (with `cv`). */
export async function explainPath(stack: ImageStack, path: string, cv?: ContainerView): Promise<Explanation> {
  splitPath(path);
  const markers: WayMarker[] = [];
  const { index } = stack;
  // 1. The writable layer, resolved like the mount does, gives the lower lookup path.
  let lowerPath: string | null = path;
  let upper: UpperCopy | undefined;
  let exists: boolean;
  let servedBy: Explanation['servedBy'] = null;
  if (cv) {
    for (const a of ancestors(path)) {
      const u = cv.upper.get(a);
      if (u?.kind === 'whiteout') markers.push({ path: a, where: 'writable layer', what: 'whiteout', detail: `${a} was deleted in the container` });
      if (u?.opaque) markers.push({ path: a, where: 'writable layer', what: 'opaque', detail: `${a} is opaque: nothing of the image below it shows` });
      if (u?.redirect) markers.push({ path: a, where: 'writable layer', what: 'redirect', detail: `${a} was renamed from ${u.redirect}: its lower part is looked up there` });
    }
    const r = cv.view.tryResolve(path);
    exists = typeof r !== 'string';
    const parent = path === '/' ? null : cv.view.tryResolve(parentOf(path));
    lowerPath = path === '/' ? (typeof r === 'string' ? null : r.lowerPath) : parent && typeof parent !== 'string' && parent.lowerPath !== null ? joinPath(parent.lowerPath, baseOf(path)) : null;
    const u = cv.upper.get(path);
    if (u !== undefined && !(typeof r === 'string' && u.kind !== 'whiteout')) {
      const file = cv.upper.realPath(path);
      const st = await fsp.lstat(file);
      upper = {
        file: file.toString('latin1'),
        kind: kindOf(st),
        size: st.isFile() ? st.size : 0,
        copiedUp: u.kind !== 'whiteout' && lowerPath !== null && index.get(lowerPath) !== undefined,
        mtime: st.mtime.toISOString(),
        ctime: st.ctime.toISOString(),
      };
      if (u.redirect) upper.redirect = u.redirect;
      if (u.opaque) upper.opaque = true;
      if (u.kind === 'whiteout') markers.push({ path, where: 'writable layer', what: 'whiteout', detail: `${path} was deleted in the container` });
      else servedBy = 'writable layer';
    }
    if (typeof r !== 'string' && r.upper?.kind === 'dir' && !r.upper.opaque && r.lowerPath !== null) lowerPath = r.lowerPath;
  } else {
    exists = index.get(path) !== undefined;
  }
  // 2. Every image layer's object at the lower path, top first.
  const copies: LayerCopy[] = [];
  // Masked: the container resolves no lower path here (an opaque, deleted or replaced
  // directory above it); the image's own copies at the path are listed as hidden.
  const masked = cv !== undefined && lowerPath === null;
  const listPath = masked ? path : lowerPath;
  const entry = lowerPath === null ? undefined : index.get(lowerPath);
  if (listPath !== null) {
    const lowerPath = listPath;
    for (let i = 0; i < stack.layers.length; i++) {
      const layer = layerOfIndex(stack, i);
      const file = inRoot(Buffer.from(layer.dir), lowerPath);
      for (const a of ancestors(lowerPath)) await wayMarker(layer, a, markers);
      const st = await lstatOrNull(file);
      if (!st) continue;
      const copy: LayerCopy = { layer, file: file.toString('latin1'), kind: kindOf(st), size: st.isFile() ? st.size : 0, role: 'hidden' };
      if (entry && entry.layer === i) copy.role = 'served';
      else if (entry && isLowerDir(entry) && entry.dirLayers?.includes(i)) copy.role = 'merged';
      else if (entry && entry.layer < i) {
        copy.role = 'shadowed';
        copy.why = `shadowed by ${layerName(layerOfIndex(stack, entry.layer))}`;
      } else {
        copy.why = 'hidden by a whiteout, opaque directory or non-directory above it';
      }
      if (copy.kind === 'whiteout') {
        copy.role = 'hidden';
        copy.why = `whiteout: hides ${lowerPath} in the layers below`;
        markers.push({ path: lowerPath, where: layerName(layer), what: 'whiteout', detail: `${layerName(layer)} deletes ${lowerPath}` });
      }
      copies.push(copy);
    }
  }
  if (servedBy === null && entry !== undefined && exists) servedBy = layerOfIndex(stack, entry.layer);
  if (upper && servedBy === 'writable layer') {
    for (const c of copies) {
      if (c.role === 'served' && !(upper.kind === 'dir' && c.kind === 'dir' && !upper.opaque)) {
        c.role = 'shadowed';
        c.why = 'shadowed by the writable layer (copied up)';
      }
    }
  }
  if (upper?.kind === 'whiteout') {
    for (const c of copies) {
      c.role = 'hidden';
      c.why = 'deleted in the writable layer (whiteout)';
    }
  }
  if (masked) {
    for (const c of copies) {
      c.role = 'hidden';
      c.why = 'the container hides the image here (see the markers on the way)';
    }
  }
  return { path, exists, lowerPath, servedBy, ...(upper ? { upper } : {}), copies, markers: dedupe(markers) };
}

/** Opaque directories, whiteouts and non-directories of one layer on the way to a path. */
async function wayMarker(layer: StackLayer, a: string, markers: WayMarker[]): Promise<void> {
  const file = inRoot(Buffer.from(layer.dir), a);
  const st = await lstatOrNull(file);
  if (!st) return;
  const where = layerName(layer);
  if (isWhiteoutStat(st)) markers.push({ path: a, where, what: 'whiteout', detail: `${where} deletes ${a} (and everything below it in lower layers)` });
  else if (!st.isDirectory()) markers.push({ path: a, where, what: 'non-directory', detail: `${where} has a non-directory at ${a}, hiding lower layers below it` });
  else if (a !== '/' && (await isOpaqueDir(file))) markers.push({ path: a, where, what: 'opaque', detail: `${a} is opaque in ${where}: layers below it do not show there` });
}

/** The proper ancestors of a path, root first ('/a/b' → '/', '/a'). */
function ancestors(path: string): string[] {
  const out: string[] = [];
  let cur = '/';
  const parts = splitPath(path);
  for (const name of parts.slice(0, -1)) {
    out.push(cur);
    cur = joinPath(cur, name);
  }
  if (parts.length > 0) out.push(cur);
  return out.filter((a) => a !== path);
}

function dedupe(ms: WayMarker[]): WayMarker[] {
  const seen = new Set<string>();
  return ms.filter((m) => {
    const k = `${m.path}|${m.where}|${m.what}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}
