/**
 * The kernel FUSE protocol's bytes (include/uapi/linux/fuse.h, protocol 7.40): request
 * decoding and reply encoding for the opcodes the engine serves. The kernel header is the
 * one definition: every offset used here is in LAYOUT, and test/unit/engine-wire.test.ts
 * compiles a C program against the header and compares each sizeof/offsetof with it.
 * All integers are host order (little-endian on every machine layerfs runs on).
 */
import { LayerfsError } from '../core/errors.js';
import type { FileStat, StatFs } from '../core/filesystem.js';

/** Struct layouts: `size` and the byte offset of each field the engine reads or writes.
 * A field with `since` exists from that minor protocol version on. */
export const LAYOUT = {
  fuse_in_header: { size: 40, fields: { len: 0, opcode: 4, unique: 8, nodeid: 16, uid: 24, gid: 28, pid: 32, total_extlen: 36 } },
  fuse_out_header: { size: 16, fields: { len: 0, error: 4, unique: 8 } },
  fuse_attr: {
    size: 88,
    fields: { ino: 0, size: 8, blocks: 16, atime: 24, mtime: 32, ctime: 40, atimensec: 48, mtimensec: 52, ctimensec: 56, mode: 60, nlink: 64, uid: 68, gid: 72, rdev: 76, blksize: 80, flags: 84 },
  },
  fuse_entry_out: { size: 128, fields: { nodeid: 0, generation: 8, entry_valid: 16, attr_valid: 24, entry_valid_nsec: 32, attr_valid_nsec: 36, attr: 40 } },
  fuse_attr_out: { size: 104, fields: { attr_valid: 0, attr_valid_nsec: 8, attr: 16 } },
  fuse_getattr_in: { size: 16, fields: { getattr_flags: 0, fh: 8 } },
  fuse_forget_in: { size: 8, fields: { nlookup: 0 } },
  fuse_batch_forget_in: { size: 8, fields: { count: 0 } },
  fuse_forget_one: { size: 16, fields: { nodeid: 0, nlookup: 8 } },
  fuse_setattr_in: {
    size: 88,
    fields: { valid: 0, fh: 8, size: 16, atime: 32, mtime: 40, atimensec: 56, mtimensec: 60, mode: 68, uid: 76, gid: 80 },
  },
  fuse_mknod_in: { size: 16, fields: { mode: 0, rdev: 4, umask: 8 } },
  fuse_mkdir_in: { size: 8, fields: { mode: 0, umask: 4 } },
  fuse_rename_in: { size: 8, fields: { newdir: 0 } },
  fuse_rename2_in: { size: 16, fields: { newdir: 0, flags: 8 } },
  fuse_link_in: { size: 8, fields: { oldnodeid: 0 } },
  fuse_open_in: { size: 8, fields: { flags: 0, open_flags: 4 } },
  fuse_create_in: { size: 16, fields: { flags: 0, mode: 4, umask: 8, open_flags: 12 } },
  fuse_open_out: { size: 16, fields: { fh: 0, open_flags: 8, backing_id: { at: 12, since: 40 } } },
  fuse_release_in: { size: 24, fields: { fh: 0, flags: 8, release_flags: 12, lock_owner: 16 } },
  fuse_flush_in: { size: 24, fields: { fh: 0, lock_owner: 16 } },
  fuse_read_in: { size: 40, fields: { fh: 0, offset: 8, size: 16, read_flags: 20, lock_owner: 24, flags: 32 } },
  fuse_write_in: { size: 40, fields: { fh: 0, offset: 8, size: 16, write_flags: 20, lock_owner: 24, flags: 32 } },
  fuse_write_out: { size: 8, fields: { size: 0 } },
  fuse_kstatfs: { size: 80, fields: { blocks: 0, bfree: 8, bavail: 16, files: 24, ffree: 32, bsize: 40, namelen: 44, frsize: 48 } },
  fuse_statfs_out: { size: 80, fields: { st: 0 } },
  fuse_fsync_in: { size: 16, fields: { fh: 0, fsync_flags: 8 } },
  fuse_setxattr_in: { size: 16, fields: { size: 0, flags: 4, setxattr_flags: 8 } },
  fuse_getxattr_in: { size: 8, fields: { size: 0 } },
  fuse_getxattr_out: { size: 8, fields: { size: 0 } },
  fuse_access_in: { size: 8, fields: { mask: 0 } },
  fuse_init_in: { size: 64, fields: { major: 0, minor: 4, max_readahead: 8, flags: 12, flags2: 16 } },
  fuse_init_out: {
    size: 64,
    fields: {
      major: 0, minor: 4, max_readahead: 8, flags: 12, max_background: 16, congestion_threshold: 18, max_write: 20,
      time_gran: 24, max_pages: 28, map_alignment: 30, flags2: 32, max_stack_depth: { at: 36, since: 40 },
    },
  },
  fuse_interrupt_in: { size: 8, fields: { unique: 0 } },
  fuse_dirent: { size: 24, fields: { ino: 0, off: 8, namelen: 16, type: 20, name: 24 } },
  fuse_direntplus: { size: 152, fields: { entry_out: 0, dirent: 128 } },
} as const;

