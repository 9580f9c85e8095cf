/**
 * `layerfs check [--repair] [--fast] [IMAGE…]`: verifies the store and, with --repair,
 * rebuilds what can be rebuilt from what the store keeps.
 *
 * Checked: image configs against their ids; every layerdb entry (each file parses, the
 * chain id matches `parent` + `diff`, its cache folder exists); every layer cache against
 * its blob — the blob is extracted again (verified against the diff id on the way, as a
 * load does) into a new cache beside the old one and the two trees are compared entry by
 * entry (type, mode, owner, size, mtime, xattrs, content sha256); `--fast` only compares
 * the cache's content size with the entry's `size`; the lower-index cache of each image;
 * marker files; container records and the damage the mount recorded (damage.json).
 *
 * Repairs (under the store lock): a damaged entry or cache is replaced by the fresh
 * extraction (temp folder + rename, then one RENAME_EXCHANGE of the entry); a stale index
 * cache is rebuilt; a container folder without a record and without writable-layer content
 * is removed; a layer cache no entry names is removed once every entry reads; damage.json
 * of a container whose image is whole again is cleared.
 */
import { createReadStream } from 'node:fs';
import { readFile, readdir, rm, stat } from 'node:fs/promises';
import { chainIdOf, chainIds, digestOf, parseDigest, shortId, type ChainId, type DiffId, type Digest } from '../core/digest.js';
import { LayerfsError } from '../core/errors.js';
import { defaultLimits, parseManifest } from '../image/index.js';
import { readDamage, clearDamage } from './damage-record.js';
import { ingestLayer } from './layer-ingest.js';
import type { LayerRecord } from './layer-db.js';
import { readMarkers } from './layer-markers.js';
import type { Store } from './store.js';
import { compareTrees, contentSize } from './tree-compare.js';

/** One finding: where, what, and what was or can be done. */
export interface CheckProblem {
  path: string;
  problem: string;
  fix: string;
  repaired: boolean;
}

export interface CheckOptions {
  repair: boolean;
  fast: boolean;
  /** Only these images (ids); all when undefined. */
  images?: Digest[];
  onProgress?: (line: string) => void;
  /** How to check and rebuild the lower-index caches the store holds (their format is union/'s). */
  indexCaches: IndexCaches;
}

/**
 * The lower-index cache as the check needs it. The store keeps the cache files (beside
 * their layerdb entries) but union/ owns their format and builds them, and union/ sits
 * above store/: the caller hands these in (cli/verbs/check.ts passes union's).
 */
export interface IndexCaches {
  /** Why `file` is not a valid index of `layerDirs` (top first), or undefined when it is. */
  check(file: string, layerDirs: string[]): Promise<string | undefined>;
  /** Builds `file` again from `layerDirs` (top first). */
  rebuild(file: string, layerDirs: string[]): Promise<unknown>;
}

/** What an image says about one of its layers: enough to rebuild the entry. */
interface LayerSource {
  chain: ChainId;
  diffId: DiffId;
  parent: ChainId | undefined;
  blobs: Digest[];
}

