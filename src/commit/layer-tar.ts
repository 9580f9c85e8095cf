/**
 * A container's writable layer as an OCI layer tar (the changeset of `commit`).
 *
 * The writable layer is in the kernel overlayfs format; an OCI layer has its own
 * conventions, so each marker is translated:
 * - a whiteout (0/0 char device) hiding an image path → an empty file `.wh.NAME`;
 *   a whiteout hiding nothing of the image is dropped;
 * - an opaque directory over an image directory → its entries plus `.wh..wh..opq`;
 * - a renamed directory (trusted.overlay.redirect) has no OCI form: its whole merged
 *   subtree is written out as real entries, with `.wh..wh..opq` when the image has a
 *   directory at the new name (the old name's whiteout is already in the upper).
 * Below a directory written in full, everything comes from the merged view, so the tar
 * applied over the image gives exactly what the container shows.
 * The overlay's own xattrs (trusted.overlay.*, layerfs's origin mark among them, and the
 * old trusted.layerfs.*) are never written: a layer carrying them would forge overlay
 * metadata (and layerfs's loader refuses it).
 */
import { createReadStream } from 'node:fs';
import * as fsp from 'node:fs/promises';
import type { BigIntStats } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import type { Header, Pack } from 'tar-stream';

type Headers = Partial<Header> & Pick<Header, 'name'>;
import { LayerfsError, nullOnSystemError } from '../core/errors.js';
import * as sys from '../sys/native.js';
import { containerOwnership, isLowerDir, type Resolved } from '../union/index.js';
import { joinPath, visibleXattrName } from '../overlay/index.js';
import type { ContainerView } from '../inspect/index.js';

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Files up to this size are read whole; larger ones are streamed. */
const SMALL_FILE = 1024 * 1024;

/** A byte-string (latin1) path or value as the UTF-8 string tar-stream writes back as the same bytes. */
function tarString(bytes: string, what: string): string {
  try {
    return utf8.decode(Buffer.from(bytes, 'latin1'));
  } catch {
    throw new LayerfsError('INVALID_ARGUMENT', `cannot write ${JSON.stringify(bytes)} (${what}) into a layer: its name is not valid UTF-8`, {
      hint: 'rename it inside the container, then commit again',
    });
  }
}

/** Counts of what a layer tar holds. */
export interface LayerTarStats {
  entries: number;
  whiteouts: number;
  opaque: number;
  /** Directories renamed (redirects) whose subtree was written out in full. */
  expanded: number;
}

/** Writes the container's changes into `pack` (the caller finalizes it). */
export async function writeLayerTar(cv: ContainerView, pack: Pack): Promise<LayerTarStats> {
  const w = new LayerTarWriter(cv, pack);
  const root = cv.view.resolve('/');
  const full = root.lowerPath !== '/';
  if (full && isLowerDir(cv.stack.index.get('/'))) await w.marker('/', '.wh..wh..opq');
  await w.dir('/', full);
  return w.stats;
}

class LayerTarWriter {
  readonly stats: LayerTarStats = { entries: 0, whiteouts: 0, opaque: 0, expanded: 0 };
  /** First tar name of each multiply-linked inode, for hard-link entries. */
  private readonly links = new Map<string, string>();

  constructor(
    private readonly cv: ContainerView,
    private readonly pack: Pack,
  ) {}

  /**
   * Writes the entries below directory `p`. `full`: the container does not merge the
   * image's directory at `p` (opaque, renamed, or new), so every merged entry is written;
   * otherwise only the writable layer's own entries and whiteouts are.
   */
  async dir(p: string, full: boolean): Promise<void> {
    const { view, upper, stack } = this.cv;
    const names = full
      ? (await view.readdir(view.resolve(p))).map((e) => e.name)
      : (await fsp.readdir(upper.realPath(p), { encoding: 'buffer' })).map((b) => b.toString('latin1'));
    names.sort();
    for (const name of names) {
      const c = joinPath(p, name);
      if (!full && upper.get(c)?.kind === 'whiteout') {
        if (stack.index.get(c) !== undefined) await this.marker(p, `.wh.${name}`);
        continue;
      }
      const r = view.resolve(c);
      await this.entry(c, r);
      if (!r.isDir) continue;
      if (full) {
        await this.dir(c, true);
        continue;
      }
      const childFull = r.lowerPath !== c;
      if (childFull && r.upper?.redirect !== undefined) this.stats.expanded++;
      if (childFull && isLowerDir(stack.index.get(c))) await this.marker(c, '.wh..wh..opq');
      await this.dir(c, childFull);
    }
  }

