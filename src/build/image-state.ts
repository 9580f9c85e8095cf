/**
 * The image a build step starts from and produces: the exact config bytes (so a cached
 * step gives back the same image id) and the manifest's layer descriptors, whose blobs
 * and layer caches the store already holds. A state becomes a stored image only when a
 * step must mount it (RUN, COPY) or the build tags it: then it is written as an OCI
 * layout whose blobs are hard links into the store, and loaded by `layerfs load`'s own
 * loader — layers it already has are reused, never extracted or copied again.
 */
import { copyFile, link, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { chainIds, digestHex, digestOf, parseDigest, shortId, type ChainId, type Digest } from '../core/digest.js';
import { LayerfsError } from '../core/errors.js';
import { DEFAULT_PATH, MediaType, parseManifest, type Descriptor, type HistoryEntry, hostPlatform, fullString, parseReference } from '../image/index.js';
import { markBuilt, loadImages, stagingName } from '../store/index.js';
import type { Store } from '../store/index.js';

/** The full image config, as JSON (fields layerfs does not know are kept). */
export type ConfigDoc = Record<string, unknown> & {
  config?: Record<string, unknown>;
  rootfs: { type: 'layers'; diff_ids: string[] };
  history?: HistoryEntry[];
};

/** An image in the making. */
export interface ImageState {
  configBytes: string;
  layers: Descriptor[];
  /** The id of the stored image with exactly these config bytes, once stored. */
  stored?: Digest;
}

/** The config document of a state. */
export function configOf(s: ImageState): ConfigDoc {
  return JSON.parse(s.configBytes) as ConfigDoc;
}

/** The image id (config digest) a state has or will have. */
export function idOf(s: ImageState): Digest {
  return digestOf(s.configBytes);
}

/** The chain id of the top layer, or undefined for an image without layers. */
export function topChain(s: ImageState): ChainId | undefined {
  return chainIds(configOf(s).rootfs.diff_ids as never).at(-1);
}

/** A state with `config` as its new config (not stored yet). */
export function withConfig(s: ImageState, config: ConfigDoc): ImageState {
  return { configBytes: JSON.stringify(config), layers: s.layers };
}

/** History comment BuildKit writes on Dockerfile steps. */
export const HISTORY_COMMENT = 'buildkit.dockerfile.v0';

/** `FROM scratch`: no layers, the default PATH (as BuildKit's empty image has). */
export function scratchState(): ImageState {
  const p = hostPlatform();
  const config: ConfigDoc = {
    architecture: p.architecture,
    os: p.os,
    ...(p.variant ? { variant: p.variant } : {}),
    config: { Env: [DEFAULT_PATH] },
    rootfs: { type: 'layers', diff_ids: [] },
    history: [],
  };
  return withConfig({ configBytes: '', layers: [] }, config);
}

/** The state of a stored image. */
export async function stateOfImage(store: Store, id: Digest): Promise<ImageState> {
  const { bytes } = await store.images.config(id);
  const m = await store.images.getMeta(id, 'manifest');
  if (!m) throw new LayerfsError('NOT_FOUND', `image ${shortId(id)} has no stored manifest`, { hint: 'load the image again' });
  const manifest = parseManifest(await readFile(store.paths.blob(parseDigest(m))));
  return { configBytes: bytes.toString('utf8'), layers: manifest.layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })), stored: id };
}

/** Whether every layer of a state is still in the store (a cache entry is usable only then). */
export async function layersPresent(store: Store, s: ImageState): Promise<boolean> {
  for (const chain of chainIds(configOf(s).rootfs.diff_ids as never)) {
    // A damaged entry counts as absent: the build then loads the layer again, which repairs it.
    if (!(await store.layers.get(chain).catch(() => undefined))) return false;
  }
  for (const l of s.layers) if (!(await store.blobs.has(l.digest))) return false;
  return true;
}

/** Where builds stage their layouts and keep their cache. */
export function buildDir(store: Store): string {
  return `${store.paths.root}/build-cache`;
}

/**
 * Stores a state as an image (tagged `reference` if given); returns the state with its id.
 * An image stored here without a reference is an intermediate of the build cache.
 */
export async function storeState(store: Store, s: ImageState, reference?: string): Promise<ImageState> {
  const id = idOf(s);
  const ref = reference ? parseReference(reference) : undefined;
  if (await store.images.configBytes(id)) {
    // Already stored (a cached build): only the tag moves.
    if (ref) await store.withLock(() => store.tags.set(ref, id));
    return { ...s, stored: id };
  }
  const layout = `${buildDir(store)}/${stagingName()}`;
  const blobs = `${layout}/blobs/sha256`;
  await mkdir(blobs, { recursive: true });
  try {
    for (const l of s.layers) {
      const dst = `${blobs}/${digestHex(l.digest)}`;
      await link(store.paths.blob(l.digest), dst).catch(() => copyFile(store.paths.blob(l.digest), dst));
    }
    await writeFile(`${blobs}/${digestHex(id)}`, s.configBytes);
    const manifest = Buffer.from(JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.ociManifest,
      config: { mediaType: MediaType.ociConfig, digest: id, size: Buffer.byteLength(s.configBytes) },
      layers: s.layers,
    }));
    const mDigest = digestOf(manifest);
    await writeFile(`${blobs}/${digestHex(mDigest)}`, manifest);
    const desc: Record<string, unknown> = { mediaType: MediaType.ociManifest, digest: mDigest, size: manifest.length };
    if (ref) desc.annotations = { 'io.containerd.image.name': fullString(ref), 'org.opencontainers.image.ref.name': ref.tag ?? 'latest' };
    await writeFile(`${layout}/index.json`, JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [desc] }));
    await writeFile(`${layout}/oci-layout`, JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    await loadImages(store, { input: layout });
    if (!ref) await markBuilt(store.images, id, 'intermediate');
    return { ...s, stored: id };
  } finally {
    await rm(layout, { recursive: true, force: true });
  }
}

/** Removes staging folders of builds whose process is gone. */
export async function clearStaleStaging(store: Store): Promise<void> {
  const dir = buildDir(store);
  for (const n of await readdir(dir).catch(() => [] as string[])) {
    const m = /^tmp-(\d+)-/.exec(n);
    if (!m) continue;
    try {
      process.kill(Number(m[1]), 0);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EPERM') await rm(`${dir}/${n}`, { recursive: true, force: true });
    }
  }
}
