/**
 * Ingests one layer blob into the store: the blob bytes are verified and kept under their
 * digest, the uncompressed stream is verified against the diff_id and extracted into a
 * staging folder `layers/tmp-…/diff`, which is renamed to `layers/<cache-id>` only when
 * everything checked out (after writing its `.pending` marker). The caller then commits the
 * layerdb entry, which clears the marker.
 */
import { mkdir, rename } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { Writable, type Readable } from 'node:stream';
import { shortId, type ChainId, type DiffId, type Digest } from '../core/digest.js';
import { Decompressor, Verifier, type Compression } from '../image/index.js';
import type { LoadLimits } from '../image/index.js';
import type { BlobStore } from './blob-store.js';
import { extractWithPrivilege, removeTree } from './layer-privilege.js';
import { newCacheId } from './layer-db.js';
import { writeMarker } from './layer-markers.js';
import { stagingName, type StorePaths } from './store-paths.js';

/** What ingesting a layer blob measured and produced. */
export interface IngestedLayer {
  blob: Digest;
  blobSize: number;
  /** False when the blob store already had this blob. */
  blobCreated: boolean;
  compression: Compression;
  /** Present when the layer was extracted. */
  cacheId?: string;
  size: number;
}

/** A layer tree extracted in a staging folder of the layers directory (see `extracted`). */
export interface PreExtracted {
  staging: string;
  size: number;
}

/** Options for one layer. */
export interface LayerIngestOptions {
  diffId: DiffId;
  /** The chain the new cache is for; named in its `.pending` marker (layer-markers.ts). */
  chainId: ChainId;
  expectedDigest?: Digest;
  expectedSize?: number;
  /** Extract into a new layer cache; false only verifies and keeps the blob. */
  extract: boolean;
  /**
   * The layer already extracted from the same tar by whoever wrote the blob (commit):
   * a staging folder `layers/tmp-…` holding `diff/`. The blob is still verified; the
   * folder becomes the cache instead of a second extraction.
   */
  extracted?: PreExtracted;
  limits: LoadLimits;
}

/** Streams `raw` through verification into the blob store and (optionally) a new layer cache. */
export async function ingestLayer(paths: StorePaths, blobs: BlobStore, raw: Readable, opts: LayerIngestOptions): Promise<IngestedLayer> {
  const what = `layer ${shortId(opts.diffId)}`;
  const ingest = await blobs.ingest();
  const blobCheck = new Verifier({ what: `${what} blob`, sink: ingest.stream, ...(opts.expectedDigest ? { expectedDigest: opts.expectedDigest } : {}), ...(opts.expectedSize !== undefined ? { expectedSize: opts.expectedSize } : {}) });
  const decompress = new Decompressor(what, opts.limits.maxZstdWindow);
  const diffCheck = new Verifier({ what: `${what} (uncompressed)`, expectedDigest: opts.diffId, limit: opts.limits.maxLayerSize });
  const staging = opts.extracted?.staging ?? `${paths.layersDir}/${stagingName()}`;
  try {
    let size = 0;
    let cacheId: string | undefined;
    if (opts.extract && !opts.extracted) {
      await mkdir(`${staging}/diff`, { recursive: true });
      const tar = raw.pipe(blobCheck).pipe(decompress).pipe(diffCheck);
      for (const s of [raw, blobCheck, decompress] as const) s.on('error', (e) => diffCheck.destroy(e));
      const stats = await extractWithPrivilege(tar, Buffer.from(`${staging}/diff`).toString('latin1'), { what, maxEntrySize: opts.limits.maxLayerSize });
      size = stats.size;
    } else {
      await pipeline(raw, blobCheck, decompress, diffCheck, new Writable({ write: (_c, _e, cb) => cb() }));
      if (opts.extract) size = opts.extracted!.size;
    }
    if (!blobCheck.measured || !diffCheck.measured) throw new Error('internal: layer stream ended before verification');
    const blobCreated = await ingest.commit(blobCheck.measured.digest);
    if (opts.extract) {
      cacheId = newCacheId();
      // Recorded before the cache gets its final name: a load killed before committing the
      // layerdb entry leaves a cache the next command can prove is garbage.
      await writeMarker(paths, 'pending', cacheId, opts.chainId);
      await rename(staging, paths.cache(cacheId));
    }
    const out: IngestedLayer = { blob: blobCheck.measured.digest, blobSize: blobCheck.measured.size, blobCreated, compression: decompress.compression ?? 'none', size };
    if (cacheId) out.cacheId = cacheId;
    return out;
  } catch (err) {
    raw.destroy();
    await ingest.abort();
    await removeTree(staging);
    throw err;
  }
}