/** Checks the store (the caller holds the lock when repairing). */
export async function checkStore(store: Store, opts: CheckOptions): Promise<CheckProblem[]> {
  const problems: CheckProblem[] = [];
  const report = (path: string, problem: string, fix: string, repaired = false): void => {
    problems.push({ path, problem, fix, repaired });
  };
  const sources = new Map<ChainId, LayerSource>();
  const imageIds = opts.images ?? (await store.images.list());
  const imageChains = new Map<Digest, ChainId[]>();
  for (const id of imageIds) {
    const file = store.paths.imageConfig(id);
    const bytes = await readFile(file).catch(() => undefined);
    if (!bytes) {
      report(file, 'image config missing', 'load the image again');
      continue;
    }
    if (digestOf(bytes) !== id) {
      report(file, 'image config does not match its id (altered)', 'load the image again (`layerfs rmi` it first)');
      continue;
    }
    let cfg;
    try {
      cfg = (await store.images.config(id)).config;
    } catch (err) {
      report(file, `image config unreadable: ${(err as Error).message}`, 'load the image again');
      continue;
    }
    const chains = chainIds(cfg.rootfs.diff_ids);
    imageChains.set(id, chains);
    const layerBlobs = await manifestLayers(store, id);
    chains.forEach((chain, i) => {
      const src = sources.get(chain) ?? { chain, diffId: cfg.rootfs.diff_ids[i]!, parent: i > 0 ? chains[i - 1] : undefined, blobs: [] };
      const b = layerBlobs?.[i];
      if (b && !src.blobs.includes(b)) src.blobs.push(b);
      sources.set(chain, src);
    });
  }

  const chainsToCheck = opts.images ? [...sources.keys()] : await store.layers.list();
  const damagedChains = new Set<ChainId>();
  for (const chain of chainsToCheck) {
    const entry = store.paths.layer(chain);
    const src = sources.get(chain);
    let rec: LayerRecord | undefined;
    let problem: string | undefined;
    try {
      rec = await store.layers.get(chain);
      if (!rec) problem = 'layerdb entry missing';
      else if (chainIdOf(rec.parent, rec.diffId) !== chain) problem = `chain id does not match parent ${rec.parent ?? '(none)'} + diff ${rec.diffId}`;
      else if (!(await isDir(store.paths.diff(rec.cacheId)))) problem = `layer cache ${store.paths.diff(rec.cacheId)} is missing`;
    } catch (err) {
      problem = (err as Error).message;
    }
    if (problem === undefined && rec) {
      problem = await verifyCache(store, rec, src, opts, report);
      if (problem === undefined) continue;
    }
    damagedChains.add(chain);
    const fixable = src !== undefined || (rec?.blobs.length ?? 0) > 0;
    if (!opts.repair || !fixable) {
      report(entry, problem!, fixable ? '`layerfs check --repair` extracts the layer again from its blob' : 'no image uses it: `layerfs prune` removes it');
      continue;
    }
    opts.onProgress?.(`repairing layer ${shortId(chain)}`);
    await rebuildLayer(store, chain, rec, src);
    damagedChains.delete(chain);
    report(entry, problem!, 'extracted again from its blob', true);
  }

  for (const [id, chains] of imageChains) {
    const top = chains.at(-1);
    if (top === undefined || chains.some((c) => damagedChains.has(c))) continue;
    const file = store.paths.lowerIndex(top);
    if (!(await stat(file).then(() => true, () => false))) continue; // built by the first mount
    const dirs = (await store.layerDirs(id)).reverse();
    const reason = await opts.indexCaches.check(file, dirs);
    if (reason === undefined) continue;
    if (opts.repair) await opts.indexCaches.rebuild(file, dirs);
    report(file, `lower-index cache of image ${shortId(id)} is stale (${reason})`, opts.repair ? 'rebuilt' : '`layerfs check --repair` rebuilds it (a mount would too)', opts.repair);
  }

  const { markers, bad } = await readMarkers(store.paths);
  for (const b of bad) report(b, 'layer marker file unreadable', `remove ${b} after checking the layer it names`);
  for (const m of markers) {
    const entry = await store.layers.rawCacheId(m.chainId);
    if (m.kind === 'pending' && entry.present && entry.cacheId === undefined) report(m.path, `pending layer cache of ${shortId(m.chainId)} whose layerdb entry cannot be read`, 'repair the entry (`layerfs check --repair`), then the next command clears the marker');
  }

  if (!opts.images) {
    // Caches no entry names: removable with the same proof prune needs (every entry read).
    const referenced = new Set<string>();
    let allRead = true;
    for (const chain of await store.layers.list()) {
      const rec = await store.layers.get(chain).catch(() => undefined);
      if (rec) referenced.add(rec.cacheId);
      else allRead = false;
    }
    for (const m of markers) referenced.add(m.cacheId);
    for (const n of await readdir(store.paths.layersDir).catch(() => [] as string[])) {
      if (!/^[0-9a-f]{64}$/.test(n) || referenced.has(n)) continue;
      const remove = opts.repair && allRead;
      if (remove) await rm(store.paths.cache(n), { recursive: true, force: true });
      report(store.paths.cache(n), 'layer cache no layerdb entry names', remove ? 'removed' : 'once every layerdb entry reads, `layerfs check --repair` or `layerfs prune` removes it', remove);
    }
  }

  await checkContainers(store, imageIds, damagedChains, imageChains, opts, report);
  return problems;
}

/** The layer blob digests of an image's stored manifest, or undefined. */
async function manifestLayers(store: Store, id: Digest): Promise<Digest[] | undefined> {
  try {
    const m = await store.images.getMeta(id, 'manifest');
    if (!m) return undefined;
    return parseManifest(await readFile(store.paths.blob(parseDigest(m)))).layers.map((l) => l.digest);
  } catch {
    return undefined;
  }
}

async function isDir(p: string): Promise<boolean> {
  return (await stat(p).catch(() => undefined))?.isDirectory() ?? false;
}

/** A stored blob of this layer, if any. */
async function blobOf(store: Store, rec: LayerRecord | undefined, src: LayerSource | undefined): Promise<Digest | undefined> {
  for (const b of [...(rec?.blobs ?? []), ...(src?.blobs ?? [])]) if (await store.blobs.has(b)) return b;
  return undefined;
}

/**
 * Undefined when the cache matches; else what is wrong. Full mode extracts the blob again
 * and compares trees; with --repair a differing extraction is kept as the new cache.
 */
