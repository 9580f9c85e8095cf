/**
 * The on-disk cache of a LowerIndex: the column table (lower-index-table.ts) byte for byte
 * as it sits in memory, so loading it is one read plus typed-array views — no parse, no
 * object per entry (102k entries: ~17 MB, loaded in tens of milliseconds). The native
 * side reads the very same bytes in place (src/engine/native/lower-index.c), so the
 * layout is defined once, in src/engine/formats/index-cache.ts (little-endian; typed
 * arrays use the host's order, so big-endian hosts neither read nor write caches).
 *
 * Written to a temp file in the same directory and renamed, so readers see the old file or
 * the whole new one. A cache that fails any check is reported as a reason string and
 * rebuilt by the caller, never trusted.
 */
import { lstatSync } from 'node:fs';
import { lstat, mkdir, open, rename, rm, type FileHandle } from 'node:fs/promises';
import { endianness } from 'node:os';
import { dirname } from 'node:path';
import { hasErrnoCode } from '../core/errors.js';
import * as lazy from '../core/lazy-builtins.js';
import { cacheFileBytes, CONVENTION_AUFS, CONVENTION_USER_XATTRS, CRC_FROM, HEADER, HEADER_BYTES, INDEX_MAGIC, ROOT } from '../engine/formats/index-cache.js';
import { OVERLAY_XATTR_NS } from '../overlay/index.js';
import { COLUMNS, INDEX_VERSION, type IndexTable } from './lower-index-table.js';
import { sys } from './sys.js';

interface RootIdentity {
  path: Buffer;
  ino: bigint;
  ctimeNs: bigint;
}

interface Header {
  rows: number;
  slots: number;
  dirLayerWords: number;
  poolBytes: number;
  rootsBytes: number;
  rootCount: number;
  crc: number;
  /** Offset of the first column. */
  dataStart: number;
  fileSize: number;
}

const littleEndian = endianness() === 'LE';

/**
 * The table cached in `file` for `roots`, or why it cannot be used. The file is mapped,
 * not read (src/sys/native.ts mapIndexCache): the native reader checks its checksum, its
 * layer roots and every offset, then drops the pages from the resident set, so a process
 * holds only the pages its lookups touch, and native code can read the same bytes.
 */
export async function readIndexCache(file: string, roots: Buffer[], aufs = false): Promise<IndexTable | string> {
  return withCache(file, roots, aufs, async () => {
    let mapped: Buffer;
    try {
      mapped = Buffer.from(sys.mapIndexCache(file));
    } catch (err) {
      return (err as Error).message;
    }
    // Parsed again from the mapping: the file may have been replaced since withCache looked.
    const h = parseHeader(mapped.subarray(0, HEADER_BYTES), mapped.length, aufs);
    if (typeof h === 'string') return h;
    const problem = await checkRoots(mapped.subarray(HEADER_BYTES, h.dataStart), h.rootCount, roots);
    return problem ?? viewTable(mapped, h);
  });
}

/** Undefined when `file` looks current for `roots` (header and roots checked, not the checksum), else why not. */
export async function checkIndexCache(file: string, roots: Buffer[], aufs = false): Promise<string | undefined> {
  const r = await withCache(file, roots, aufs, async () => true as const);
  return r === true ? undefined : r;
}

/** Writes `table` for `roots` to `file` atomically (temp file + rename). */
export async function writeIndexCache(file: string, roots: Buffer[], t: IndexTable, aufs = false): Promise<void> {
  const parts = encodeIndexCache(await Promise.all(roots.map(identify)), t, conventions(aufs));
  const dir = dirname(file);
  await mkdir(dir, { recursive: true });
  // The store's staging-name shape (store-paths.ts), so store cleanup recognises a leftover.
  const tmp = `${dir}/.tmp-${process.pid}-${lazy.crypto().randomBytes(6).toString('hex')}`;
  const fh = await open(tmp, 'wx', 0o644);
  try {
    let pos = 0;
    for (const p of parts) {
      for (let done = 0; done < p.length; ) {
        const { bytesWritten } = await fh.write(p, done, p.length - done, pos);
        done += bytesWritten;
        pos += bytesWritten;
      }
    }
    // No fsync: a file torn by a crash fails its size or checksum check and is rebuilt,
    // and an fsync of ~15 MB would cost a first mount hundreds of ms on a busy disk.
    await fh.close();
    await rename(tmp, file);
  } catch (err) {
    await fh.close().catch(() => undefined);
    await rm(tmp, { force: true });
    throw err;
  }
}

/**
 * The cache file's bytes for `table`: the file itself when the table was loaded from one,
 * else the same layout encoded now into one Buffer (8-aligned, not pooled) — what the
 * native side reads in place. Encoding stats the layer roots (synchronously: they are
 * never the mount being served) and copies the columns once.
 */
