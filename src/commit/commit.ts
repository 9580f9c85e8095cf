/**
 * `layerfs commit`: a container's writable layer becomes a new image layer.
 *
 * The changes are written as an OCI layer tar (layer-tar.ts), gzipped, hashed on the
 * way (diff_id over the tar, digest over the gzip); the image config gets the new
 * diff_id, a history entry and any `--change`s; a manifest lists the image's blobs plus
 * the new one. All of it is laid out as an OCI image layout in a staging folder under
 * the container's folder (the image's existing blobs hard-linked, not copied: same
 * filesystem as the store; not the store's tmp/, which the loader clears when it takes
 * the lock), and that layout is loaded as `layerfs load` loads one (store/layout-import.ts).
 */
import { createWriteStream } from 'node:fs';
import { access, copyFile, link, mkdir, readdir, readFile, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { PassThrough } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { pack } from 'tar-stream';
import { ChunkBatcher } from '../core/chunk-batcher.js';
import { digestHex, parseDiffId, parseDigest, type Digest } from '../core/digest.js';
import { LayerfsError } from '../core/errors.js';
import { defaultLimits, type Descriptor, familiarString, MediaType, parseJsonObject, parseManifest, parseReference } from '../image/index.js';
import { extractWithPrivilege, HashTap, loadLayoutImage, removeTree, stagingName, type Store, unlockedStagingName } from '../store/index.js';
import { applyConfigChanges } from './config-changes.js';
import { openContainerView } from '../inspect/index.js';
import { writeLayerTar, type LayerTarStats } from './layer-tar.js';

/** What to commit and how to describe it. */
export interface CommitRequest {
  /** The container's image id and writable layer folder. */
  image: Digest;
  upperDir: string;
  /** Container name, for the default CREATED BY. */
  containerName: string;
  /** `name[:tag]` for the new image; untagged when absent. */
  reference?: string;
  message?: string;
  author?: string;
  changes?: string[];
  /** CREATED BY of the new history entry (default `layerfs commit NAME`); `build` gives the instruction. */
  createdBy?: string;
}

/** What a commit stored. */
export interface CommitResult {
  id: Digest;
  names: string[];
  diffId: Digest;
  blob: Digest;
  blobSize: number;
  tar: LayerTarStats;
}

/** Commits a container's writable layer as a new image (takes the store lock to load it). */
export async function commitContainer(store: Store, req: CommitRequest): Promise<CommitResult> {
  const ref = req.reference ? parseReference(req.reference) : undefined;
  const cv = await openContainerView(store, req.image, req.upperDir);
  const layout = `${dirname(req.upperDir)}/.commit-${stagingName()}`;
  await clearStaleLayouts(dirname(req.upperDir));
  const blobs = `${layout}/blobs/sha256`;
  // The new layer's cache, until the loader renames it into place (gone if it did).
  const staged = `${store.paths.layersDir}/${unlockedStagingName()}`;
  await mkdir(blobs, { recursive: true });
  try {
    // 1. The layer: tar → (diff_id) → gzip → (digest) → file, and the same tar into the
    // extractor the loader uses, writing the new layer cache in a staging folder of the
    // layers directory: the loader verifies the blob and renames that folder into place
    // instead of decompressing and extracting it a second time (the same code on the same
    // bytes, so the cache is what a load of the blob gives; `layerfs check` compares them).
    const tarTap = new HashTap();
    const gzTap = new HashTap();
    const tmpBlob = `${blobs}/layer.tmp`;
    const p = pack();
    await mkdir(`${staged}/diff`, { recursive: true });
    const toExtractor = new PassThrough();
    tarTap.pipe(toExtractor);
    const written = pipeline(p, new ChunkBatcher(), tarTap, createGzip(), gzTap, createWriteStream(tmpBlob, { flags: 'wx' }));
    const extracting = extractWithPrivilege(toExtractor, Buffer.from(`${staged}/diff`).toString('latin1'), { what: 'the new layer', maxEntrySize: defaultLimits().maxLayerSize });
    // Either side failing stops the other (a consumer that stops reading would stall the tee).
    written.catch((err: unknown) => toExtractor.destroy(err as Error));
    extracting.catch((err: unknown) => p.destroy(err as Error));
    let tar: LayerTarStats;
    try {
      tar = await writeLayerTar(cv, p);
      p.finalize();
    } catch (err) {
      p.destroy(err as Error);
      await Promise.allSettled([written, extracting]);
      throw err;
    }
    const [, extracted] = await Promise.all([written, extracting]);
    const diffId = tarTap.digest();
    const blob = gzTap.digest();
    await rename(tmpBlob, `${blobs}/${digestHex(blob)}`);

    // 2. The image's own blobs, linked into the layout.
    const manifestDigest = await store.images.getMeta(req.image, 'manifest');
    if (!manifestDigest) throw new LayerfsError('NOT_FOUND', `image ${req.image} has no stored manifest`, { hint: 'load the image again' });
    const base = parseManifest(await readFile(store.paths.blob(parseDigest(manifestDigest))));
    for (const l of base.layers) {
      const dst = `${blobs}/${digestHex(l.digest)}`;
      await link(store.paths.blob(l.digest), dst).catch(() => copyFile(store.paths.blob(l.digest), dst));
    }

    // 3. Config: the base config, byte-for-byte fields kept, plus the new layer.
    const { bytes } = await store.images.config(req.image);
    const config = parseJsonObject(bytes, 'image config') as Record<string, unknown> & { rootfs: { diff_ids: string[] }; history?: Record<string, unknown>[] };
    const now = new Date().toISOString();
    const history = [...(config.history ?? [])];
    const nonEmpty = history.filter((h) => !h.empty_layer).length;
    // Older images lack history: pad so each layer keeps its entry and ours pairs with ours.
    for (let i = nonEmpty; i < config.rootfs.diff_ids.length; i++) history.push({ created: config.created });
    const entry: Record<string, unknown> = { created: now, created_by: req.createdBy ?? `layerfs commit ${req.containerName}` };
    if (req.author) entry.author = req.author;
    if (req.message) entry.comment = req.message;
    history.push(entry);
    const newConfig: Record<string, unknown> = {
      ...config,
      created: now,
      rootfs: { ...config.rootfs, diff_ids: [...config.rootfs.diff_ids, diffId] },
      history,
    };
    if (req.author) newConfig.author = req.author;
    if (req.changes?.length) newConfig.config = applyConfigChanges(config.config as Record<string, unknown> | undefined, req.changes);

    // 4. Manifest in the base's family (Docker or OCI media types), index, and into the store.
    const docker = base.mediaType === MediaType.dockerManifest;
    const layers: Descriptor[] = base.layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size }));
    layers.push({ mediaType: docker ? MediaType.dockerLayerGzip : MediaType.ociLayerGzip, digest: blob, size: gzTap.size });
    const id = await loadLayoutImage(store, {
      layout,
      configBytes: Buffer.from(JSON.stringify(newConfig)),
      layers,
      docker,
      ref,
      extracted: new Map([[parseDiffId(diffId), { staging: staged, size: extracted.size }]]),
    });
    return { id, names: ref ? [familiarString(ref)] : [], diffId, blob, blobSize: gzTap.size, tar };
  } finally {
    await rm(layout, { recursive: true, force: true });
    // Gone when the loader took it; a rootless removal spawns a helper, so look first.
    if (await access(staged).then(() => true, () => false)) await removeTree(staged);
  }
}

/** Removes staging layouts of commits whose process is gone (killed mid-commit). */
async function clearStaleLayouts(dir: string): Promise<void> {
  for (const n of await readdir(dir).catch(() => [] as string[])) {
    const m = /^\.commit-tmp-(\d+)-/.exec(n);
    if (!m) continue;
    let alive = true;
    try {
      process.kill(Number(m[1]), 0);
    } catch (err) {
      alive = (err as NodeJS.ErrnoException).code === 'EPERM';
    }
    if (!alive) await rm(`${dir}/${n}`, { recursive: true, force: true });
  }
}
