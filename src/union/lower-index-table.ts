/**
 * The storage behind LowerIndex: every merged lower path as one row of a column table
 * (typed arrays), its path and symlink target as bytes in one pool, and an open-addressing
 * hash table from path to row. Nothing per entry lives on the JavaScript heap, so a 102k
 * entry index costs ~15 MB of flat memory instead of ~30 MB of objects (plus the young
 * generation those objects inflate while being built), and the same bytes are the on-disk
 * cache (lower-index-cache.ts): loading is one read and a few typed-array views.
 *
 * Rows are numbered so that every directory's children are one contiguous run
 * (`aux0` = first row, `aux1` = count): a child's name is its path after the parent's path and a
 * slash, so names are not stored twice. Row 0 is '/'. The columns, their order and the
 * hash are defined once, with the file layout, in src/engine/formats/index-cache.ts.
 */
import {
  F64_COLUMNS,
  FNV_OFFSET,
  FNV_PRIME,
  INDEX_VERSION as FORMAT_VERSION,
  NONE as FORMAT_NONE,
  ROW_FLAG_XATTRS,
  U32_COLUMNS,
} from '../engine/formats/index-cache.js';

/** Version of the table layout and of LowerEntry; bump when either changes (old caches are rebuilt). */
export const INDEX_VERSION = FORMAT_VERSION;

/** Row flags. */
export const FLAG_XATTRS = ROW_FLAG_XATTRS;

/** Marks "no value" in u32 columns (target offsets, dir-layer offsets). */
export const NONE = FORMAT_NONE;

type F64Column = (typeof F64_COLUMNS)[number];
type U32Column = (typeof U32_COLUMNS)[number];

/** The finished table. Column lengths may exceed `count` (only rows below it are used). */
export type IndexTable = {
  count: number;
  flags: Uint8Array;
  dirLayers: Uint32Array;
  bytes: Buffer;
  slots: Uint32Array;
  /** The whole cache file the columns are views of, when the table was loaded from one. */
  file?: Buffer;
} & {
  [K in F64Column]: Float64Array;
} & { [K in U32Column]: Uint32Array };

/** FNV-1a over the bytes of a latin1 string (each UTF-16 unit is one byte). */
export function hashPath(path: string): number {
  let h = FNV_OFFSET;
  for (let i = 0; i < path.length; i++) h = Math.imul(h ^ path.charCodeAt(i), FNV_PRIME);
  return h >>> 0;
}

/** The row of `path`, or -1. */
export function findRow(t: IndexTable, path: string): number {
  const h = hashPath(path);
  const slots = t.slots;
  const mask = slots.length - 1;
  for (let i = h & mask; ; i = (i + 1) & mask) {
    const slot = slots[i]!;
    if (slot === 0) return -1;
    const row = slot - 1;
    if (t.hash[row] === h && t.pathLen[row] === path.length && samePath(t, row, path)) return row;
  }
}

function samePath(t: IndexTable, row: number, path: string): boolean {
  const bytes = t.bytes;
  const off = t.pathOff[row]!;
  // From the end: paths in one directory share their whole prefix.
  for (let i = path.length - 1; i >= 0; i--) if (bytes[off + i] !== path.charCodeAt(i)) return false;
  return true;
}

/** The path of `row` as a latin1 string. */
export function pathOf(t: IndexTable, row: number): string {
  const off = t.pathOff[row]!;
  return t.bytes.toString('latin1', off, off + t.pathLen[row]!);
}

/** Names of a directory row's children, in readdir order. */
export function childNames(t: IndexTable, row: number): string[] {
  const first = t.aux0[row]!;
  const count = t.aux1[row]!;
  // '/' + name under the root, dir + '/' + name elsewhere.
  const skip = row === 0 ? 1 : t.pathLen[row]! + 1;
  const out = new Array<string>(count);
  for (let i = 0; i < count; i++) {
    const c = first + i;
    const off = t.pathOff[c]!;
    out[i] = t.bytes.toString('latin1', off + skip, off + t.pathLen[c]!);
  }
  return out;
}

/** A symlink row's target, or undefined when it could not be read at build. */
export function targetOf(t: IndexTable, row: number): string | undefined {
  const off = t.aux0[row]!;
  return off === NONE ? undefined : t.bytes.toString('latin1', off, off + t.aux1[row]!);
}

/** The layers merged into a directory row, top first (undefined for non-directories). */
export function dirLayersOf(t: IndexTable, row: number): number[] | undefined {
  const off = t.dirLayersOff[row]!;
  if (off === NONE) return undefined;
  const n = t.dirLayers[off]!;
  return Array.from(t.dirLayers.subarray(off + 1, off + 1 + n));
}

