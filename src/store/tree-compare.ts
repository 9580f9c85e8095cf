/**
 * Compares two extracted layer trees entry by entry — type, mode, owner, size, mtime (ns;
 * not of directories and whiteouts, whose times are the extraction's own),
 * device numbers, symlink target, xattrs and file content (sha256) — and sums a tree's
 * file content the way the extractor counts a layer's `size` (each inode once). Used by
 * `layerfs check` to find a layer cache that no longer matches its blob.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import * as sys from '../sys/native.js';

/** One entry, as a comparable string. */
async function describe(abs: Buffer): Promise<string> {
  const st = await lstat(abs, { bigint: true });
  const xattrs: string[] = [];
  for (const n of (await sys.llistxattr(abs)).sort()) {
    const v = await sys.lgetxattr(abs, n);
    xattrs.push(`${n}=${v?.toString('hex') ?? ''}`);
  }
  let body = '';
  if (st.isSymbolicLink()) body = `-> ${(await readlink(abs, { encoding: 'buffer' })).toString('hex')}`;
  else if (st.isFile()) {
    const h = createHash('sha256');
    await pipeline(createReadStream(abs), h);
    body = `sha256:${h.digest('hex')}`;
  }
  // A directory's mtime is set from the tar only when the tar has an entry for it (parents
  // made implicitly, and any holding a whiteout, get the extraction's time), and a whiteout
  // (0/0 device) never has one: neither says anything about the layer's content.
  const whiteout = st.isCharacterDevice() && st.rdev === 0n;
  const mtime = st.isDirectory() || whiteout ? '' : String(st.mtimeNs);
  const size = st.isDirectory() ? '' : String(st.size);
  return `mode=${st.mode.toString(8)} uid=${st.uid} gid=${st.gid} rdev=${st.rdev} size=${size} mtime=${mtime} ${body} [${xattrs.join(',')}]`;
}

/** Relative byte-string paths (latin1) of everything under `dir`, sorted. */
async function walk(dir: Buffer, rel = ''): Promise<string[]> {
  const out: string[] = [];
  const here = rel === '' ? dir : Buffer.concat([dir, Buffer.from('/'), Buffer.from(rel, 'latin1')]);
  for (const name of await readdir(here, { encoding: 'buffer' })) {
    const r = rel === '' ? name.toString('latin1') : `${rel}/${name.toString('latin1')}`;
    out.push(r);
    const st = await lstat(Buffer.concat([dir, Buffer.from('/'), Buffer.from(r, 'latin1')]));
    if (st.isDirectory()) out.push(...(await walk(dir, r)));
  }
  return out.sort();
}

const join = (dir: Buffer, rel: string): Buffer => (rel === '' ? dir : Buffer.concat([dir, Buffer.from('/'), Buffer.from(rel, 'latin1')]));

/** The paths (up to `max`) where `actual` differs from `expected`, each with what differs; [] when equal. */
export async function compareTrees(expected: string, actual: string, max = 10): Promise<string[]> {
  const e = Buffer.from(expected);
  const a = Buffer.from(actual);
  const [pe, pa] = await Promise.all([walk(e), walk(a)]);
  const diffs: string[] = [];
  const inA = new Set(pa);
  for (const p of pe) if (!inA.has(p)) diffs.push(`/${p}: missing`);
  const inE = new Set(pe);
  for (const p of pa) if (!inE.has(p)) diffs.push(`/${p}: not in the layer`);
  for (const p of ['', ...pe.filter((x) => inA.has(x))]) {
    if (diffs.length >= max) break;
    const [de, da] = await Promise.all([describe(join(e, p)), describe(join(a, p))]);
    if (de !== da) diffs.push(`/${p}: ${da} (expected ${de})`);
  }
  return diffs.slice(0, max);
}

/** Bytes of regular-file content under `dir`, each inode once (an extraction's `size`). */
export async function contentSize(dir: string): Promise<number> {
  const d = Buffer.from(dir);
  const seen = new Set<bigint>();
  let size = 0;
  for (const p of await walk(d)) {
    const st = await lstat(join(d, p), { bigint: true });
    if (!st.isFile() || seen.has(st.ino)) continue;
    seen.add(st.ino);
    size += Number(st.size);
  }
  return size;
}
