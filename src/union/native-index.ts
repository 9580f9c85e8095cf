/**
 * Packs the merged lower index into the blob the binding's native fast path loads
 * (layerfs-fast.h, `lf_load_index`), so a FUSE thread can answer lookups, getattr,
 * readlink, xattr probes and read-only opens of lower-only paths without JavaScript.
 * Every number is the one UnionView would answer (`lowerStat`), so both paths agree.
 *
 * Layout, little-endian: u32 magic "LFIX", u32 version, u32 root count, u32 entry count;
 * each root as u32 length + bytes; each entry as u32 path length + path bytes, u32 target
 * length (0xffffffff: not known) + target bytes, u32 mode uid gid nlink rdev blksize
 * flags layer, f64 size ino blocks atime-sec mtime-sec ctime-sec, u32 atime-nsec
 * mtime-nsec ctime-nsec, u32 child count + u32 entry index per child (directories, in
 * listing order, so the binding can answer readdir too).
 */
import type { LowerEntry, LowerIndex } from './lower-index.js';
import { S_IFLNK, S_IFMT } from './overlay-format.js';
import { lowerStat } from './union-view.js';

const MAGIC = 0x5849464c; // "LFIX"
const VERSION = 2;
const NO_TARGET = 0xffffffff;
/** Entry flags, as layerfs-fast.h reads them. */
const HAS_XATTRS = 1;
const XATTRS_KNOWN = 2;
const FIXED_BYTES = 4 + 4 + 8 * 4 + 6 * 8 + 3 * 4 + 4;

/** The blob for `index`. Paths and targets are latin1 byte strings, as everywhere. */
export function packLowerIndex(index: LowerIndex): Buffer {
  // Two passes over the index (sizes, then bytes): nothing per entry is kept meanwhile.
  let bytes = 16;
  for (const root of index.roots) bytes += 4 + root.length;
  index.forEach((path, entry) => {
    bytes += FIXED_BYTES + path.length + (targetOf(entry)?.length ?? 0) + 4 * (entry.children?.length ?? 0);
  });
  const buf = Buffer.allocUnsafe(bytes);
  let o = 0;
  const u32 = (v: number) => (o = buf.writeUInt32LE(v >>> 0, o));
  const f64 = (v: number) => (o = buf.writeDoubleLE(v, o));
  const str = (s: string) => {
    u32(s.length);
    o += buf.write(s, o, 'latin1');
  };
  u32(MAGIC);
  u32(VERSION);
  u32(index.roots.length);
  u32(index.size);
  for (const root of index.roots) {
    u32(root.length);
    o += root.copy(buf, o);
  }
  let count = 0;
  index.forEach((path, entry, id) => {
    // Entries go in forEach order, so an entry's number is its id.
    if (id !== count++) throw new Error(`packLowerIndex: ids out of order at ${path}`);
    str(path);
    const target = targetOf(entry);
    if (target !== undefined) str(target);
    else u32(NO_TARGET);
    const st = lowerStat(entry);
    u32(st.mode);
    u32(st.uid);
    u32(st.gid);
    u32(st.nlink);
    u32(st.rdev);
    u32(st.blksize);
    u32(XATTRS_KNOWN | (entry.xattrs ? HAS_XATTRS : 0));
    u32(entry.layer);
    f64(Number(st.size));
    f64(Number(st.ino));
    f64(Number(st.blocks));
    f64(st.atime.sec);
    f64(st.mtime.sec);
    f64(st.ctime.sec);
    u32(st.atime.nsec);
    u32(st.mtime.nsec);
    u32(st.ctime.nsec);
    const children = entry.children?.length ?? 0;
    u32(children);
    // A directory's children are one consecutive run of ids (LowerIndex.forEach).
    const first = children > 0 ? index.firstChildId(id) : 0;
    for (let k = 0; k < children; k++) u32(first + k);
  });
  if (o !== bytes || count !== index.size) throw new Error(`packLowerIndex: wrote ${o} of ${bytes} bytes, ${count} of ${index.size} entries`);
  return buf;
}

/** A symlink's target when the index knows it; the binding asks JS otherwise. */
function targetOf(e: LowerEntry): string | undefined {
  return (e.mode & S_IFMT) === S_IFLNK ? e.target : undefined;
}