async function verifyCache(store: Store, rec: LayerRecord, src: LayerSource | undefined, opts: CheckOptions, report: (p: string, problem: string, fix: string, repaired?: boolean) => void): Promise<string | undefined> {
  const cache = store.paths.diff(rec.cacheId);
  if (opts.fast) {
    const size = await contentSize(cache);
    return size === rec.size ? undefined : `layer cache ${cache} holds ${size} bytes of file content, the entry says ${rec.size}`;
  }
  const blob = await blobOf(store, rec, src);
  if (!blob) {
    report(cache, 'cannot be verified: no blob of this layer is stored', 'load the image again to get its blobs back');
    return undefined;
  }
  opts.onProgress?.(`verifying layer ${shortId(rec.chainId)} against blob ${shortId(blob)}`);
  const fresh = await extractBlob(store, rec.chainId, rec.diffId, blob);
  const diffs = await compareTrees(store.paths.diff(fresh.cacheId), cache, 5).catch((err: unknown) => [`cannot be read: ${(err as Error).message}`]);
  if (diffs.length === 0) {
    await store.layers.discard(fresh.cacheId);
    return undefined;
  }
  const what = `layer cache ${cache} differs from its blob ${shortId(blob)}:\n    ${diffs.join('\n    ')}`;
  if (opts.repair) {
    await store.layers.replace({ ...rec, cacheId: fresh.cacheId, size: fresh.size, blobs: rec.blobs.includes(blob) ? rec.blobs : [...rec.blobs, blob] }, rec.cacheId);
    report(store.paths.layer(rec.chainId), what, 'replaced by a fresh extraction of the blob', true);
  } else {
    await store.layers.discard(fresh.cacheId);
    report(store.paths.layer(rec.chainId), what, '`layerfs check --repair` replaces it with a fresh extraction');
  }
  return undefined;
}

async function extractBlob(store: Store, chain: ChainId, diffId: DiffId, blob: Digest): Promise<{ cacheId: string; size: number }> {
  const res = await ingestLayer(store.paths, store.blobs, createReadStream(store.paths.blob(blob)), { diffId, chainId: chain, extract: true, limits: defaultLimits(), expectedDigest: blob });
  return { cacheId: res.cacheId!, size: res.size };
}

/** Rebuilds a layer's entry and cache from a blob (entry facts from the image when the entry is unreadable). */
async function rebuildLayer(store: Store, chain: ChainId, rec: LayerRecord | undefined, src: LayerSource | undefined): Promise<void> {
  const blob = await blobOf(store, rec, src);
  const diffId = src?.diffId ?? rec?.diffId;
  if (!blob || !diffId) throw new LayerfsError('DAMAGED', `layer ${chain}: no stored blob to rebuild it from`, { hint: 'load the image again' });
  const fresh = await extractBlob(store, chain, diffId, blob);
  const parent = src ? src.parent : rec?.parent;
  const blobs = [...new Set([...(rec?.blobs ?? []), blob])];
  const next: LayerRecord = { chainId: chain, diffId, size: fresh.size, cacheId: fresh.cacheId, blobs, ...(parent ? { parent } : {}) };
  const raw = await store.layers.rawCacheId(chain);
  await store.layers.replace(next, rec?.cacheId ?? raw.cacheId);
}

async function checkContainers(
  store: Store,
  images: Digest[],
  damagedChains: Set<ChainId>,
  imageChains: Map<Digest, ChainId[]>,
  opts: CheckOptions,
  report: (p: string, problem: string, fix: string, repaired?: boolean) => void,
): Promise<void> {
  const all = await store.images.list();
  for (const id of await readdir(store.paths.containersDir).catch(() => [] as string[])) {
    const dir = `${store.paths.containersDir}/${id}`;
    if (!(await isDir(dir))) continue;
    let image: Digest | undefined;
    try {
      image = parseDigest((JSON.parse(await readFile(`${dir}/config.json`, 'utf8')) as { image?: unknown }).image);
    } catch {
      const upper = await readdir(`${dir}/upper`).catch(() => [] as string[]);
      const canRemove = upper.length === 0;
      if (opts.repair && canRemove) await rm(dir, { recursive: true, force: true });
      report(dir, 'container folder without a readable record', canRemove ? (opts.repair ? 'removed (its writable layer was empty)' : '`layerfs check --repair` removes it (its writable layer is empty)') : `its writable layer ${dir}/upper has content: copy out what you need, then remove ${dir}`, opts.repair && canRemove);
      continue;
    }
    if (opts.images && !images.includes(image)) continue;
    if (!all.includes(image)) report(dir, `container's image ${shortId(image)} is not in the store`, 'load the image again');
    const damage = await readDamage(dir);
    if (damage) {
      const whole = !(imageChains.get(image) ?? []).some((c) => damagedChains.has(c)) && imageChains.has(image);
      if (opts.repair && whole) await clearDamage(dir);
      report(`${dir}/damage.json`, `the mount found its image damaged: layer ${damage.layer}, path ${damage.path} (${damage.reason})`, whole ? (opts.repair ? 'the image is whole again; remount the container to serve it' : '`layerfs check --repair`, then remount the container') : 'repair the image first (`layerfs check --repair`)', opts.repair && whole);
    }
  }
}
