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
import { constants as fsc } from 'node:fs';
import * as sys from '../sys/native.js';
import { LayerfsError } from '../core/errors.js';
import { toFsPath } from '../core/filesystem.js';
import { baseOf, cleanLayerPath, parentOf } from '../core/safe-join.js';
import { byteExactTarExtract } from '../image/tar-reader.js';
import { isSparse, sparseName, writeSparse } from './sparse-file.js';
import { applyOwnership, type ImageOwner, type OwnedKind, type OwnerMode } from './extract-ownership.js';
import { checkXattrName, classifyName, mknodWhiteout, opaqueXattr, refuseLiteralWhiteout, type OverlayXattrs } from '../overlay/index.js';

/** Entry chains in flight at once during an extraction. */
const MAX_PENDING = 64;

type Kind = 'dir' | 'file' | 'symlink' | 'other' | 'whiteout';

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
  const created = new Map<string, Kind>([['', 'dir']]);
  const dirTimes = new Map<string, Times>();
  const opaque = new Set<string>();
  const stats: ExtractStats = { entries: 0, size: 0 };
  const owners = opts.owners ?? 'chown';
  const rootless = opts.overlayXattrs === 'user';
  const abs = (rel: string): Buffer => toFsPath(rel === '' ? dir : `${dir}/${rel}`);

  // Each entry's creation and metadata calls run as a background chain, up to MAX_PENDING
  // at once, so the thread pool works on several entries while the tar is parsed (one
  // entry after another, each waiting for six round trips, was twice as slow as umoci).
  // Anything that depends on an earlier entry (replacing it, hard-linking to it, removing
  // a directory) first waits for that entry's chain.
  const pending = new Map<string, Promise<void>>();
  let failure: unknown;
  const inBackground = async (rel: string, work: () => Promise<void>): Promise<void> => {
    const prev = pending.get(rel);
    const chain: Promise<void> = (prev ?? Promise.resolve())
      .then(work)
      .catch((e: unknown) => {
        failure ??= e;
      })
      .finally(() => {
        if (pending.get(rel) === chain) pending.delete(rel);
      });
    pending.set(rel, chain);
    if (pending.size >= MAX_PENDING) await Promise.race(pending.values());
    if (failure) throw failure;
  };
  const settle = async (rel?: string): Promise<void> => {
    if (rel === undefined) await Promise.all(pending.values());
    else await pending.get(rel);
    if (failure) throw failure;
  };

  /** Makes sure `rel` is a directory created by this layer, creating missing ones. */
  const ensureDir = async (rel: string, entry: string): Promise<void> => {
    if (rel === '') return;
    const parts = rel.split('/');
    let p = '';
    for (const part of parts) {
      p = p === '' ? part : `${p}/${part}`;
      const k = created.get(p);
      if (k === 'dir') continue;
      if (k === 'symlink') {
        throw new LayerfsError('UNSAFE_PATH', `tar entry ${JSON.stringify(entry)} is written through the symlink ${JSON.stringify(p)}`, {
          hint: 'the image is malformed or malicious; nothing was written outside the store',
        });
      }
      if (k === 'whiteout') await unlink(abs(p));
      else if (k !== undefined) throw new LayerfsError('INVALID_IMAGE', `tar entry ${JSON.stringify(entry)} is under ${JSON.stringify(p)}, which is not a directory`);
      await mkdir(abs(p), 0o755);
      created.set(p, 'dir');
    }
  };

  /** Removes what this layer put at `rel` before, so a later entry replaces it. */
  const clear = async (rel: string): Promise<void> => {
    const k = created.get(rel);
    if (k === undefined) return;
    await settle(k === 'dir' ? undefined : rel);
    if (k === 'dir') {
      await rm(abs(rel), { recursive: true, force: true });
      for (const key of [...created.keys()]) if (key === rel || key.startsWith(rel + '/')) created.delete(key);
      for (const key of [...dirTimes.keys()]) if (key === rel || key.startsWith(rel + '/')) dirTimes.delete(key);
      for (const key of [...opaque]) if (key === rel || key.startsWith(rel + '/')) opaque.delete(key);
    } else {
      await unlink(abs(rel));
      created.delete(rel);
    }
  };

  const extract = byteExactTarExtract();
  const feeding = pipeline(tar, extract);
  feeding.catch(() => {}); // surfaced through the iterator below
  try {
    for await (const entry of extract) {
      const h = entry.header;
      const pax = (h.pax ?? undefined) as Record<string, string> | undefined;
      const name = pax && isSparse(pax) ? sparseName(pax, h.name) : h.name;
      stats.entries++;
      const rel = cleanLayerPath(name, { mode: 'reject', what: 'tar entry' });
      const base = baseOf(rel);
      const parent = parentOf(rel);
      if (h.size !== undefined && h.size > opts.maxEntrySize) {
        throw new LayerfsError('LIMIT_EXCEEDED', `tar entry ${JSON.stringify(name)} claims ${h.size} bytes, over the ${opts.maxEntrySize}-byte limit`);
      }
      const wh = rel === '' ? ({ kind: 'none' } as const) : classifyName(base, name);
      if (wh.kind !== 'none') {
        entry.resume();
        if (wh.kind === 'ignore') continue;
        if (underLayerNonDir(created, parent)) continue; // see whiteout-policy: that entry hides it all
        await ensureDir(parent, name);
        if (wh.kind === 'opaque') {
          opaque.add(parent);
          continue;
        }
        const target = parent === '' ? wh.target : `${parent}/${wh.target}`;
        if (created.has(target)) continue; // a whiteout never removes its own layer's entries
        await mknodWhiteout(abs(target));
        created.set(target, 'whiteout');
        continue;
      }

      const uid = pax?.uid !== undefined ? Number(pax.uid) : (h.uid ?? 0);
      const gid = pax?.gid !== undefined ? Number(pax.gid) : (h.gid ?? 0);
      const mode = (h.mode ?? 0o644) & 0o7777;
      const mtime = parsePaxTime(pax?.mtime) ?? { sec: Math.floor((h.mtime?.getTime() ?? 0) / 1000), nsec: 0 };
      const times: Times = { mtime, atime: parsePaxTime(pax?.atime) ?? mtime };
      const p = abs(rel);

      if (rel === '') {
        if (h.type !== 'directory') throw new LayerfsError('INVALID_IMAGE', `tar entry ${JSON.stringify(name)} names the layer root but is not a directory`);
      } else {
        await ensureDir(parent, name);
        if (!(h.type === 'directory' && created.get(rel) === 'dir')) await clear(rel);
      }

      /** Creation deferred into the entry's background chain (small files, symlinks, nodes). */
      let create: (() => Promise<void>) | undefined;
      const owner: ImageOwner = { uid, gid, mode };
      let owned: OwnedKind = 'file';
      switch (h.type) {
        case 'directory':
          entry.resume();
          if (!created.has(rel)) await mkdir(p, 0o700);
          created.set(rel, 'dir');
          owned = 'dir';
          dirTimes.set(rel, times);
          break;
        case 'file':
        case 'contiguous-file': {
          let size = h.size ?? 0;
          if (pax && isSparse(pax)) {
            size = await writeSparse(entry, p, pax, name, opts.maxEntrySize);
          } else if (size <= 1024 * 1024) {
            const chunks: Buffer[] = [];
            for await (const c of entry) chunks.push(c as Buffer);
            const data = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
            create = () => writeFile(p, data, { flag: 'wx', mode: 0o600 });
          } else {
            await pipeline(entry, createWriteStream(p, { flags: 'wx', mode: 0o600, highWaterMark: 1024 * 1024 }));
          }
          stats.size += size;
          created.set(rel, 'file');
          break;
        }
        case 'symlink':
          entry.resume();
          create = () => symlink(toFsPath(h.linkname ?? ''), p);
          created.set(rel, 'symlink');
          owned = 'symlink';
          break;
        case 'link': {
          entry.resume();
          const target = cleanLayerPath(h.linkname ?? '', { mode: 'reject', what: `hard link target of ${JSON.stringify(name)}` });
          const k = created.get(target);
          if (k === undefined || k === 'dir' || k === 'whiteout') {
            throw new LayerfsError('UNSAFE_PATH', `tar entry ${JSON.stringify(name)} is a hard link to ${JSON.stringify(h.linkname)}, which is not an earlier file of this layer`);
          }
          await settle(target);
          await link(abs(target), p);
          created.set(rel, k);
          continue; // a hard link shares its target's inode and metadata
        }
        case 'character-device':
        case 'block-device':
        case 'fifo': {
          entry.resume();
          const major = h.devmajor ?? 0;
          const minor = h.devminor ?? 0;
          if (h.type === 'character-device' && major === 0 && minor === 0) refuseLiteralWhiteout(name);
          const type = h.type === 'fifo' ? fsc.S_IFIFO : h.type === 'block-device' ? fsc.S_IFBLK : fsc.S_IFCHR;
          const dev = h.type === 'fifo' ? 0 : sys.makedev(major, minor);
          if (rootless && h.type !== 'fifo') {
            owner.device = { kind: h.type === 'block-device' ? 'block' : 'char', major, minor };
            create = () => writeFile(p, '', { flag: 'wx', mode: 0o600 });
          } else {
            create = () => sys.mknod(p, type | 0o600, dev);
            if (h.type === 'fifo') owned = 'fifo';
          }
          created.set(rel, 'other');
          break;
        }
        default:
          throw new LayerfsError('INVALID_IMAGE', `tar entry ${JSON.stringify(name)} has an unsupported type (${String(h.type)})`);
      }

      const xattrs = xattrsOf(pax);
      for (const [xname] of xattrs) checkXattrName(xname, name);
      const type = h.type;
      await inBackground(rel, async () => {
        await create?.();
        await applyOwnership(p, owned, owner, owners);
        for (const [xname, value] of xattrs) await sys.lsetxattr(p, xname, value, 0);
        if (type !== 'directory') await sys.utimens(p, times.atime, times.mtime);
      });
    }
    await feeding;
    await settle();
  } catch (err) {
    tar.destroy();
    extract.destroy();
    // Let running chains finish before the caller removes the staging folder.
    await Promise.allSettled(pending.values());
    throw err instanceof LayerfsError ? err : wrapTarError(err, opts.what);
  }

  const opaqueName = opaqueXattr(opts.overlayXattrs ?? 'trusted');
  for (const d of opaque) await sys.lsetxattr(abs(d), opaqueName, Buffer.from('y'), 0);
  const dirs = [...dirTimes.entries()].sort((a, b) => b[0].split('/').length - a[0].split('/').length);
  for (const [d, t] of dirs) await sys.utimens(abs(d), t.atime, t.mtime);
  return stats;
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
