/**
 * `layerfs load`: brings every image of an archive into the store, all or nothing.
 *
 * Order of commits, each a rename: layer caches and their layerdb entries (bottom up, a
 * layer already present by chain id is reused — "Already exists" — unless its entry is
 * damaged or its cache is gone, then it is extracted again), blobs and manifests,
 * then image configs, then tags. If anything fails, what this load added is removed again,
 * so bad input leaves the store as it was. A load killed outright leaves only staging
 * names (cleared by the next command) and layer caches under a `.pending` marker, which the
 * next command removes if their layerdb entry was never committed (layer-markers.ts).
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { open, rm, stat } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import { chainIdOf, digestOf, shortId, type ChainId, type Digest, type DiffId } from '../core/digest.js';
import { LayerfsError } from '../core/errors.js';
import {
  DirSource,
  TarSource,
  type ArchiveSource,
  readArchive,
  type ImageToLoad,
  Decompressor,
  detectCompression,
  type Compression,
  defaultLimits,
  type LoadLimits,
  MediaType,
  type Platform,
  hostPlatform,
  familiarString,
  parseReference,
} from '../image/index.js';
import { ingestLayer, type PreExtracted } from './layer-ingest.js';
import type { LayerRecord } from './layer-db.js';
import { stagingName } from './store-paths.js';
import type { Store } from './store.js';

/** Progress of a load, for the CLI to print. */
export type LoadEvent =
  | { type: 'layer'; diffId: string; status: 'Already exists' | 'Loaded' }
  | { type: 'image'; id: Digest; names: string[] }
  | { type: 'untagged'; name: string; previous: Digest }
  | { type: 'waiting'; pid: number | undefined };

/** Options for a load. */
export interface LoadOptions {
  /** A file, a directory (OCI layout), or '-' for stdin. */
  input: string;
  /**
   * An already-open archive to read instead of `input` (used by `pull`, whose blobs come
   * from a registry download folder); it is closed when the load ends.
   */
  source?: ArchiveSource;
  platform?: Platform;
  repository?: string;
  limits?: Partial<LoadLimits>;
  onEvent?: (e: LoadEvent) => void;
  /** Stdin replacement for tests. */
  stdin?: Readable;
  /** Layers their writer already extracted, by diff_id (layer-ingest.ts `extracted`). */
  extracted?: Map<DiffId, PreExtracted>;
}

/** What a load stored. */
export interface LoadResult {
  images: { id: Digest; names: string[] }[];
}

/** Spools a stream (decompressing a gzip/zstd archive) into a file under the store's tmp/. */
async function spool(store: Store, input: Readable, limits: LoadLimits): Promise<string> {
  const file = `${store.paths.tmpDir}/${stagingName()}.tar`;
  try {
    await pipeline(input, new Decompressor('archive', limits.maxZstdWindow), createWriteStream(file, { flags: 'wx' }));
  } catch (err) {
    await rm(file, { force: true });
    throw err;
  }
  return file;
}

/** Opens a spooled archive; a spool that is no archive (truncated, not a tar) is removed at once. */
async function openSpooled(file: string, name?: string): Promise<{ src: ArchiveSource; spooled: string }> {
  try {
    return { src: await TarSource.open(file, name), spooled: file };
  } catch (err) {
    await rm(file, { force: true });
    throw err;
  }
}

async function openSource(store: Store, opts: LoadOptions, limits: LoadLimits): Promise<{ src: ArchiveSource; spooled?: string }> {
  if (opts.source) return { src: opts.source };
  if (opts.input === '-') {
    return openSpooled(await spool(store, opts.stdin ?? process.stdin, limits), 'stdin');
  }
  let st;
  try {
    st = await stat(opts.input);
  } catch (err) {
    throw new LayerfsError('NOT_FOUND', `cannot open ${opts.input}: ${(err as Error).message}`, { cause: err });
  }
  if (st.isDirectory()) return { src: new DirSource(opts.input) };
  const fh = await open(opts.input, 'r');
  const head = Buffer.alloc(4);
  await fh.read(head, 0, 4, 0);
  await fh.close();
  if (detectCompression(head) !== 'none') {
    return openSpooled(await spool(store, createReadStream(opts.input), limits), opts.input);
  }
  return { src: await TarSource.open(opts.input) };
}

