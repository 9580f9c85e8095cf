/**
 * Extracts one layer tar into an empty directory, in the kernel overlayfs on-disk format
 * (see overlay/whiteout-policy.ts), so the directory can serve as a lowerdir as it is.
 *
 * Safety comes from two rules. (1) Every entry name goes through `cleanLayerPath` in
 * 'reject' mode: no absolute names, no `..`. (2) The target directory starts empty and
 * everything created in it is recorded in `created`; a parent component is walked only if
 * this extraction made it a real directory. So an entry "written through" a symlink, or a
 * hard link to anything but an earlier entry of the same layer, is refused without ever
 * asking the disk (nothing else can be there).
 *
 * GNU sparse files (PAX 0.1 and 1.0) are written with holes (sparse-file.ts).
 *
 * Metadata order per entry: content, lchown, chmod (after chown, which clears set-id bits),
 * xattrs, times (nanoseconds from PAX). Directory times are set last, deepest first,
 * because creating their children changes them.
 */
import { createWriteStream } from 'node:fs';
import { link, mkdir, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import type { ExtractEvents, Header } from 'tar-stream';
import { constants as fsc } from 'node:fs';
import * as sys from '../sys/native.js';
import { LayerfsError } from '../core/errors.js';
import { toFsPath } from '../core/filesystem.js';
import { baseOf, cleanLayerPath, parentOf } from '../core/safe-join.js';
import { byteExactTarExtract } from '../image/index.js';
import { isSparse, sparseName, writeSparse } from './sparse-file.js';
import { applyOwnership, type ImageOwner, type OwnedKind, type OwnerMode } from './extract-ownership.js';
import { checkXattrName, classifyName, markOpaque, mknodWhiteout, refuseLiteralWhiteout, type OverlayXattrs, type WhiteoutKind } from '../overlay/index.js';

/** Entry chains in flight at once during an extraction. */
const MAX_PENDING = 64;

type Kind = 'dir' | 'file' | 'symlink' | 'other' | 'whiteout';

/** What an object entry makes: creation deferred into its background chain (small files, symlinks, nodes), and how its owner is applied. */
interface Made {
  create?: (() => Promise<void>) | undefined;
  owned: OwnedKind;
}

interface Times {
  atime: { sec: number; nsec: number };
  mtime: { sec: number; nsec: number };
}

/** What an extraction produced. */
export interface ExtractStats {
  entries: number;
  /** Bytes of regular-file content (each inode once). */
  size: number;
}

/** Options for one extraction. */
export interface ExtractOptions {
  /** Used in messages, e.g. "layer sha256:abcd…". */
  what: string;
  /** A tar entry claiming more bytes than this is refused. */
  maxEntrySize: number;
  /** How image owners reach the disk (extract-ownership.ts); default 'chown'. */
  owners?: OwnerMode;
  /**
   * Namespace of the opaque marker: 'trusted' (root's stores, the kernel overlayfs
   * default) or 'user' (rootless stores: what overlayfs reads with `userxattr`, the only
   * one an ordinary user may write). 'user' also keeps device nodes as regular files with
   * an override (no CAP_MKNOD). Default 'trusted'.
   */
  overlayXattrs?: OverlayXattrs;
}

/** Parses a PAX time ("1700000000.123456789", possibly negative) into sec/nsec. */
export function parsePaxTime(v: string | undefined): { sec: number; nsec: number } | undefined {
  if (v === undefined) return undefined;
  const m = /^(-?)(\d+)(?:\.(\d{1,9})\d*)?$/.exec(v.trim());
  if (!m) return undefined;
  let sec = Number(m[2]);
  let nsec = m[3] ? Number(m[3].padEnd(9, '0')) : 0;
  if (m[1] === '-') {
    sec = -sec;
    if (nsec) {
      sec -= 1;
      nsec = 1e9 - nsec;
    }
  }
  return { sec, nsec };
}

function xattrsOf(pax: Record<string, string> | null | undefined): [string, Buffer][] {
  const out: [string, Buffer][] = [];
  if (!pax) return out;
  for (const [k, v] of Object.entries(pax)) {
    if (k.startsWith('SCHILY.xattr.')) out.push([k.slice('SCHILY.xattr.'.length), Buffer.from(v, 'latin1')]);
    else if (k.startsWith('LIBARCHIVE.xattr.')) out.push([decodeURIComponent(k.slice('LIBARCHIVE.xattr.'.length)), Buffer.from(v, 'base64')]);
  }
  return out;
}

/** Extracts the tar stream `tar` into the empty directory `dir` (a byte-string path). */
export async function extractLayer(tar: Readable, dir: string, opts: ExtractOptions): Promise<ExtractStats> {
  return new LayerExtractor(dir, opts).run(tar);
}

/** An entry's content stream, as tar-stream's extractor yields it. */
type TarEntry = ExtractEvents['entry'][1];

/** One tar entry, its name checked and split. */
interface LayerEntry {
  stream: TarEntry;
  header: Header;
  pax: Record<string, string> | undefined;
  /** The name as the tar gives it (GNU sparse files: the real name), for messages. */
  name: string;
  /** The cleaned path inside the layer ('' = the layer root), its parent and last component. */
  rel: string;
  parent: string;
  base: string;
}

/**
 * One extraction (as umoci's `oci/layer` unpacker): the state it keeps while the tar
 * streams past, and one method per kind of entry. Used once, through `extractLayer`.
 *
 * State: `created` is everything this layer made, by path ('' is the root) — the only
 * thing a parent component or hard-link target is checked against (see the module
 * comment); `dirTimes` and `opaque` are applied at the end (a child changes its
 * directory's times; an opaque marker applies whatever its tar position); `pending` holds
 * the background chain of each entry still writing its metadata.
 */
class LayerExtractor {
  private readonly created = new Map<string, Kind>([['', 'dir']]);
  private readonly dirTimes = new Map<string, Times>();
  private readonly opaque = new Set<string>();
  private readonly stats: ExtractStats = { entries: 0, size: 0 };
  private readonly owners: OwnerMode;
  private readonly rootless: boolean;
  // Each entry's creation and metadata calls run as a background chain, up to MAX_PENDING
  // at once, so the thread pool works on several entries while the tar is parsed (one
  // entry after another, each waiting for six round trips, was twice as slow as umoci).
  // Anything that depends on an earlier entry (replacing it, hard-linking to it, removing
  // a directory) first waits for that entry's chain.
  private readonly pending = new Map<string, Promise<void>>();
  private failure: unknown;

  constructor(
    private readonly dir: string,
    private readonly opts: ExtractOptions,
  ) {
    this.owners = opts.owners ?? 'chown';
    this.rootless = opts.overlayXattrs === 'user';
  }

  /** Extracts every entry of `tar`, then applies opaque markers and directory times. */
  async run(tar: Readable): Promise<ExtractStats> {
    const extract = byteExactTarExtract();
    const feeding = pipeline(tar, extract);
    feeding.catch(() => {}); // surfaced through the iterator below
    try {
      for await (const stream of extract) await this.entry(stream);
      await feeding;
      await this.settle();
    } catch (err) {
      tar.destroy();
      extract.destroy();
      // Let running chains finish before the caller removes the staging folder.
      await Promise.allSettled(this.pending.values());
      throw err instanceof LayerfsError ? err : wrapTarError(err, this.opts.what);
    }

    for (const d of this.opaque) await markOpaque(this.abs(d), this.opts.overlayXattrs ?? 'trusted');
    const dirs = [...this.dirTimes.entries()].sort((a, b) => b[0].split('/').length - a[0].split('/').length);
    for (const [d, t] of dirs) await sys.utimens(this.abs(d), t.atime, t.mtime);
    return this.stats;
  }

  private abs(rel: string): Buffer {
    return toFsPath(rel === '' ? this.dir : `${this.dir}/${rel}`);
  }

  /** One tar entry: a whiteout marker, or an object with its metadata. */
  private async entry(stream: TarEntry): Promise<void> {
    const h = stream.header;
    const pax = (h.pax ?? undefined) as Record<string, string> | undefined;
    const name = pax && isSparse(pax) ? sparseName(pax, h.name) : h.name;
    this.stats.entries++;
    const rel = cleanLayerPath(name, { mode: 'reject', what: 'tar entry' });
    const e: LayerEntry = { stream, header: h, pax, name, rel, parent: parentOf(rel), base: baseOf(rel) };
    if (h.size !== undefined && h.size > this.opts.maxEntrySize) {
      throw new LayerfsError('LIMIT_EXCEEDED', `tar entry ${JSON.stringify(name)} claims ${h.size} bytes, over the ${this.opts.maxEntrySize}-byte limit`);
    }
    const wh = rel === '' ? ({ kind: 'none' } as const) : classifyName(e.base, name);
    if (wh.kind !== 'none') {
      stream.resume();
      await this.whiteout(e, wh);
      return;
    }
    await this.object(e);
  }

  /** A `.wh.` entry: a whiteout (0/0 device) for its target, or its directory made opaque. */
  private async whiteout(e: LayerEntry, wh: Exclude<WhiteoutKind, { kind: 'none' }>): Promise<void> {
    if (wh.kind === 'ignore') return;
    if (underLayerNonDir(this.created, e.parent)) return; // see whiteout-policy: that entry hides it all
    await this.ensureDir(e.parent, e.name);
    if (wh.kind === 'opaque') {
      this.opaque.add(e.parent);
      return;
    }
    const target = e.parent === '' ? wh.target : `${e.parent}/${wh.target}`;
    if (this.created.has(target)) return; // a whiteout never removes its own layer's entries
    await mknodWhiteout(this.abs(target));
    this.created.set(target, 'whiteout');
  }

  /** A directory, file, symlink, hard link or node, then its owner, xattrs and times. */
  private async object(e: LayerEntry): Promise<void> {
    const { header: h, pax, name, rel } = e;
    const uid = pax?.uid !== undefined ? Number(pax.uid) : (h.uid ?? 0);
    const gid = pax?.gid !== undefined ? Number(pax.gid) : (h.gid ?? 0);
    const mode = (h.mode ?? 0o644) & 0o7777;
    const mtime = parsePaxTime(pax?.mtime) ?? { sec: Math.floor((h.mtime?.getTime() ?? 0) / 1000), nsec: 0 };
    const times: Times = { mtime, atime: parsePaxTime(pax?.atime) ?? mtime };
    const p = this.abs(rel);

    if (rel === '') {
      if (h.type !== 'directory') throw new LayerfsError('INVALID_IMAGE', `tar entry ${JSON.stringify(name)} names the layer root but is not a directory`);
    } else {
      await this.ensureDir(e.parent, name);
      if (!(h.type === 'directory' && this.created.get(rel) === 'dir')) await this.clear(rel);
    }

    const owner: ImageOwner = { uid, gid, mode };
    let made: Made;
    switch (h.type) {
      case 'directory':
        made = await this.directory(e, p, times);
        break;
      case 'file':
      case 'contiguous-file':
        made = await this.file(e, p);
        break;
      case 'symlink':
        made = this.symlink(e, p);
        break;
      case 'link':
        await this.hardLink(e, p);
        return; // a hard link shares its target's inode and metadata
      case 'character-device':
      case 'block-device':
      case 'fifo':
        made = this.node(e, p, owner);
        break;
      default:
        throw new LayerfsError('INVALID_IMAGE', `tar entry ${JSON.stringify(name)} has an unsupported type (${String(h.type)})`);
    }

    const xattrs = xattrsOf(pax);
    for (const [xname] of xattrs) checkXattrName(xname, name);
    const type = h.type;
    const { create, owned } = made;
    await this.inBackground(rel, async () => {
      await create?.();
      await applyOwnership(p, owned, owner, this.owners);
      for (const [xname, value] of xattrs) await sys.lsetxattr(p, xname, value, 0);
      if (type !== 'directory') await sys.utimens(p, times.atime, times.mtime);
    });
  }

  private async directory(e: LayerEntry, p: Buffer, times: Times): Promise<Made> {
    e.stream.resume();
    if (!this.created.has(e.rel)) await mkdir(p, 0o700);
    this.created.set(e.rel, 'dir');
    this.dirTimes.set(e.rel, times);
    return { owned: 'dir' };
  }

  /** Content: sparse with holes, small files in memory (written in the chain), large ones streamed. */
  private async file(e: LayerEntry, p: Buffer): Promise<Made> {
    let create: (() => Promise<void>) | undefined;
    let size = e.header.size ?? 0;
    if (e.pax && isSparse(e.pax)) {
      size = await writeSparse(e.stream, p, e.pax, e.name, this.opts.maxEntrySize);
    } else if (size <= 1024 * 1024) {
      const chunks: Buffer[] = [];
      for await (const c of e.stream) chunks.push(c as Buffer);
      const data = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
      create = () => writeFile(p, data, { flag: 'wx', mode: 0o600 });
    } else {
      await pipeline(e.stream, createWriteStream(p, { flags: 'wx', mode: 0o600, highWaterMark: 1024 * 1024 }));
    }
    this.stats.size += size;
    this.created.set(e.rel, 'file');
    return { create, owned: 'file' };
  }

  private symlink(e: LayerEntry, p: Buffer): Made {
    e.stream.resume();
    const target = e.header.linkname ?? '';
    this.created.set(e.rel, 'symlink');
    return { create: () => symlink(toFsPath(target), p), owned: 'symlink' };
  }

  /** Only to an earlier file of this layer (anything else could be outside it). */
  private async hardLink(e: LayerEntry, p: Buffer): Promise<void> {
    e.stream.resume();
    const h = e.header;
    const target = cleanLayerPath(h.linkname ?? '', { mode: 'reject', what: `hard link target of ${JSON.stringify(e.name)}` });
    const k = this.created.get(target);
    if (k === undefined || k === 'dir' || k === 'whiteout') {
      throw new LayerfsError('UNSAFE_PATH', `tar entry ${JSON.stringify(e.name)} is a hard link to ${JSON.stringify(h.linkname)}, which is not an earlier file of this layer`);
    }
    await this.settle(target);
    await link(this.abs(target), p);
    this.created.set(e.rel, k);
  }

  /** A device node or fifo; in a rootless store a device is an empty file with an owner override. */
  private node(e: LayerEntry, p: Buffer, owner: ImageOwner): Made {
    e.stream.resume();
    const h = e.header;
    const major = h.devmajor ?? 0;
    const minor = h.devminor ?? 0;
    if (h.type === 'character-device' && major === 0 && minor === 0) refuseLiteralWhiteout(e.name);
    const type = h.type === 'fifo' ? fsc.S_IFIFO : h.type === 'block-device' ? fsc.S_IFBLK : fsc.S_IFCHR;
    const dev = h.type === 'fifo' ? 0 : sys.makedev(major, minor);
    let made: Made;
    if (this.rootless && h.type !== 'fifo') {
      owner.device = { kind: h.type === 'block-device' ? 'block' : 'char', major, minor };
      made = { create: () => writeFile(p, '', { flag: 'wx', mode: 0o600 }), owned: 'file' };
    } else {
      made = { create: () => sys.mknod(p, type | 0o600, dev), owned: h.type === 'fifo' ? 'fifo' : 'file' };
    }
    this.created.set(e.rel, 'other');
    return made;
  }

  /** Makes sure `rel` is a directory created by this layer, creating missing ones. */
  private async ensureDir(rel: string, entry: string): Promise<void> {
    if (rel === '') return;
    const parts = rel.split('/');
    let p = '';
    for (const part of parts) {
      p = p === '' ? part : `${p}/${part}`;
      const k = this.created.get(p);
      if (k === 'dir') continue;
      if (k === 'symlink') {
        throw new LayerfsError('UNSAFE_PATH', `tar entry ${JSON.stringify(entry)} is written through the symlink ${JSON.stringify(p)}`, {
          hint: 'the image is malformed or malicious; nothing was written outside the store',
        });
      }
      if (k === 'whiteout') await unlink(this.abs(p));
      else if (k !== undefined) throw new LayerfsError('INVALID_IMAGE', `tar entry ${JSON.stringify(entry)} is under ${JSON.stringify(p)}, which is not a directory`);
      await mkdir(this.abs(p), 0o755);
      this.created.set(p, 'dir');
    }
  }

  /** Removes what this layer put at `rel` before, so a later entry replaces it. */
  private async clear(rel: string): Promise<void> {
    const k = this.created.get(rel);
    if (k === undefined) return;
    await this.settle(k === 'dir' ? undefined : rel);
    if (k === 'dir') {
      await rm(this.abs(rel), { recursive: true, force: true });
      for (const key of [...this.created.keys()]) if (key === rel || key.startsWith(rel + '/')) this.created.delete(key);
      for (const key of [...this.dirTimes.keys()]) if (key === rel || key.startsWith(rel + '/')) this.dirTimes.delete(key);
      for (const key of [...this.opaque]) if (key === rel || key.startsWith(rel + '/')) this.opaque.delete(key);
    } else {
      await unlink(this.abs(rel));
      this.created.delete(rel);
    }
  }

  /** Queues `work` after `rel`'s earlier chain; waits while MAX_PENDING chains run. */
  private async inBackground(rel: string, work: () => Promise<void>): Promise<void> {
    const prev = this.pending.get(rel);
    const chain: Promise<void> = (prev ?? Promise.resolve())
      .then(work)
      .catch((e: unknown) => {
        this.failure ??= e;
      })
      .finally(() => {
        if (this.pending.get(rel) === chain) this.pending.delete(rel);
      });
    this.pending.set(rel, chain);
    if (this.pending.size >= MAX_PENDING) await Promise.race(this.pending.values());
    if (this.failure) throw this.failure;
  }

  /** Waits for `rel`'s chain (all chains when undefined); rethrows the first failure. */
  private async settle(rel?: string): Promise<void> {
    if (rel === undefined) await Promise.all(this.pending.values());
    else await this.pending.get(rel);
    if (this.failure) throw this.failure;
  }
}

/** True when a component of `parent` is something other than a directory this layer made. */
function underLayerNonDir(created: Map<string, Kind>, parent: string): boolean {
  if (parent === '') return false;
  let p = '';
  for (const part of parent.split('/')) {
    p = p === '' ? part : `${p}/${part}`;
    const k = created.get(p);
    if (k !== undefined && k !== 'dir') return true;
  }
  return false;
}

function wrapTarError(err: unknown, what: string): LayerfsError {
  const e = err as NodeJS.ErrnoException;
  if (typeof e?.code === 'string' && e.syscall) {
    return new LayerfsError('IO', `${what}: ${e.message}`, { cause: err });
  }
  return new LayerfsError('INVALID_IMAGE', `${what}: corrupt tar stream (${e?.message ?? String(err)})`, { cause: err });
}
