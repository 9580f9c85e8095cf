/**
 * The on-disk cache of a LowerIndex: the column table (lower-index-table.ts) byte for byte
 * as it sits in memory, so loading it is one read plus typed-array views — no parse, no
 * object per entry (102k entries: ~17 MB, loaded in tens of milliseconds).
 *
 * Layout, little-endian (typed arrays use the host's order, so big-endian hosts neither
 * read nor write caches):
 *   header, 40 bytes: u32 magic "LFLI", u32 INDEX_VERSION, u32 crc32 of everything after
 *     this field, u32 rows, u32 hash slots, u32 dir-layer words, u32 pool bytes,
 *     u32 roots JSON bytes, 8 reserved;
 *   roots JSON (latin1), space-padded to a multiple of 8: per layer root, top first, its
 *     path, st_ino and st_ctime in ns — a cheap check that the cache describes these very
 *     directories (a re-extracted or replaced layer has another inode or ctime);
 *   the f64 columns, the u32 columns (COLUMNS order, `rows` each), the hash slots, the
 *     dir-layer words, one flag byte per row, the byte pool.
 *
 * Written to a temp file in the same directory and renamed, so readers see the old file or
 * the whole new one. A cache that fails any check is reported as a reason string and
 * rebuilt by the caller, never trusted.
 */
import { randomBytes } from 'node:crypto';
import { lstat, mkdir, open, rename, rm, type FileHandle } from 'node:fs/promises';
import { endianness } from 'node:os';
import { dirname } from 'node:path';
import { crc32 } from 'node:zlib';
import { hasErrnoCode } from '../core/errors.js';
import { COLUMNS, INDEX_VERSION, NONE, type IndexTable } from './lower-index-table.js';
import { S_IFDIR, S_IFLNK, S_IFMT } from './overlay-format.js';

const MAGIC = 0x494c464c; // "LFLI"
const HEADER = 40;
const CRC_FROM = 12;

interface RootIdentity {
  path: string;
  ino: string;
  ctimeNs: string;
}

interface Header {
  rows: number;
  slots: number;
  dirLayerWords: number;
  poolBytes: number;
  rootsBytes: number;
  crc: number;
  /** Offset of the first column. */
  dataStart: number;
  fileSize: number;
}

const littleEndian = endianness() === 'LE';

/** The table cached in `file` for `roots`, or why it cannot be used. */
export async function readIndexCache(file: string, roots: Buffer[]): Promise<IndexTable | string> {
  return withCache(file, roots, async (fh, h) => {
    // Not pooled, so the views below start at an 8-aligned offset of their own memory.
    const buf = Buffer.allocUnsafeSlow(h.fileSize);
    await readFully(fh, buf, 0);
    if (crc32(buf.subarray(CRC_FROM)) !== h.crc) return 'checksum mismatch';
    return viewTable(buf, h);
  });
}

/** Undefined when `file` looks current for `roots` (header and roots checked, not the checksum), else why not. */
export async function checkIndexCache(file: string, roots: Buffer[]): Promise<string | undefined> {
  const r = await withCache(file, roots, async () => true as const);
  return r === true ? undefined : r;
}