function layerMediaType(c: Compression): string {
  return c === 'gzip' ? MediaType.dockerLayerGzip : c === 'zstd' ? MediaType.ociLayerZstd : MediaType.dockerLayer;
}

/** Loads an archive into the store (takes the store lock). */
export async function loadImages(store: Store, opts: LoadOptions): Promise<LoadResult> {
  const limits = { ...defaultLimits(), ...opts.limits };
  const emit = opts.onEvent ?? (() => {});
  return store.withLock(async () => {
    const { src, spooled } = await openSource(store, opts, limits);
    const added = { layers: [] as LayerRecord[], blobs: [] as Digest[], images: [] as Digest[] };
    try {
      const found = await readArchive(src, { platform: opts.platform ?? hostPlatform(), limits, ...(opts.repository ? { repository: opts.repository } : {}) });
      const manifests: { img: ImageToLoad; manifest: Buffer; digest: Digest }[] = [];
      for (const img of found) {
        const layerBlobs = await loadLayers(store, src, img, { limits, extracted: opts.extracted }, added, emit);
        let manifest = img.manifestBytes;
        let digest = img.manifestDigest;
        if (!manifest || !digest) {
          manifest = Buffer.from(JSON.stringify({
            schemaVersion: 2,
            mediaType: MediaType.dockerManifest,
            config: { mediaType: MediaType.dockerConfig, size: img.configBytes.length, digest: img.configDigest },
            layers: layerBlobs.map((l) => ({ mediaType: layerMediaType(l.compression), size: l.size, digest: l.digest })),
          }));
          digest = digestOf(manifest);
        }
        manifests.push({ img, manifest, digest });
      }
      for (const { img, manifest, digest } of manifests) {
        if (!(await store.blobs.has(digest))) added.blobs.push(digest);
        await store.blobs.putBytes(digest, manifest);
        if (!(await store.images.configBytes(img.configDigest))) {
          added.images.push(img.configDigest);
          await store.images.put(img.configDigest, img.configBytes);
        }
        await store.images.setMeta(img.configDigest, 'manifest', digest);
        await store.images.setMeta(img.configDigest, 'lastUpdated', new Date().toISOString());
      }
      const result: LoadResult = { images: [] };
      for (const { img } of manifests) {
        for (const name of img.names) {
          const ref = parseReference(name);
          const previous = await store.tags.set(ref, img.configDigest);
          if (previous) emit({ type: 'untagged', name: familiarString(ref), previous });
        }
        const names = img.names.map((n) => familiarString(parseReference(n)));
        emit({ type: 'image', id: img.configDigest, names });
        result.images.push({ id: img.configDigest, names });
      }
      return result;
    } catch (err) {
      for (const id of added.images) await store.images.remove(id).catch(() => {});
      for (const l of added.layers.reverse()) await store.layers.remove(l).catch(() => {});
      for (const b of added.blobs) await store.blobs.remove(b).catch(() => {});
      throw err;
    } finally {
      await src.close();
      if (spooled) await rm(spooled, { force: true });
    }
  }, (pid) => emit({ type: 'waiting', pid }));
}

interface LoadedBlob {
  digest: Digest;
  size: number;
  compression: Compression;
}