type Field = number | { at: number; since: number };
const at = (f: Field): number => (typeof f === 'number' ? f : f.at);

export const Opcode = {
  LOOKUP: 1, FORGET: 2, GETATTR: 3, SETATTR: 4, READLINK: 5, SYMLINK: 6, MKNOD: 8, MKDIR: 9, UNLINK: 10,
  RMDIR: 11, RENAME: 12, LINK: 13, OPEN: 14, READ: 15, WRITE: 16, STATFS: 17, RELEASE: 18, FSYNC: 20,
  SETXATTR: 21, GETXATTR: 22, LISTXATTR: 23, REMOVEXATTR: 24, FLUSH: 25, INIT: 26, OPENDIR: 27, READDIR: 28,
  RELEASEDIR: 29, FSYNCDIR: 30, GETLK: 31, SETLK: 32, SETLKW: 33, ACCESS: 34, CREATE: 35, INTERRUPT: 36,
  BMAP: 37, DESTROY: 38, IOCTL: 39, POLL: 40, NOTIFY_REPLY: 41, BATCH_FORGET: 42, FALLOCATE: 43,
  READDIRPLUS: 44, RENAME2: 45, LSEEK: 46, COPY_FILE_RANGE: 47, SYNCFS: 50, TMPFILE: 51, STATX: 52,
} as const;

/** fuse_init_in/out flags (flags2 holds bits 32–63, as a bigint here). */
export const InitFlag = {
  ASYNC_READ: 1n << 0n, ATOMIC_O_TRUNC: 1n << 3n, BIG_WRITES: 1n << 5n, DONT_MASK: 1n << 6n, AUTO_INVAL_DATA: 1n << 12n,
  DO_READDIRPLUS: 1n << 13n, READDIRPLUS_AUTO: 1n << 14n, ASYNC_DIO: 1n << 15n, WRITEBACK_CACHE: 1n << 16n,
  PARALLEL_DIROPS: 1n << 18n, POSIX_ACL: 1n << 20n, MAX_PAGES: 1n << 22n, CACHE_SYMLINKS: 1n << 23n, EXPLICIT_INVAL_DATA: 1n << 25n,
  SETXATTR_EXT: 1n << 29n, INIT_EXT: 1n << 30n, DIRECT_IO_ALLOW_MMAP: 1n << 36n, PASSTHROUGH: 1n << 37n, NO_EXPORT_SUPPORT: 1n << 38n,
} as const;

/** fuse_setxattr_in.setxattr_flags (sent with SETXATTR_EXT). */
export const SetxattrFlag = { ACL_KILL_SGID: 1 } as const;