  /** An empty marker file (`.wh.NAME` or `.wh..wh..opq`) in directory `dir`. */
  async marker(dir: string, name: string): Promise<void> {
    const path = joinPath(dir, name).slice(1);
    await this.add({ name: tarString(path, 'whiteout'), type: 'file', mode: 0, size: 0, mtime: new Date(0) });
    if (name === '.wh..wh..opq') this.stats.opaque++;
    else this.stats.whiteouts++;
  }

  /** One object of the merged view, from wherever it is served. */
  private async entry(path: string, r: Resolved): Promise<void> {
    const real = r.upper !== undefined ? this.cv.upper.realPath(path) : this.cv.stack.index.realPath(r.lower!.layer, r.lowerPath!);
    const st = await fsp.lstat(real, { bigint: true });
    const name = tarString(path.slice(1), 'path');
    // Container ids: a rootless store keeps host ids or an override on disk (owner-override.ts).
    const owner = await containerOwnership(real, { uid: Number(st.uid), gid: Number(st.gid), mode: Number(st.mode) });
    const h: Headers = {
      name,
      mode: owner.mode,
      uid: owner.uid,
      gid: owner.gid,
      mtime: new Date(Number(st.mtimeMs)),
    };
    const pax = await this.xattrs(real, path);
    if (pax) h.pax = pax;
    const key = `${st.dev}:${st.ino}`;
    if (!st.isDirectory() && st.nlink > 1n) {
      const first = this.links.get(key);
      if (first !== undefined) return this.add({ ...h, type: 'link', linkname: first, size: 0 });
      this.links.set(key, name);
    }
    if (owner.device) return this.add({ ...h, type: owner.device.kind === 'char' ? 'character-device' : 'block-device', devmajor: owner.device.major, devminor: owner.device.minor });
    if (st.isFile()) return this.file(h, real, st);
    if (st.isDirectory()) return this.add({ ...h, type: 'directory' });
    if (st.isSymbolicLink()) {
      const target = (await fsp.readlink(real, { encoding: 'buffer' })).toString('latin1');
      return this.add({ ...h, type: 'symlink', linkname: tarString(target, `symlink target of ${path}`) });
    }
    if (st.isFIFO()) return this.add({ ...h, type: 'fifo' });
    if (st.isCharacterDevice() || st.isBlockDevice()) {
      const rdev = Number(st.rdev);
      return this.add({ ...h, type: st.isCharacterDevice() ? 'character-device' : 'block-device', devmajor: sys.major(rdev), devminor: sys.minor(rdev) });
    }
    // Sockets cannot be archived (Docker skips them too).
  }

  private async file(h: Headers, real: Buffer, st: BigIntStats): Promise<void> {
    const size = Number(st.size);
    if (size <= SMALL_FILE) {
      // Small files in one read: a stream per file costs more than the file.
      const data = await fsp.readFile(real);
      if (data.length !== size) throw new LayerfsError('IO', `${real.toString('latin1')} changed size while being committed`, { hint: 'stop writing to the container, then commit again' });
      await new Promise<void>((resolve, reject) => {
        this.pack.entry({ ...h, type: 'file', size }, data, (err) => (err ? reject(err) : resolve()));
      });
      this.stats.entries++;
      return;
    }
    await new Promise<void>((resolve, reject) => {
      const sink = this.pack.entry({ ...h, type: 'file', size }, (err) => (err ? reject(err) : resolve()));
      pipeline(createReadStream(real), sink).catch(reject);
    });
    this.stats.entries++;
  }

  private async add(h: Headers): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.pack.entry(h, (err) => (err ? reject(err) : resolve())).end(Buffer.alloc(0));
    });
    this.stats.entries++;
  }

  /** User-visible xattrs as PAX records (SCHILY.xattr when UTF-8, else libarchive's base64 form). */
  private async xattrs(real: Buffer, path: string): Promise<Record<string, string> | undefined> {
    const names = (await sys.llistxattr(real).catch(nullOnSystemError)) ?? [];
    let out: Record<string, string> | undefined;
    for (const stored of names) {
      const name = visibleXattrName(stored);
      if (name === null || /^(trusted|user)\.overlay\./.test(name)) continue;
      const v = await sys.lgetxattr(real, stored);
      if (v === null) continue;
      out ??= {};
      try {
        out[`SCHILY.xattr.${name}`] = utf8.decode(v);
      } catch {
        out[`LIBARCHIVE.xattr.${encodeURIComponent(name)}`] = v.toString('base64');
      }
    }
    void path;
    return out;
  }
}
