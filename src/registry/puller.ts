/**
 * `layerfs pull`: resolves a reference on its registry, downloads what the store lacks —
 * in parallel, every blob verified in the download folder — and then imports the image
 * through the same loader `load` uses, under the store lock and all or nothing. A pull
 * killed at any moment leaves the store as it was (only `<root>/downloads/` may keep
 * verified or partial downloads, which the next pull of the same blobs resumes from).
 */
import { rm } from 'node:fs/promises';
import { chainIdOf, digestOf, layerShortId, type ChainId, type Digest } from '../core/digest.js';
import { LayerfsError } from '../core/errors.js';
import { defaultLimits, type Descriptor, familiarName, familiarString, fullString, hostPlatform, parseImageConfig, parseManifest, parseReference, type Platform, type Reference } from '../image/index.js';
import { loadImages, type Store } from '../store/index.js';
import { downloadBlob, pruneStaleDownloads } from './blob-downloader.js';
import { recordBlobSources } from './blob-sources.js';
import { readBody } from './http-transport.js';
import { pool } from './pool.js';
import { resolveManifest } from './manifest-fetcher.js';
import { PullSource } from './pull-source.js';
import { RegistryClient, registryError, type ClientOptions } from './registry-client.js';

/** Statuses of one layer, as docker prints them. */
export type LayerStatus = 'Pulling fs layer' | 'Already exists' | 'Waiting' | 'Downloading' | 'Verifying Checksum' | 'Download complete' | 'Pull complete';

/** Progress of a pull, for the CLI to print. */
export type PullEvent =
  | { type: 'start'; tagOrDigest: string; repository: string }
  | { type: 'layer'; id: string; status: LayerStatus; current?: number; total?: number }
  | { type: 'done'; digest: Digest; id: Digest; upToDate: boolean; reference: string }
  | { type: 'waiting'; pid: number | undefined };

/** Options for a pull. */
export interface PullOptions extends ClientOptions {
  platform?: Platform;
  /** Parallel layer downloads (default 3). */
  jobs?: number;
  onEvent?: (e: PullEvent) => void;
}

/** What a pull stored. */
export interface PullResult {
  id: Digest;
  digest: Digest;
  reference: string;
}

async function fetchConfig(client: RegistryClient, repo: string, d: Descriptor, what: string): Promise<Buffer> {
  const max = defaultLimits().maxJsonSize;
  if (d.size > max) throw new LayerfsError('LIMIT_EXCEEDED', `${what}: image config declares ${d.size} bytes, over the ${max}-byte limit`);
  const res = await client.call('GET', `/v2/${repo}/blobs/${d.digest}`, { scopes: [`repository:${repo}:pull`] });
  if (res.status !== 200) throw await registryError(res, `${what}: image config ${d.digest}`);
  const bytes = await readBody(res, max, `${what}: image config`);
  const got = digestOf(bytes);
  if (got !== d.digest) throw new LayerfsError('DIGEST_MISMATCH', `${what}: image config ${d.digest}: digest mismatch: got ${got}`);
  return bytes;
}

