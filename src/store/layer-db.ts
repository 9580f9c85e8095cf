/**
 * The layer database, `image/layerdb/sha256/<chain-id>/`, as Docker keeps it: one small
 * plain file per fact — `diff` (the diff_id), `size` (bytes of file content), `cache-id`
 * (the folder under `layers/` holding the extracted files), `parent` (the parent's chain
 * id; absent for a base layer) — plus `blob`, the digest of the compressed blob the layer
 * came from (so `save` can re-export it byte for byte). An entry appears in one rename,
 * after its layer cache is complete: a layerdb entry always points to a whole layer.
 */
import { listDigestNames } from './digest-names.js';
import { readFile, readdir, rename, rm } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { parseChainId, parseDiffId, parseDigest, type ChainId, type DiffId, type Digest } from '../core/digest.js';
import { LayerfsError, hasErrnoCode } from '../core/errors.js';
import { writeDirAtomic, writeFileAtomic } from './atomic.js';
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

/** Access to `image/layerdb`. */
export class LayerDb {
  constructor(private readonly paths: StorePaths) {}

  /** The layer with this chain id, or undefined. */
  async get(chainId: ChainId): Promise<LayerRecord | undefined> {
    const dir = this.paths.layer(chainId);
    const diff = await readText(`${dir}/diff`);
    if (diff === undefined) return undefined;
    const [size, cacheId, parent, blobs] = await Promise.all([
      readText(`${dir}/size`),
      readText(`${dir}/cache-id`),
      readText(`${dir}/parent`),
      readText(`${dir}/blob`),
    ]);
    if (cacheId === undefined || !/^[0-9a-f]{64}$/.test(cacheId)) {
      throw new LayerfsError('INVALID_IMAGE', `layerdb entry ${chainId} is damaged (bad cache-id)`, { hint: 'remove it and load the image again' });
    }
    const rec: LayerRecord = {
      chainId,
      diffId: parseDiffId(diff),
      size: Number(size ?? 0),
      cacheId,
      blobs: (blobs ?? '').split('\n').filter((b) => b !== '').map((b) => parseDigest(b)),
    };
    if (parent) rec.parent = parseChainId(parent);
    return rec;
  }

  /** Commits a layer record; false when the chain id was already present. */
  async put(rec: LayerRecord): Promise<boolean> {
    const files: Record<string, string> = { diff: rec.diffId, size: String(rec.size), 'cache-id': rec.cacheId, blob: rec.blobs.join('\n') };
    if (rec.parent) files.parent = rec.parent;
    return writeDirAtomic(this.paths.layer(rec.chainId), files);
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

  /** Removes the layerdb entry (first, so no reader can reach the cache) and its cache. */
  async remove(rec: LayerRecord): Promise<void> {
    // Renamed away first, so a crash mid-delete leaves staging garbage, not a half entry.
    const gone = `${this.paths.layerdbStaging}/${stagingName()}`;
    await rename(this.paths.layer(rec.chainId), gone);
    await rm(gone, { recursive: true, force: true });
    const goneCache = `${this.paths.layersDir}/${stagingName()}`;
    await rename(this.paths.cache(rec.cacheId), goneCache).catch(() => {});
    await removeTree(goneCache);
  }
}
