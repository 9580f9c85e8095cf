/**
 * The lower-index cache file: the ONE definition of its layout. TypeScript writes and
 * reads it (src/union/lower-index-cache.ts, lower-index-table.ts); C maps it and reads it
 * in place (src/engine/native/lower-index.c, through generated/index-cache-format.h).
 *
 * Little-endian, every section 8-byte aligned so it can be used in place (mmap, or
 * typed-array views over one Buffer):
 *   header, HEADER_BYTES: the HEADER fields, each a u32;
 *   roots, `rootsBytes`: per layer root, top first, a ROOT record (u32 path length,
 *     u32 0, u64 st_ino, i64 st_ctime in ns, the path bytes, zero-padded to 8) — a cheap
 *     check that the cache describes these very directories;
 *   the F64_COLUMNS, then the U32_COLUMNS, `rows` values each, in this order;
 *   the hash slots (u32 each; row + 1, 0 = empty; open addressing, linear probing, on
 *     the FNV-1a 32-bit hash of the path bytes, masked by slots - 1);
 *   the dir-layer words (u32: per directory [count, layer…], at its dirLayersOff);
 *   one flag byte per row (ROW_FLAG_*);
 *   the byte pool (paths and symlink targets, latin1 bytes, not NUL-terminated).
 * The CRC-32 (zlib's) covers everything from CRC_FROM to the end of the file.
 */
import type { CConstant, CHeader } from './c-header.js';

/** "LFLI" read as a little-endian u32. */
export const INDEX_MAGIC = 0x494c464c;
/** Bump when the layout or what a row means changes: older caches are rebuilt. */
export const INDEX_VERSION = 4;
export const HEADER_BYTES = 40;
/** Byte offsets of the header's u32 fields. */
export const HEADER = {
  magic: 0,
  version: 4,
  crc: 8,
  rows: 12,
  slots: 16,
  dirLayerWords: 20,
  poolBytes: 24,
  rootsBytes: 28,
  rootCount: 32,
  /** CONVENTION_* bits: how the layers were read (a cache read another way is stale). */
  conventions: 36,
} as const;
/** Convention bit: overlay markers were read as user.overlay.* (userxattr), not trusted.overlay.*. */
export const CONVENTION_USER_XATTRS = 1;
/** Convention bit: AUFS whiteout files (.wh.NAME, .wh..wh..opq) were read as whiteouts too. */
export const CONVENTION_AUFS = 2;
/** The checksum covers the file from here on. */
export const CRC_FROM = 12;

/** A root record's fixed part; the path bytes follow, then zero padding to 8. */
export const ROOT = { pathLen: 0, reserved: 4, ino: 8, ctimeNs: 16, path: 24 } as const;

/** The f64 columns, in file order. */
export const F64_COLUMNS = ['size', 'blocks', 'ino', 'rdev', 'atimeSec', 'mtimeSec', 'ctimeSec'] as const;
/**
 * The u32 columns, in file order. aux0/aux1: directories, first child row and child
 * count; symlinks, target offset in the pool (NONE: not known) and length; others unused.
 * dirLayersOff: directories, offset in the dir-layer words of [count, layer…]; others NONE.
 * hash: the path's FNV-1a hash.
 */
export const U32_COLUMNS = [
  'mode',
  'uid',
  'gid',
  'nlink',
  'blksize',
  'atimeNsec',
  'mtimeNsec',
  'ctimeNsec',
  'layer',
  'pathOff',
  'pathLen',
  'aux0',
  'aux1',
  'dirLayersOff',
  'hash',
] as const;

/** Row flag: the backing object has at least one extended attribute. */
export const ROW_FLAG_XATTRS = 1;
/** "No value" in u32 columns (target offsets, dir-layer offsets). */
export const NONE = 0xffffffff;
/** FNV-1a 32-bit parameters (the path hash). */
export const FNV_OFFSET = 0x811c9dc5;
export const FNV_PRIME = 0x01000193;

/** Bytes a cache file with these counts must have. */
export function cacheFileBytes(rows: number, slots: number, dirLayerWords: number, poolBytes: number, rootsBytes: number): number {
  return HEADER_BYTES + rootsBytes + rows * (F64_COLUMNS.length * 8 + U32_COLUMNS.length * 4 + 1) + (slots + dirLayerWords) * 4 + poolBytes;
}

const cName = (s: string): string => s.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase();

export const C_HEADER: CHeader = {
  file: 'index-cache-format.h',
  doc: 'The lower-index cache file layout (src/engine/formats/index-cache.ts has the full description).',
  constants: [
    { name: 'LF_IX_MAGIC', value: INDEX_MAGIC, hex: true, doc: '"LFLI" as a little-endian u32' },
    { name: 'LF_IX_VERSION', value: INDEX_VERSION, doc: 'layout version; any other is rejected' },
    { name: 'LF_IX_HEADER_BYTES', value: HEADER_BYTES, doc: 'header size' },
    ...Object.entries(HEADER).map(([k, v]): CConstant => ({ name: `LF_IX_HDR_${cName(k)}`, value: v, doc: `header: byte offset of the u32 ${k}` })),
    { name: 'LF_IX_CRC_FROM', value: CRC_FROM, doc: 'the CRC-32 covers the file from this byte on' },
    ...Object.entries(ROOT).map(([k, v]): CConstant => ({ name: `LF_IX_ROOT_${cName(k)}`, value: v, doc: `root record: byte offset of ${k}` })),
    ...F64_COLUMNS.map((c, i): CConstant => ({ name: `LF_IX_F64_${cName(c)}`, value: i, doc: `f64 column ${c}: its position` })),
    { name: 'LF_IX_F64_COLUMNS', value: F64_COLUMNS.length, doc: 'number of f64 columns' },
    ...U32_COLUMNS.map((c, i): CConstant => ({ name: `LF_IX_U32_${cName(c)}`, value: i, doc: `u32 column ${c}: its position` })),
    { name: 'LF_IX_U32_COLUMNS', value: U32_COLUMNS.length, doc: 'number of u32 columns' },
    { name: 'LF_IX_FLAG_XATTRS', value: ROW_FLAG_XATTRS, doc: 'row flag: the backing object has an xattr' },
    { name: 'LF_IX_NONE', value: NONE, hex: true, doc: 'no value in a u32 column' },
    { name: 'LF_IX_FNV_OFFSET', value: FNV_OFFSET, hex: true, doc: 'FNV-1a 32 offset basis' },
    { name: 'LF_IX_FNV_PRIME', value: FNV_PRIME, hex: true, doc: 'FNV-1a 32 prime' },
  ],
};