export function indexCacheBytes(roots: Buffer[], t: IndexTable, aufs = false): Buffer {
  if (t.file !== undefined) return t.file;
  const parts = encodeIndexCache(
    roots.map((path) => {
      const st = lstatSync(path, { bigint: true });
      return { path, ino: st.ino, ctimeNs: st.ctimeNs };
    }),
    t,
    conventions(aufs),
  );
  const out = Buffer.allocUnsafeSlow(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) o += p.copy(out, o);
  return out;
}

/** The file's sections, in order (views of the table's columns, not copies). */
function encodeIndexCache(ids: RootIdentity[], t: IndexTable, conv: number): Buffer[] {
  if (!littleEndian) throw new Error('index caches are little-endian only');
  const rootsPart = encodeRoots(ids);
  const n = t.count;
  const head = Buffer.alloc(HEADER_BYTES);
  const parts: Buffer[] = [head, rootsPart];
  const view = (a: Float64Array | Uint32Array | Uint8Array, len: number): Buffer => Buffer.from(a.buffer, a.byteOffset, len * a.BYTES_PER_ELEMENT);
  for (const c of COLUMNS.f64) parts.push(view(t[c], n));
  for (const c of COLUMNS.u32) parts.push(view(t[c], n));
  parts.push(view(t.slots, t.slots.length), view(t.dirLayers, t.dirLayers.length), view(t.flags, n), t.bytes);
  head.writeUInt32LE(INDEX_MAGIC, HEADER.magic);
  head.writeUInt32LE(INDEX_VERSION, HEADER.version);
  head.writeUInt32LE(n, HEADER.rows);
  head.writeUInt32LE(t.slots.length, HEADER.slots);
  head.writeUInt32LE(t.dirLayers.length, HEADER.dirLayerWords);
  head.writeUInt32LE(t.bytes.length, HEADER.poolBytes);
  head.writeUInt32LE(rootsPart.length, HEADER.rootsBytes);
  head.writeUInt32LE(ids.length, HEADER.rootCount);
  head.writeUInt32LE(conv, HEADER.conventions);
  const { crc32 } = lazy.zlib();
  let crc = crc32(head.subarray(CRC_FROM));
  for (const p of parts.slice(1)) crc = crc32(p, crc);
  head.writeUInt32LE(crc, HEADER.crc);
  return parts;
}

/** The roots section: one ROOT record per root, each padded to 8 bytes. */
function encodeRoots(ids: RootIdentity[]): Buffer {
  const recs = ids.map((id) => {
    const rec = Buffer.alloc(pad8(ROOT.path + id.path.length));
    rec.writeUInt32LE(id.path.length, ROOT.pathLen);
    rec.writeBigUInt64LE(id.ino, ROOT.ino);
    rec.writeBigInt64LE(id.ctimeNs, ROOT.ctimeNs);
    id.path.copy(rec, ROOT.path);
    return rec;
  });
  return Buffer.concat(recs);
}

/** Parses the roots section; a string says what is wrong with it. */
function decodeRoots(buf: Buffer, count: number): RootIdentity[] | string {
  const out: RootIdentity[] = [];
  let o = 0;
  for (let i = 0; i < count; i++) {
    if (o + ROOT.path > buf.length) return 'bad roots record';
    const len = buf.readUInt32LE(o + ROOT.pathLen);
    if (o + ROOT.path + len > buf.length) return 'bad roots record';
    out.push({ path: buf.subarray(o + ROOT.path, o + ROOT.path + len), ino: buf.readBigUInt64LE(o + ROOT.ino), ctimeNs: buf.readBigInt64LE(o + ROOT.ctimeNs) });
    o += pad8(ROOT.path + len);
  }
  return o === buf.length ? out : 'bad roots record';
}

const pad8 = (n: number): number => (n + 7) & ~7;

/** Opens `file`, checks its header and roots, and runs `body`; any failure becomes a reason. */
async function withCache<T>(file: string, roots: Buffer[], aufs: boolean, body: (fh: FileHandle, h: Header) => Promise<T | string>): Promise<T | string> {
  if (!littleEndian) return 'big-endian host';
  let fh: FileHandle;
  try {
    fh = await open(file, 'r');
  } catch (err) {
    return hasErrnoCode(err, 'ENOENT') ? 'no cache file' : `cannot open the cache: ${(err as Error).message}`;
  }
  try {
    const h = await readHeader(fh, aufs);
    if (typeof h === 'string') return h;
    const rootsPart = Buffer.alloc(h.rootsBytes);
    await readFully(fh, rootsPart, HEADER_BYTES);
    const problem = await checkRoots(rootsPart, h.rootCount, roots);
    if (problem !== undefined) return problem;
    return await body(fh, h);
  } catch (err) {
    return `unreadable cache: ${(err as Error).message}`;
  } finally {
    await fh.close();
  }
}

async function readHeader(fh: FileHandle, aufs: boolean): Promise<Header | string> {
  const { size } = await fh.stat();
  if (size < HEADER_BYTES) return 'truncated cache';
  const head = Buffer.alloc(HEADER_BYTES);
  await readFully(fh, head, 0);
  return parseHeader(head, size, aufs);
}

