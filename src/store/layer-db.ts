/**
 * The layer database, `image/layerdb/sha256/<chain-id>/`, as Docker keeps it: one small
 * plain file per fact — `diff` (the diff_id), `size` (bytes of file content), `cache-id`
 * (the folder under `layers/` holding the extracted files), `parent` (the parent's chain
 * id; absent for a base layer) — plus `blob`, the digest of the compressed blob the layer
 * came from (so `save` can re-export it byte for byte). An entry appears in one rename,
 * after its layer cache is complete: a layerdb entry always points to a whole layer.
 * Cache creation and removal are bracketed by marker files (layer-markers.ts).
 */
import { listDigestNames } from './digest-names.js';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import * as sys from '../sys/native.js';
import { randomBytes } from 'node:crypto';
import { parseChainId, parseDiffId, parseDigest, type ChainId, type DiffId, type Digest } from '../core/digest.js';
import { LayerfsError, hasErrnoCode } from '../core/errors.js';
import { writeDirAtomic, writeFileAtomic } from './atomic.js';
import { clearMarker, writeMarker } from './layer-markers.js';
import { removeTree } from './layer-privilege.js';
import { stagingName, type StorePaths } from './store-paths.js';

/** One committed layer. */
export interface LayerRecord {
  chainId: ChainId;
  diffId: DiffId;
  size: number;
  cacheId: string;
  parent?: ChainId;
  /** Compressed blobs known to decompress to this diff (first = as first loaded). */
  blobs: Digest[];
}

/** A new random cache id (64 hex digits, like Docker's). */
export function newCacheId(): string {
  return randomBytes(32).toString('hex');
}

async function readText(path: string): Promise<string | undefined> {
  try {
    return (await readFile(path, 'utf8')).trim();
  } catch (err) {
    if (hasErrnoCode(err, 'ENOENT')) return undefined;
    throw err;
  }
}

/** The error for an entry file that does not read as written; names the file and the fix. */
export function damagedEntry(file: string, what: string, cause?: unknown): LayerfsError {
  return new LayerfsError('DAMAGED', `layerdb entry file ${file} is damaged: ${what}`, {
    ...(cause !== undefined ? { cause } : {}),
    hint: '`layerfs check` diagnoses the store; `layerfs check --repair` rebuilds the entry from the blobs it keeps (or load the image again)',
  });
}

function parseField<T>(file: string, value: string, parse: (v: string) => T, what: string): T {
  try {
    return parse(value);
  } catch (err) {
    throw damagedEntry(file, `${what} ${JSON.stringify(value.slice(0, 80))}`, err);
  }
}

/** Access to `image/layerdb`. */
export class LayerDb {
  constructor(private readonly paths: StorePaths) {}

  /**
   * The layer with this chain id, or undefined when it has no entry. An entry whose files
   * do not parse throws a DAMAGED error naming the file: it is never mistaken for "absent".
   */
  async get(chainId: ChainId): Promise<LayerRecord | undefined> {
    const dir = this.paths.layer(chainId);
    let diff: string | undefined;
    try {
      diff = await readText(`${dir}/diff`);
    } catch (err) {
      throw damagedEntry(`${dir}/diff`, (err as Error).message, err);
    }
    if (diff === undefined) {
      // No `diff` but a folder: an entry with its main file lost, not an absent one.
      if (await stat(dir).then(() => true, () => false)) throw damagedEntry(`${dir}/diff`, 'missing');
      return undefined;
    }
    const read = (n: string): Promise<string | undefined> => readText(`${dir}/${n}`).catch((err: unknown) => {
      throw damagedEntry(`${dir}/${n}`, (err as Error).message, err);
    });
    const [size, cacheId, parent, blobs] = await Promise.all([read('size'), read('cache-id'), read('parent'), read('blob')]);
    const diffId = parseField(`${dir}/diff`, diff, parseDiffId, 'bad diff id');
    if (size === undefined || !/^\d+$/.test(size)) throw damagedEntry(`${dir}/size`, size === undefined ? 'missing' : `bad size ${JSON.stringify(size.slice(0, 80))}`);
    if (cacheId === undefined || !/^[0-9a-f]{64}$/.test(cacheId)) {
      throw damagedEntry(`${dir}/cache-id`, cacheId === undefined ? 'missing' : `bad cache id ${JSON.stringify(cacheId.slice(0, 80))}`);
    }
    const rec: LayerRecord = {
      chainId,
      diffId,
      size: Number(size),
      cacheId,
      blobs: (blobs ?? '').split('\n').filter((b) => b !== '').map((b) => parseField(`${dir}/blob`, b, parseDigest, 'bad blob digest')),
    };
    if (parent) rec.parent = parseField(`${dir}/parent`, parent, parseChainId, 'bad parent chain id');
    return rec;
  }

