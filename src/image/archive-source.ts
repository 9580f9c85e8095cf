/**
 * Random access to the files of an image archive: a directory (an OCI layout on disk) or
 * an uncompressed tar file (docker-archive, oci-archive). For a tar, the headers are
 * walked once (seeking over the data, never reading it) to build an index of offsets,
 * so each blob is later streamed straight from its place in the file.
 *
 * Paths inside an archive are cleaned lexically and must stay inside it; symlinks inside a
 * tar (skopeo writes `<id>/layer.tar -> ../<digest>.tar`) are resolved lexically, within
 * the archive, a few hops at most.
 */
import { createReadStream } from 'node:fs';
import { open, readFile, lstat, realpath, type FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { resolve as resolvePath } from 'node:path';
import { LayerfsError, hasErrnoCode } from '../core/errors.js';
import { cleanLayerPath, parentOf } from '../core/safe-join.js';

/** Files of an archive, by path relative to its root. */
export interface ArchiveSource {
  /** Human-readable name for messages. */
  readonly name: string;
  /** Size of a regular file, or undefined when it does not exist. */
  size(path: string): Promise<number | undefined>;
  /** Whole file (for small JSON documents); fails beyond `maxSize`. */
  read(path: string, maxSize: number): Promise<Buffer>;
  /** Stream of a file's bytes. */
  stream(path: string): Promise<Readable>;
  close(): Promise<void>;
}

function notFound(src: string, path: string): LayerfsError {
  return new LayerfsError('INVALID_IMAGE', `${src}: missing file ${JSON.stringify(path)}`);
}

function tooBig(src: string, path: string, max: number): LayerfsError {
  return new LayerfsError('LIMIT_EXCEEDED', `${src}: ${path} is larger than ${max} bytes`);
}

/** An OCI layout directory. */
export class DirSource implements ArchiveSource {
  private readonly dir: string;
  constructor(dir: string) {
    this.dir = resolvePath(dir);
  }
  get name(): string {
    return this.dir;
  }

  private async resolve(path: string): Promise<string> {
    const rel = cleanLayerPath(path, { mode: 'contain', what: 'archive path' });
    const full = `${this.dir}/${rel}`;
    // Symlinks in a layout the user points us at are followed, but must stay inside it.
    const root = await realpath(this.dir);
    const real = await realpath(full).catch(() => `${root}/${rel}`);
    if (real !== root && !real.startsWith(root + '/')) {
      throw new LayerfsError('UNSAFE_PATH', `${this.dir}: ${path} points outside the layout`);
    }
    return real;
  }

  async size(path: string): Promise<number | undefined> {
    try {
      const st = await lstat(await this.resolve(path));
      return st.isFile() ? st.size : undefined;
    } catch (err) {
      if (hasErrnoCode(err, 'ENOENT') || hasErrnoCode(err, 'ENOTDIR')) return undefined;
      throw err;
    }
  }

  async read(path: string, maxSize: number): Promise<Buffer> {
    const size = await this.size(path);
    if (size === undefined) throw notFound(this.name, path);
    if (size > maxSize) throw tooBig(this.name, path, maxSize);
    return readFile(await this.resolve(path));
  }

  async stream(path: string): Promise<Readable> {
    if ((await this.size(path)) === undefined) throw notFound(this.name, path);
    return createReadStream(await this.resolve(path), { highWaterMark: 1024 * 1024 });
  }

  async close(): Promise<void> {}
}

interface TarEntry {
  type: 'file' | 'symlink' | 'link' | 'other';
  offset: number;
  size: number;
  linkname: string;
}

function octal(b: Buffer, off: number, len: number): number {
  const f = b.subarray(off, off + len);
  if (f[0]! & 0x80) {
    let n = 0;
    for (let i = 1; i < f.length; i++) n = n * 256 + f[i]!;
    return n;
  }
  const s = f.toString('latin1').replace(/\0.*$/s, '').trim();
  return s === '' ? 0 : parseInt(s, 8);
}

function cstr(b: Buffer, off: number, len: number): string {
  const f = b.subarray(off, off + len);
  const z = f.indexOf(0);
  return (z < 0 ? f : f.subarray(0, z)).toString('latin1');
}

function parsePax(buf: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let off = 0;
  while (off < buf.length) {
    const sp = buf.indexOf(0x20, off);
    if (sp < 0) break;
    const len = parseInt(buf.toString('latin1', off, sp), 10);
    if (!(len > 0)) break;
    const rec = buf.subarray(sp + 1, off + len - 1).toString('latin1');
    const eq = rec.indexOf('=');
    if (eq > 0) out[rec.slice(0, eq)] = rec.slice(eq + 1);
    off += len;
  }
  return out;
}

/** An uncompressed tar file (docker-archive or oci-archive). */
export class TarSource implements ArchiveSource {
  private constructor(readonly name: string, private readonly file: string, private readonly entries: Map<string, TarEntry>) {}

  /** Indexes the tar at `file`. */
  static async open(file: string, displayName = file): Promise<TarSource> {
    const entries = new Map<string, TarEntry>();
    let fh: FileHandle;
    try {
      fh = await open(file, 'r');
    } catch (err) {
      throw new LayerfsError('NOT_FOUND', `cannot open ${displayName}: ${(err as Error).message}`, { cause: err });
    }
    try {
      const fileSize = (await fh.stat()).size;
      const hdr = Buffer.alloc(512);
      let off = 0;
      let longName: string | undefined;
      let longLink: string | undefined;
      let pax: Record<string, string> | undefined;
      for (;;) {
        const { bytesRead } = await fh.read(hdr, 0, 512, off);
        if (bytesRead < 512) {
          if (off === 0) throw new LayerfsError('INVALID_IMAGE', `${displayName}: not a tar archive (too short)`);
          break; // tolerate a missing end-of-archive marker
        }
        if (hdr.every((x) => x === 0)) break;
        let sum = 0;
        for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 32 : hdr[i]!;
        if (sum !== octal(hdr, 148, 8)) throw new LayerfsError('INVALID_IMAGE', `${displayName}: not a tar archive (bad header checksum at offset ${off})`, { hint: 'is it compressed? layerfs reads .tar, .tar.gz and .tar.zst' });
        const flag = String.fromCharCode(hdr[156]!);
        let size = octal(hdr, 124, 12);
        if (pax?.size !== undefined) size = Number(pax.size);
        const dataOff = off + 512;
        if (!Number.isSafeInteger(size) || size < 0 || dataOff + size > fileSize) {
          throw new LayerfsError('INVALID_IMAGE', `${displayName}: truncated tar archive (entry at offset ${off} claims ${size} bytes)`);
        }
        const next = dataOff + Math.ceil(size / 512) * 512;
        if (flag === 'L' || flag === 'K' || flag === 'x') {
          if (size > 1024 * 1024) throw new LayerfsError('INVALID_IMAGE', `${displayName}: oversized tar extension header`);
          const b = Buffer.alloc(size);
          await fh.read(b, 0, size, dataOff);
          if (flag === 'L') longName = cstr(b, 0, size);
          else if (flag === 'K') longLink = cstr(b, 0, size);
          else pax = parsePax(b);
          off = next;
          continue;
        }
        if (flag === 'g') {
          off = next;
          continue;
        }
        let name = cstr(hdr, 0, 100);
        if (hdr.toString('latin1', 257, 262) === 'ustar' && hdr[345] !== 0) name = `${cstr(hdr, 345, 155)}/${name}`;
        name = pax?.path ?? longName ?? name;
        const linkname = pax?.linkpath ?? longLink ?? cstr(hdr, 157, 100);
        const type = flag === '0' || flag === '\0' || flag === '7' ? 'file' : flag === '2' ? 'symlink' : flag === '1' ? 'link' : 'other';
        try {
          const rel = cleanLayerPath(name, { mode: 'contain', what: 'archive member' });
          entries.set(rel, { type, offset: dataOff, size, linkname });
        } catch {
          // Members outside the archive root can never be referenced by a manifest: ignore.
        }
        longName = longLink = pax = undefined;
        off = next;
      }
    } finally {
      await fh.close();
    }
    return new TarSource(displayName, file, entries);
  }

  private lookup(path: string): TarEntry | undefined {
    let rel = cleanLayerPath(path, { mode: 'contain', what: 'archive path' });
    for (let hops = 0; hops < 8; hops++) {
      const e = this.entries.get(rel);
      if (!e) return undefined;
      if (e.type === 'file') return e;
      if (e.type === 'symlink') {
        const target = e.linkname.startsWith('/') ? e.linkname : `${parentOf(rel)}/${e.linkname}`;
        rel = cleanLayerPath(target, { mode: 'contain', what: 'archive symlink' });
      } else if (e.type === 'link') {
        rel = cleanLayerPath(e.linkname, { mode: 'contain', what: 'archive hard link' });
      } else {
        return undefined;
      }
    }
    return undefined;
  }

  async size(path: string): Promise<number | undefined> {
    return this.lookup(path)?.size;
  }

  async read(path: string, maxSize: number): Promise<Buffer> {
    const e = this.lookup(path);
    if (!e) throw notFound(this.name, path);
    if (e.size > maxSize) throw tooBig(this.name, path, maxSize);
    const fh = await open(this.file, 'r');
    try {
      const b = Buffer.alloc(e.size);
      if (e.size > 0) await fh.read(b, 0, e.size, e.offset);
      return b;
    } finally {
      await fh.close();
    }
  }

  async stream(path: string): Promise<Readable> {
    const e = this.lookup(path);
    if (!e) throw notFound(this.name, path);
    if (e.size === 0) return Readable.from([]);
    return createReadStream(this.file, { start: e.offset, end: e.offset + e.size - 1, highWaterMark: 1024 * 1024 });
  }

  async close(): Promise<void> {}
}