/** Writes `table` for `roots` to `file` atomically (temp file + rename). */
export async function writeIndexCache(file: string, roots: Buffer[], t: IndexTable): Promise<void> {
  if (!littleEndian) throw new Error('index caches are little-endian only');
  const identities = await Promise.all(roots.map(identify));
  let rootsJson = JSON.stringify(identities);
  rootsJson += ' '.repeat((8 - ((HEADER + rootsJson.length) % 8)) % 8);
  const n = t.count;
  const parts: Buffer[] = [Buffer.alloc(HEADER), Buffer.from(rootsJson, 'latin1')];
  const view = (a: Float64Array | Uint32Array | Uint8Array, len: number): Buffer => Buffer.from(a.buffer, a.byteOffset, len * a.BYTES_PER_ELEMENT);
  for (const c of COLUMNS.f64) parts.push(view(t[c], n));
  for (const c of COLUMNS.u32) parts.push(view(t[c], n));
  parts.push(view(t.slots, t.slots.length), view(t.dirLayers, t.dirLayers.length), view(t.flags, n), t.bytes);
  const head = parts[0]!;
  head.writeUInt32LE(MAGIC, 0);
  head.writeUInt32LE(INDEX_VERSION, 4);
  head.writeUInt32LE(n, 12);
  head.writeUInt32LE(t.slots.length, 16);
  head.writeUInt32LE(t.dirLayers.length, 20);
  head.writeUInt32LE(t.bytes.length, 24);
  head.writeUInt32LE(rootsJson.length, 28);
  let crc = crc32(head.subarray(CRC_FROM));
  for (const p of parts.slice(1)) crc = crc32(p, crc);
  head.writeUInt32LE(crc, 8);

  const dir = dirname(file);
  await mkdir(dir, { recursive: true });
  // The store's staging-name shape (store-paths.ts), so store cleanup recognises a leftover.
  const tmp = `${dir}/.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
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

/** Opens `file`, checks its header and roots, and runs `body`; any failure becomes a reason. */
async function withCache<T>(file: string, roots: Buffer[], body: (fh: FileHandle, h: Header) => Promise<T | string>): Promise<T | string> {
  if (!littleEndian) return 'big-endian host';
  let fh: FileHandle;
  try {
    fh = await open(file, 'r');
  } catch (err) {
    return hasErrnoCode(err, 'ENOENT') ? 'no cache file' : `cannot open the cache: ${(err as Error).message}`;
  }
  try {
    const h = await readHeader(fh);
    if (typeof h === 'string') return h;
    const rootsJson = Buffer.alloc(h.rootsBytes);
    await readFully(fh, rootsJson, HEADER);
    const problem = await checkRoots(rootsJson.toString('latin1'), roots);
    if (problem !== undefined) return problem;
    return await body(fh, h);
  } catch (err) {
    return `unreadable cache: ${(err as Error).message}`;
  } finally {
    await fh.close();
  }
}

async function readHeader(fh: FileHandle): Promise<Header | string> {
  const { size } = await fh.stat();
  if (size < HEADER) return 'truncated cache';
  const head = Buffer.alloc(HEADER);
  await readFully(fh, head, 0);
  if (head.readUInt32LE(0) !== MAGIC) return 'not an index cache';
  const version = head.readUInt32LE(4);
  if (version !== INDEX_VERSION) return `cache version ${version}, not ${INDEX_VERSION}`;
  const rows = head.readUInt32LE(12);
  const slots = head.readUInt32LE(16);
  const dirLayerWords = head.readUInt32LE(20);
  const poolBytes = head.readUInt32LE(24);
  const rootsBytes = head.readUInt32LE(28);
  const dataStart = HEADER + rootsBytes;
  const expected = dataStart + rows * (COLUMNS.f64.length * 8 + COLUMNS.u32.length * 4 + 1) + (slots + dirLayerWords) * 4 + poolBytes;
  if (size !== expected || dataStart % 8 !== 0) return `cache size ${size}, header says ${expected}`;
  // findRow ends at an empty slot: a power of two above the row count guarantees one.
  if (slots <= rows || (slots & (slots - 1)) !== 0) return 'bad hash table size';
  return { rows, slots, dirLayerWords, poolBytes, rootsBytes, crc: head.readUInt32LE(8), dataStart, fileSize: size };
}

async function checkRoots(json: string, roots: Buffer[]): Promise<string | undefined> {
  let cached: RootIdentity[];
  try {
    cached = JSON.parse(json) as RootIdentity[];
  } catch {
    return 'bad roots record';
  }
  if (!Array.isArray(cached) || cached.length !== roots.length) return 'other layers';
  for (let i = 0; i < roots.length; i++) {
    const c = cached[i]!;
    if (c.path !== roots[i]!.toString('latin1')) return `other layer ${i}`;
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
  return { path: root.toString('latin1'), ino: String(st.ino), ctimeNs: String(st.ctimeNs) };
}

/** Typed-array views of the sections of `buf` (no copy), after bounds checks of every row. */
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
  const table = t as IndexTable;
  return checkRows(table) ?? table;
}

/** Every offset in range, so a reader can never index past a section (checksums catch the rest). */
function checkRows(t: IndexTable): string | undefined {
  const pool = t.bytes.length;
  for (let row = 0; row < t.count; row++) {
    if (t.pathOff[row]! + t.pathLen[row]! > pool) return `row ${row}: path out of range`;
    const type = t.mode[row]! & S_IFMT;
    if (type === S_IFDIR) {
      if (t.aux0[row]! + t.aux1[row]! > t.count && t.aux1[row]! > 0) return `row ${row}: children out of range`;
      const dl = t.dirLayersOff[row]!;
      if (dl === NONE || dl >= t.dirLayers.length || dl + 1 + t.dirLayers[dl]! > t.dirLayers.length) return `row ${row}: dir layers out of range`;
    } else if (type === S_IFLNK && t.aux0[row]! !== NONE && t.aux0[row]! + t.aux1[row]! > pool) {
      return `row ${row}: target out of range`;
    }
  }
  return undefined;
}

async function readFully(fh: FileHandle, buf: Buffer, position: number): Promise<void> {
  for (let done = 0; done < buf.length; ) {
    const { bytesRead } = await fh.read(buf, done, buf.length - done, position + done);
    if (bytesRead === 0) throw new Error('cache shorter than its header says');
    done += bytesRead;
  }
}