  /** The raw cache-id file of an entry (no other checks), for cleanup's proofs; undefined when absent or unreadable. */
  async rawCacheId(chainId: ChainId): Promise<{ present: boolean; cacheId: string | undefined }> {
    const dir = this.paths.layer(chainId);
    const present = await stat(dir).then(() => true, () => false);
    const v = await readText(`${dir}/cache-id`).catch(() => undefined);
    return { present, cacheId: v !== undefined && /^[0-9a-f]{64}$/.test(v) ? v : undefined };
  }

  /** Commits a layer record; false when the chain id was already present. Clears its cache's pending marker. */
  async put(rec: LayerRecord): Promise<boolean> {
    const ok = await writeDirAtomic(this.paths.layer(rec.chainId), entryFiles(rec));
    if (ok) await clearMarker(this.paths, rec.cacheId, 'pending');
    return ok;
  }

  /**
   * Replaces the entry of `rec.chainId` (damaged, or its cache missing) with `rec`, whose
   * cache was just extracted: the new entry is swapped in with one RENAME_EXCHANGE, then
   * the old cache (if the old entry named a different one) is removed under a marker.
   */
  async replace(rec: LayerRecord, oldCacheId: string | undefined): Promise<void> {
    const target = this.paths.layer(rec.chainId);
    if (oldCacheId !== undefined && oldCacheId !== rec.cacheId) await writeMarker(this.paths, 'removing', oldCacheId, rec.chainId);
    const tmp = `${this.paths.layerdbStaging}/${stagingName()}`;
    await mkdir(tmp);
    for (const [name, content] of Object.entries(entryFiles(rec))) await writeFile(`${tmp}/${name}`, content);
    try {
      await sys.renameat2(tmp, target, sys.RENAME_EXCHANGE);
    } catch (err) {
      if (!hasErrnoCode(err, 'ENOENT')) throw err;
      await rename(tmp, target);
    }
    await rm(tmp, { recursive: true, force: true });
    await clearMarker(this.paths, rec.cacheId, 'pending');
    if (oldCacheId !== undefined && oldCacheId !== rec.cacheId) {
      await removeDir(this.paths.cache(oldCacheId), this.paths.layersDir);
      await clearMarker(this.paths, oldCacheId, 'removing');
    }
  }

  /** Drops a cache extracted under a `.pending` marker that will not be committed (check's comparison copy). */
  async discard(cacheId: string): Promise<void> {
    await removeDir(this.paths.cache(cacheId), this.paths.layersDir);
    await clearMarker(this.paths, cacheId, 'pending');
  }

  /** Records one more blob digest for an existing layer (same diff, other compression). */
  async addBlob(rec: LayerRecord, blob: Digest): Promise<void> {
    if (rec.blobs.includes(blob)) return;
    rec.blobs.push(blob);
    await writeFileAtomic(`${this.paths.layer(rec.chainId)}/blob`, rec.blobs.join('\n'));
  }

  /** All chain ids. */
  async list(): Promise<ChainId[]> {
    return listDigestNames(this.paths.layerdbDir, parseChainId);
  }

  /**
   * Removes the layerdb entry (first, so no reader can reach the cache) and its cache. The
   * caller has proven the layer unused; the `.removing` marker written first lets the next
   * command finish a removal this process did not (store-cleanup.ts).
   */
  async remove(rec: Pick<LayerRecord, 'chainId' | 'cacheId'>): Promise<void> {
    await writeMarker(this.paths, 'removing', rec.cacheId, rec.chainId);
    await this.finishRemoval(rec.chainId, rec.cacheId);
  }

  /**
   * Completes a recorded removal: the entry goes if it still names `cacheId` (or cannot be
   * read: the removal was decided on a readable entry), then the cache, then the marker.
   */
  async finishRemoval(chainId: ChainId, cacheId: string): Promise<void> {
    const raw = await this.rawCacheId(chainId);
    if (raw.present && (raw.cacheId === undefined || raw.cacheId === cacheId)) await removeDir(this.paths.layer(chainId), this.paths.layerdbStaging);
    await removeDir(this.paths.cache(cacheId), this.paths.layersDir);
    await clearMarker(this.paths, cacheId, 'removing');
  }
}

function entryFiles(rec: LayerRecord): Record<string, string> {
  const files: Record<string, string> = { diff: rec.diffId, size: String(rec.size), 'cache-id': rec.cacheId, blob: rec.blobs.join('\n') };
  if (rec.parent) files.parent = rec.parent;
  return files;
}

/** Renames `dir` to a staging name in `stagingParent` (one step: no reader sees half of it), then deletes it. */
async function removeDir(dir: string, stagingParent: string): Promise<void> {
  const gone = `${stagingParent}/${stagingName()}`;
  try {
    await rename(dir, gone);
  } catch (err) {
    if (hasErrnoCode(err, 'ENOENT')) return;
    throw err;
  }
  // A rootless store's caches hold files of subordinate uids: removed inside the userns.
  await removeTree(gone);
}