/** Column names in file order (lower-index-cache.ts writes and reads them in this order). */
export const COLUMNS = { f64: F64_COLUMNS, u32: U32_COLUMNS };

/**
 * Fills a table row by row while the lower layers are walked. Rows are reserved in blocks
 * (a directory's children at once) and filled as their lstat results arrive.
 */
export class TableBuilder {
  private cap = 0;
  count = 0;
  private bytesUsed = 0;
  private dirLayersUsed = 0;
  readonly t: IndexTable;

  constructor() {
    const t: Record<string, unknown> = { count: 0, flags: new Uint8Array(0), dirLayers: new Uint32Array(64), bytes: Buffer.allocUnsafe(64 * 1024), slots: new Uint32Array(2) };
    for (const c of F64_COLUMNS) t[c] = new Float64Array(0);
    for (const c of U32_COLUMNS) t[c] = new Uint32Array(0);
    this.t = t as IndexTable;
  }

  /** Reserves `n` rows; returns the first. */
  reserve(n: number): number {
    const first = this.count;
    this.count += n;
    if (this.count > this.cap) this.grow(Math.max(this.count, this.cap * 2, 1024));
    return first;
  }

  /** Stores `path`'s bytes for `row` and its hash. */
  setPath(row: number, path: string): void {
    const t = this.t;
    t.pathOff[row] = this.addBytes(path);
    t.pathLen[row] = path.length;
    t.hash[row] = hashPath(path);
    t.aux0[row] = NONE;
    t.aux1[row] = 0;
    t.dirLayersOff[row] = NONE;
  }

  /** Stores a symlink's target. */
  setTarget(row: number, target: string): void {
    this.t.aux0[row] = this.addBytes(target);
    this.t.aux1[row] = target.length;
  }

  /** Stores a directory's merged layers. */
  setDirLayers(row: number, layers: number[]): void {
    const need = this.dirLayersUsed + 1 + layers.length;
    if (need > this.t.dirLayers.length) this.t.dirLayers = growU32(this.t.dirLayers, Math.max(need, this.t.dirLayers.length * 2));
    const off = this.dirLayersUsed;
    this.t.dirLayers[off] = layers.length;
    this.t.dirLayers.set(layers, off + 1);
    this.dirLayersUsed = need;
    this.t.dirLayersOff[row] = off;
  }

  /** Stores a directory's run of children. */
  setChildren(row: number, first: number, count: number): void {
    this.t.aux0[row] = first;
    this.t.aux1[row] = count;
  }

  /** Trims the columns to the rows used and builds the hash table. */
  finish(): IndexTable {
    const t = this.t;
    const n = this.count;
    t.count = n;
    // Views, not copies: copying would briefly hold both (the spare capacity, at most
    // half, stays allocated; a loaded cache has none).
    for (const c of F64_COLUMNS) t[c] = t[c].subarray(0, n);
    for (const c of U32_COLUMNS) t[c] = t[c].subarray(0, n);
    t.flags = t.flags.subarray(0, n);
    t.dirLayers = t.dirLayers.subarray(0, this.dirLayersUsed);
    t.bytes = t.bytes.subarray(0, this.bytesUsed);
    t.slots = buildSlots(t);
    return t;
  }

  private addBytes(s: string): number {
    const off = this.bytesUsed;
    if (off + s.length > this.t.bytes.length) {
      const grown = Buffer.allocUnsafe(Math.max(off + s.length, this.t.bytes.length * 2));
      this.t.bytes.copy(grown, 0, 0, off);
      this.t.bytes = grown;
    }
    this.bytesUsed += this.t.bytes.write(s, off, 'latin1');
    return off;
  }

  private grow(cap: number): void {
    const t = this.t;
    for (const c of F64_COLUMNS) {
      const a = new Float64Array(cap);
      a.set(t[c]);
      t[c] = a;
    }
    for (const c of U32_COLUMNS) t[c] = growU32(t[c], cap);
    const f = new Uint8Array(cap);
    f.set(t.flags);
    t.flags = f;
    this.cap = cap;
  }
}

function growU32(a: Uint32Array, cap: number): Uint32Array {
  const b = new Uint32Array(cap);
  b.set(a);
  return b;
}

/** The hash table: twice the rows or more, a power of two, each slot row + 1 (0 = empty). */
export function buildSlots(t: IndexTable): Uint32Array {
  let size = 2;
  while (size < t.count * 2) size *= 2;
  const slots = new Uint32Array(size);
  const mask = size - 1;
  for (let row = 0; row < t.count; row++) {
    let i = t.hash[row]! & mask;
    while (slots[i] !== 0) i = (i + 1) & mask;
    slots[i] = row + 1;
  }
  return slots;
}