/** fuse_open_out.open_flags. */
export const FOpen = { DIRECT_IO: 1, KEEP_CACHE: 2, CACHE_DIR: 8, NOFLUSH: 32, PARALLEL_DIRECT_WRITES: 64, PASSTHROUGH: 128 } as const;

/** fuse_setattr_in.valid. */
export const FAttr = {
  MODE: 1, UID: 2, GID: 4, SIZE: 8, ATIME: 16, MTIME: 32, FH: 64, ATIME_NOW: 128, MTIME_NOW: 256, CTIME: 1024, KILL_SUIDGID: 2048,
} as const;

export const GETATTR_FH = 1;
/** Node ids are numbers: the engine hands them out from 2 up, one per object it ever
 * answered for, so they stay far below 2^53 (exact); a larger id from a request names
 * no node. */
export const FUSE_ROOT_ID = 1;
export const IN_HEADER_SIZE = LAYOUT.fuse_in_header.size;

/** A request the engine cannot parse (too short, no NUL after a name…): answered EINVAL. */
export function malformed(what: string): LayerfsError {
  return new LayerfsError('INVALID_ARGUMENT', `malformed FUSE request: ${what}`, { errno: 'EINVAL' });
}

export interface InHeader {
  len: number;
  opcode: number;
  unique: bigint;
  /** As a number (see FUSE_ROOT_ID; above 2^53 it is inexact, and names no node). */
  nodeid: number;
  uid: number;
  gid: number;
  pid: number;
}

/** The request header; throws when the frame is shorter than one or its len disagrees. */
export function readInHeader(req: Buffer): InHeader {
  if (req.length < IN_HEADER_SIZE) throw malformed(`frame of ${req.length} bytes`);
  const f = LAYOUT.fuse_in_header.fields;
  const h = {
    len: req.readUInt32LE(f.len),
    opcode: req.readUInt32LE(f.opcode),
    unique: req.readBigUInt64LE(f.unique),
    nodeid: readU64(req, f.nodeid),
    uid: req.readUInt32LE(f.uid),
    gid: req.readUInt32LE(f.gid),
    pid: req.readUInt32LE(f.pid),
  };
  if (h.len !== req.length) throw malformed(`header says ${h.len} bytes, frame has ${req.length}`);
  return h;
}

/** A u64 as a number: exact below 2^53, which every id and count the engine keeps is. */
export function readU64(buf: Buffer, off: number): number {
  return buf.readUInt32LE(off) + buf.readUInt32LE(off + 4) * 0x1_0000_0000;
}

/** Writes `v` as a u64 (an i64 when negative, e.g. times before 1970) without making a
 * BigInt for the exact numbers most fields are. */
export function writeU64(buf: Buffer, off: number, v: number | bigint): void {
  if (typeof v === 'number' && v >= 0 && v <= Number.MAX_SAFE_INTEGER) {
    buf.writeUInt32LE(v % 0x1_0000_0000, off);
    buf.writeUInt32LE(Math.floor(v / 0x1_0000_0000), off + 4);
  } else if (v < 0) {
    buf.writeBigInt64LE(BigInt(v), off);
  } else {
    buf.writeBigUInt64LE(BigInt.asUintN(64, BigInt(v)), off);
  }
}

/**
 * A request body reader: fixed structs by LAYOUT name, then NUL-terminated names and a
 * data tail. Every read is bounds-checked (a short body is `malformed`).
 */
export class Body {
  private pos = 0;
  constructor(private readonly buf: Buffer) {}

  /** The fixed struct `name` at the current position, as a view; advances past it.
   * `size`: the bytes the kernel sends for it (an older, shorter form: its compat size). */
  struct(name: keyof typeof LAYOUT, size: number = LAYOUT[name].size): StructView {
    if (this.pos + size > this.buf.length) throw malformed(`${name} of ${this.buf.length - this.pos} bytes`);
    const v = new StructView(this.buf.subarray(this.pos, this.pos + size), LAYOUT[name].fields as Record<string, Field>, name);
    this.pos += size;
    return v;
  }