async function loadLayers(
  store: Store,
  src: ArchiveSource,
  img: ImageToLoad,
  { limits, extracted }: { limits: LoadLimits; extracted: Map<DiffId, PreExtracted> | undefined },
  added: { layers: LayerRecord[]; blobs: Digest[] },
  emit: (e: LoadEvent) => void,
): Promise<LoadedBlob[]> {
  const out: LoadedBlob[] = [];
  let parent: ChainId | undefined;
  for (const [i, layer] of img.layers.entries()) {
    const diffId = img.config.rootfs.diff_ids[i]!;
    const chain = chainIdOf(parent, diffId);
    const d = layer.descriptor;
    if (d) {
      const actual = await src.size(layer.path);
      if (actual === undefined) throw new LayerfsError('INVALID_IMAGE', `${src.name}: layer blob ${d.digest} is missing`);
      if (actual !== d.size) throw new LayerfsError('DIGEST_MISMATCH', `layer blob ${d.digest}: ${actual} bytes, but its descriptor declares ${d.size}`);
    }
    const found = await usableLayer(store, chain);
    const existing = found.record;
    const haveBlob = d ? (await store.blobs.has(d.digest)) && existing?.blobs.includes(d.digest) : false;
    if (existing && haveBlob && d) {
      emit({ type: 'layer', diffId, status: 'Already exists' });
      out.push({ digest: d.digest, size: d.size, compression: compressionOf(d.mediaType) });
    } else {
      // A pre-extracted tree is a folder: it can become one cache only (once per load).
      const pre = existing ? undefined : extracted?.get(diffId);
      if (pre) extracted!.delete(diffId);
      const res = await ingestLayer(store.paths, store.blobs, await src.stream(layer.path), {
        diffId,
        chainId: chain,
        extract: !existing,
        limits,
        ...(pre ? { extracted: pre } : {}),
        ...(d ? { expectedDigest: d.digest, expectedSize: d.size } : {}),
      });
      if (res.blobCreated && !added.blobs.includes(res.blob)) added.blobs.push(res.blob);
      if (existing) {
        await store.layers.addBlob(existing, res.blob);
        emit({ type: 'layer', diffId, status: 'Already exists' });
      } else {
        const rec: LayerRecord = { chainId: chain, diffId, size: res.size, cacheId: res.cacheId!, blobs: [res.blob] };
        if (parent) rec.parent = parent;
        if (found.damaged) {
          // The entry was there but unusable (unreadable, or its cache gone): replaced, and
          // not rolled back on failure — the old one was no use either.
          await store.layers.replace(rec, found.oldCacheId);
          emit({ type: 'layer', diffId, status: 'Loaded' });
        } else {
          if (!(await store.layers.put(rec))) throw new LayerfsError('IO', `layer ${shortId(chain)} appeared while loading (store lock not honoured?)`);
          added.layers.push(rec);
          emit({ type: 'layer', diffId, status: 'Loaded' });
        }
      }
      out.push({ digest: res.blob, size: res.blobSize, compression: res.compression });
    }
    parent = chain;
  }
  return out;
}

/**
 * The stored layer of `chain` if it can be served: its entry reads and its cache folder is
 * there. A damaged entry or a missing cache is reported as `damaged`, so the load extracts
 * the layer again instead of saying "Already exists" over a layer that is gone.
 */
async function usableLayer(store: Store, chain: ChainId): Promise<{ record?: LayerRecord; damaged: boolean; oldCacheId?: string }> {
  let rec: LayerRecord | undefined;
  try {
    rec = await store.layers.get(chain);
  } catch (err) {
    if (!(err instanceof LayerfsError && err.code === 'DAMAGED')) throw err;
    const raw = await store.layers.rawCacheId(chain);
    return { damaged: true, ...(raw.cacheId !== undefined ? { oldCacheId: raw.cacheId } : {}) };
  }
  if (!rec) return { damaged: false };
  const cache = await stat(store.paths.diff(rec.cacheId)).catch(() => undefined);
  if (!cache?.isDirectory()) return { damaged: true, oldCacheId: rec.cacheId };
  return { record: rec, damaged: false };
}

function compressionOf(mediaType: string): Compression {
  return mediaType.endsWith('gzip') ? 'gzip' : mediaType.endsWith('zstd') ? 'zstd' : 'none';
}