/** Pulls `refString` into the store. */
export async function pullImage(store: Store, refString: string, opts: PullOptions = {}): Promise<PullResult> {
  const emit = opts.onEvent ?? (() => {});
  const ref: Reference = parseReference(refString);
  const what = familiarString(ref);
  const platform = opts.platform ?? hostPlatform();
  const client = await RegistryClient.connect(ref.domain, opts);
  try {
    emit({ type: 'start', tagOrDigest: ref.digest ?? ref.tag ?? 'latest', repository: familiarName(ref) });
    const { topDigest, manifest } = await resolveManifest(client, ref.path, ref.digest ?? ref.tag!, platform, what);
    const m = parseManifest(manifest.bytes, `manifest of ${what}`);
    const configBytes = await fetchConfig(client, ref.path, m.config, what);
    const config = parseImageConfig(configBytes, `image config of ${what}`);
    if (config.rootfs.diff_ids.length !== m.layers.length) {
      throw new LayerfsError('INVALID_IMAGE', `${what}: manifest has ${m.layers.length} layers but the config lists ${config.rootfs.diff_ids.length} diff_ids`);
    }
    // Progress names a layer by its short id (the DiffID's, as every verb does), not its blob's.
    const idOf = new Map<Digest, string>();
    for (const [i, d] of m.layers.entries()) if (!idOf.has(d.digest)) idOf.set(d.digest, layerShortId(config.rootfs.diff_ids[i]!));
    const layerId = (d: Digest): string => idOf.get(d)!;
    const dir = `${store.paths.root}/downloads`;
    const layerFiles = new Map<Digest, string>();
    const toFetch = new Map<Digest, Descriptor>();
    let parent: ChainId | undefined;
    for (const [i, d] of m.layers.entries()) {
      const chain = chainIdOf(parent, config.rootfs.diff_ids[i]!);
      parent = chain;
      // A damaged entry counts as absent: the blob is fetched and the load re-extracts it.
      const existing = await store.layers.get(chain).catch(() => undefined);
      if (existing?.blobs.includes(d.digest) && (await store.blobs.has(d.digest))) {
        layerFiles.set(d.digest, store.paths.blob(d.digest));
        emit({ type: 'layer', id: layerId(d.digest), status: 'Already exists' });
      } else if (!toFetch.has(d.digest)) {
        toFetch.set(d.digest, d);
        emit({ type: 'layer', id: layerId(d.digest), status: 'Pulling fs layer' });
      }
    }
    const jobs = opts.jobs ?? 3;
    for (const d of [...toFetch.values()].slice(jobs)) emit({ type: 'layer', id: layerId(d.digest), status: 'Waiting' });
    await pruneStaleDownloads(dir);
    await pool([...toFetch.values()], jobs, async (d) => {
      const id = layerId(d.digest);
      emit({ type: 'layer', id, status: 'Downloading', current: 0, total: d.size });
      const file = await downloadBlob(client, ref.path, d, dir, {
        onProgress: (current, total) => emit({ type: 'layer', id, status: 'Downloading', current, total }),
      });
      emit({ type: 'layer', id, status: 'Verifying Checksum' });
      emit({ type: 'layer', id, status: 'Download complete' });
      layerFiles.set(d.digest, file);
    });
    // Tag with the tag asked for; a pull by digest only stays reachable as name@digest.
    const tagRef: Reference | undefined = ref.tag !== undefined ? { domain: ref.domain, path: ref.path, tag: ref.tag } : undefined;
    const previous = tagRef ? await store.tags.resolve(tagRef) : undefined;
    const source = new PullSource({
      name: what,
      manifest: { bytes: manifest.bytes, digest: manifest.digest, mediaType: manifest.mediaType },
      config: { bytes: configBytes, digest: m.config.digest },
      layerFiles,
      storeBlob: (d) => store.paths.blob(d),
      ...(tagRef ? { tag: fullString(tagRef) } : {}),
    });
    const byDiff = new Map(config.rootfs.diff_ids.map((diff, i) => [diff as string, m.layers[i]!.digest]));
    const result = await loadImages(store, {
      input: what,
      source,
      platform,
      onEvent: (e) => {
        if (e.type === 'waiting') emit(e);
        if (e.type !== 'layer') return;
        const blob = byDiff.get(e.diffId);
        if (blob && toFetch.has(blob)) emit({ type: 'layer', id: layerId(blob), status: 'Pull complete' });
      },
    });
    const id = result.images[0]!.id;
    await recordBlobSources(store.paths.root, [m.config.digest, ...m.layers.map((l) => l.digest)], `${ref.domain}/${ref.path}`).catch(() => {});
    for (const d of toFetch.keys()) await rm(layerFiles.get(d)!, { force: true });
    const reference = tagRef ? familiarString(tagRef) : `${familiarName(ref)}@${topDigest}`;
    emit({ type: 'done', digest: topDigest, id, upToDate: previous === id && toFetch.size === 0, reference });
    return { id, digest: topDigest, reference };
  } finally {
    client.close();
  }
}