  /** Bytes left after what was read. */
  get remaining(): number {
    return this.buf.length - this.pos;
  }

  /** A NUL-terminated name, as a byte string (latin1). */
  name(): string {
    const end = this.buf.indexOf(0, this.pos);
    if (end < 0) throw malformed('name without NUL');
    const s = this.buf.toString('latin1', this.pos, end);
    this.pos = end + 1;
    return s;
  }

  /** The next `n` bytes (a view of the request, not a copy). */
  bytes(n: number): Buffer {
    if (n < 0 || this.pos + n > this.buf.length) throw malformed(`${n} data bytes, ${this.buf.length - this.pos} left`);
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }
}

/** Typed reads of one struct's fields; a field beyond a shorter (older) struct reads 0. */
export class StructView {
  constructor(
    private readonly buf: Buffer,
    private readonly fields: Record<string, Field>,
    private readonly name: string,
  ) {}

  private off(field: string, width: number): number {
    const f = this.fields[field];
    if (f === undefined) throw new Error(`wire.ts: ${this.name} has no field ${field}`);
    const o = at(f);
    return o + width <= this.buf.length ? o : -1;
  }
  u32(field: string): number {
    const o = this.off(field, 4);
    return o < 0 ? 0 : this.buf.readUInt32LE(o);
  }
  u64(field: string): bigint {
    const o = this.off(field, 8);
    return o < 0 ? 0n : this.buf.readBigUInt64LE(o);
  }
  /** A u64 field as a number (node ids, lookup counts, handles: see readU64). */
  num(field: string): number {
    const o = this.off(field, 8);
    return o < 0 ? 0 : readU64(this.buf, o);
  }
}

/** Writes fixed structs for replies. */
export class Out {
  readonly buf: Buffer;
  constructor(name: keyof typeof LAYOUT, private readonly fields = LAYOUT[name].fields as Record<string, Field>) {
    this.buf = Buffer.alloc(LAYOUT[name].size);
  }
  u16(field: string, v: number): this {
    this.buf.writeUInt16LE(v, at(this.fields[field]!));
    return this;
  }
  u32(field: string, v: number): this {
    this.buf.writeUInt32LE(v >>> 0, at(this.fields[field]!));
    return this;
  }
  i32(field: string, v: number): this {
    this.buf.writeInt32LE(v, at(this.fields[field]!));
    return this;
  }
  u64(field: string, v: bigint | number): this {
    this.buf.writeBigUInt64LE(BigInt.asUintN(64, BigInt(v)), at(this.fields[field]!));
    return this;
  }
}

const A = LAYOUT.fuse_attr.fields;

/** Writes a fuse_attr at `off` of `buf`. */
export function writeAttr(buf: Buffer, off: number, st: FileStat): void {
  writeU64(buf, off + A.ino, st.ino);
  writeU64(buf, off + A.size, st.size);
  writeU64(buf, off + A.blocks, st.blocks);
  writeU64(buf, off + A.atime, st.atime.sec);
  writeU64(buf, off + A.mtime, st.mtime.sec);
  writeU64(buf, off + A.ctime, st.ctime.sec);
  buf.writeUInt32LE(st.atime.nsec, off + A.atimensec);
  buf.writeUInt32LE(st.mtime.nsec, off + A.mtimensec);
  buf.writeUInt32LE(st.ctime.nsec, off + A.ctimensec);
  buf.writeUInt32LE(st.mode >>> 0, off + A.mode);
  buf.writeUInt32LE(st.nlink >>> 0, off + A.nlink);
  buf.writeUInt32LE(st.uid >>> 0, off + A.uid);
  buf.writeUInt32LE(st.gid >>> 0, off + A.gid);
  buf.writeUInt32LE(st.rdev >>> 0, off + A.rdev);
  buf.writeUInt32LE(st.blksize >>> 0, off + A.blksize);
  buf.writeUInt32LE(0, off + A.flags);
}