/**
 * The conventions this process reads layers by: the overlay xattr namespace (root's
 * trusted.overlay.*, or user.overlay.* rootless and in a user namespace) and whether AUFS
 * whiteout files count. A cache built under others describes another merged tree (an
 * opaque directory read as plain, say): it must not be used, only rebuilt.
 */
export function conventions(aufs: boolean): number {
  return (OVERLAY_XATTR_NS === 'user' ? CONVENTION_USER_XATTRS : 0) | (aufs ? CONVENTION_AUFS : 0);
}

/** What a conventions word says, for a reason message. */
function describeConventions(c: number): string {
  return `${c & CONVENTION_USER_XATTRS ? 'user' : 'trusted'}.overlay xattrs${c & CONVENTION_AUFS ? ' and AUFS whiteouts' : ''}`;
}

/** The header of a cache file of `size` bytes, checked against that size and this process's conventions. */
function parseHeader(head: Buffer, size: number, aufs: boolean): Header | string {
  if (size < HEADER_BYTES) return 'truncated cache';
  if (head.readUInt32LE(HEADER.magic) !== INDEX_MAGIC) return 'not an index cache';
  const version = head.readUInt32LE(HEADER.version);
  if (version !== INDEX_VERSION) return `cache version ${version}, not ${INDEX_VERSION}`;
  const conv = head.readUInt32LE(HEADER.conventions);
  if (conv !== conventions(aufs)) return `cache built reading ${describeConventions(conv)}, this mount reads ${describeConventions(conventions(aufs))}`;
  const rows = head.readUInt32LE(HEADER.rows);
  const slots = head.readUInt32LE(HEADER.slots);
  const dirLayerWords = head.readUInt32LE(HEADER.dirLayerWords);
  const poolBytes = head.readUInt32LE(HEADER.poolBytes);
  const rootsBytes = head.readUInt32LE(HEADER.rootsBytes);
  const rootCount = head.readUInt32LE(HEADER.rootCount);
  const dataStart = HEADER_BYTES + rootsBytes;
  const expected = cacheFileBytes(rows, slots, dirLayerWords, poolBytes, rootsBytes);
  if (size !== expected || dataStart % 8 !== 0) return `cache size ${size}, header says ${expected}`;
  // findRow ends at an empty slot: a power of two above the row count guarantees one.
  if (slots <= rows || (slots & (slots - 1)) !== 0) return 'bad hash table size';
  return { rows, slots, dirLayerWords, poolBytes, rootsBytes, rootCount, crc: head.readUInt32LE(HEADER.crc), dataStart, fileSize: size };
}

async function checkRoots(part: Buffer, count: number, roots: Buffer[]): Promise<string | undefined> {
  const cached = decodeRoots(part, count);
  if (typeof cached === 'string') return cached;
  if (cached.length !== roots.length) return 'other layers';
  for (let i = 0; i < roots.length; i++) {
    const c = cached[i]!;
    if (!c.path.equals(roots[i]!)) return `other layer ${i}`;
    let now: RootIdentity;
    try {
      now = await identify(roots[i]!);
    } catch (err) {
      return `cannot stat layer ${i}: ${(err as Error).message}`;
    }
    if (now.ino !== c.ino || now.ctimeNs !== c.ctimeNs) return `layer ${i} changed since the cache was written`;
  }
  return undefined;
}

async function identify(root: Buffer): Promise<RootIdentity> {
  const st = await lstat(root, { bigint: true });
  return { path: root, ino: st.ino, ctimeNs: st.ctimeNs };
}

/** Typed-array views of the sections of `buf` (no copy); the native reader has checked every offset. */
function viewTable(buf: Buffer, h: Header): IndexTable | string {
  const ab = buf.buffer;
  let off = buf.byteOffset + h.dataStart;
  const t: Record<string, unknown> = { count: h.rows };
  for (const c of COLUMNS.f64) {
    t[c] = new Float64Array(ab, off, h.rows);
    off += h.rows * 8;
  }
  for (const c of COLUMNS.u32) {
    t[c] = new Uint32Array(ab, off, h.rows);
    off += h.rows * 4;
  }
  t.slots = new Uint32Array(ab, off, h.slots);
  off += h.slots * 4;
  t.dirLayers = new Uint32Array(ab, off, h.dirLayerWords);
  off += h.dirLayerWords * 4;
  t.flags = new Uint8Array(ab, off, h.rows);
  off += h.rows;
  t.bytes = Buffer.from(ab, off, h.poolBytes);
  t.file = buf;
  return t as IndexTable;
}

async function readFully(fh: FileHandle, buf: Buffer, position: number): Promise<void> {
  for (let done = 0; done < buf.length; ) {
    const { bytesRead } = await fh.read(buf, done, buf.length - done, position + done);
    if (bytesRead === 0) throw new Error('cache shorter than its header says');
    done += bytesRead;
  }
}