/** How long the kernel may trust an answer (seconds). */
export interface Validity {
  entry: number;
  attr: number;
}

const E = LAYOUT.fuse_entry_out.fields;

/** Writes a fuse_entry_out at `off` (every byte of it); nodeid 0 with no stat is a cached
 * negative entry. */
export function writeEntry(buf: Buffer, off: number, nodeid: number | bigint, st: FileStat | null, valid: Validity): void {
  writeU64(buf, off + E.nodeid, nodeid);
  writeU64(buf, off + E.generation, 0);
  writeU64(buf, off + E.entry_valid, valid.entry);
  writeU64(buf, off + E.attr_valid, valid.attr);
  buf.fill(0, off + E.entry_valid_nsec, off + E.attr);
  if (st) writeAttr(buf, off + E.attr, st);
  else buf.fill(0, off + E.attr, off + LAYOUT.fuse_entry_out.size);
}

export function entryOut(nodeid: number | bigint, st: FileStat | null, valid: Validity): Buffer {
  const b = Buffer.allocUnsafe(LAYOUT.fuse_entry_out.size);
  writeEntry(b, 0, nodeid, st, valid);
  return b;
}

export function attrOut(st: FileStat, attrValid: number): Buffer {
  return writeAttrOut(Buffer.alloc(LAYOUT.fuse_attr_out.size), st, attrValid);
}

/** attrOut into `b` (fuse_attr_out's size, its other fields zero): for a caller that
 * hands the bytes on at once and reuses `b`. */
export function writeAttrOut(b: Buffer, st: FileStat, attrValid: number): Buffer {
  writeU64(b, LAYOUT.fuse_attr_out.fields.attr_valid, attrValid);
  writeAttr(b, LAYOUT.fuse_attr_out.fields.attr, st);
  return b;
}

export function openOut(fh: number, openFlags: number, backingId: number): Buffer {
  return new Out('fuse_open_out').u64('fh', fh).u32('open_flags', openFlags).i32('backing_id', backingId).buf;
}

export function writeOut(size: number): Buffer {
  return new Out('fuse_write_out').u32('size', size).buf;
}

export function getxattrOut(size: number): Buffer {
  return new Out('fuse_getxattr_out').u32('size', size).buf;
}

export function statfsOut(s: StatFs): Buffer {
  return new Out('fuse_kstatfs')
    .u64('blocks', s.blocks).u64('bfree', s.bfree).u64('bavail', s.bavail).u64('files', s.files).u64('ffree', s.ffree)
    .u32('bsize', s.bsize).u32('namelen', s.namemax).u32('frsize', s.frsize).buf;
}

/** DT_* of a mode, for dirent.type. */
export function direntType(mode: number): number {
  return (mode >>> 12) & 0o17;
}

/** Bytes a dirent (plus=false) or direntplus takes for a name of `nameLen` bytes. */
export function direntSize(nameLen: number, plus: boolean): number {
  const base = plus ? LAYOUT.fuse_direntplus.size : LAYOUT.fuse_dirent.size;
  return (base + nameLen + 7) & ~7;
}

const D = LAYOUT.fuse_dirent.fields;

/** Writes a fuse_dirent at `off`; returns its padded size. */
export function writeDirent(buf: Buffer, off: number, ino: bigint | number, nextOffset: number, type: number, name: Buffer): number {
  writeU64(buf, off + D.ino, ino);
  writeU64(buf, off + D.off, nextOffset);
  buf.writeUInt32LE(name.length, off + D.namelen);
  buf.writeUInt32LE(type, off + D.type);
  name.copy(buf, off + D.name);
  return direntSize(name.length, false);
}
