/**
 * The build cache's disk use and `builder prune`. The cache's entries hold no files of
 * their own: their layers are kept by the intermediate images builds store (marked in
 * src/store/build-marks.ts). So the cache's size is the size of the layers its entries
 * use, and what a prune can free is the part of that no other image (tagged, a build
 * result, a container's) uses.
 *
 * `builder prune` follows Docker's: without `--all` only dangling cache goes — entries
 * whose result no image outside the cache builds on (an edited file's old COPY and every
 * step above it) or whose layers are gone; `--all` takes every entry; `until` keeps
 * entries used (written or hit) more recently than that; `keepStorage` stops once the
 * cache's reclaimable size is at most that many bytes, least recently used first. Then
 * the intermediate images no remaining entry needs are removed and `prune` collects the
 * layers nothing references any more.
 */
import { chainIds, type ChainId, type DiffId, type Digest } from '../core/digest.js';
import { isIntermediate, containerImages, pruneStore } from '../store/index.js';
import type { Store } from '../store/index.js';
import { BuildCache, type UsedEntry } from './build-cache.js';

/** One entry, for `builder du`. */
export interface EntryUsage {
  key: string;
  /** The instruction as keyed (expanded). */
  text: string;
  /** Bytes of the layer the step made (0 for a metadata step). */
  size: number;
  /** No image outside the cache builds on it. */
  dangling: boolean;
  lastUsed: number;
}

/** The cache's disk use. */
export interface CacheUsage {
  entries: EntryUsage[];
  /** Bytes of every layer some entry uses (shared ones included). */
  size: number;
  /** Bytes only the cache keeps (freed by `builder prune --all`). */
  reclaimable: number;
}

/** What the store holds, read once. */
interface StoreView {
  sizes: Map<ChainId, number>;
  /** Chains some image outside the cache uses. */
  outside: Set<ChainId>;
  /** Intermediate images that may go: untagged, no container. */
  removable: Array<{ id: Digest; top: ChainId | undefined }>;
  /** Container folders without a readable record: any image may be theirs. */
  unreadable: string[];
}

async function view(store: Store): Promise<StoreView> {
  const sizes = new Map<ChainId, number>();
  for (const chain of await store.layers.list()) {
    const rec = await store.layers.get(chain).catch(() => undefined);
    if (rec) sizes.set(chain, rec.size);
  }
  const containers = await containerImages(store.paths);
  const users = new Set(containers.images.values());
  const outside = new Set<ChainId>();
  const removable: StoreView['removable'] = [];
  for (const id of await store.images.list()) {
    const cfg = await store.images.config(id).catch(() => undefined);
    if (!cfg) continue;
    const chains = chainIds(cfg.config.rootfs.diff_ids);
    const cached = (await isIntermediate(store.images, id)) && !users.has(id) && (await store.tags.tagsOf(id)).length === 0;
    if (cached) removable.push({ id, top: chains.at(-1) });
    else for (const c of chains) outside.add(c);
  }
  return { sizes, outside, removable, unreadable: containers.unreadable };
}

const chainsOf = (e: UsedEntry): ChainId[] => chainIds((JSON.parse(e.entry.result.configBytes) as { rootfs: { diff_ids: DiffId[] } }).rootfs.diff_ids);

/** Whether the step made a layer (its last history entry is not an empty layer). */
function madeLayer(e: UsedEntry): boolean {
  const h = (JSON.parse(e.entry.result.configBytes) as { history?: Array<{ empty_layer?: boolean }> }).history ?? [];
  return h.length > 0 && !h.at(-1)!.empty_layer;
}

function usageOf(entries: UsedEntry[], v: StoreView): CacheUsage {
  const used = new Set<ChainId>();
  const out: EntryUsage[] = [];
  for (const e of entries) {
    const chains = chainsOf(e);
    for (const c of chains) used.add(c);
    const top = chains.at(-1);
    const present = chains.every((c) => v.sizes.has(c));
    out.push({
      key: e.entry.key,
      text: e.entry.inputs.text,
      size: top !== undefined && madeLayer(e) ? (v.sizes.get(top) ?? 0) : 0,
      dangling: !present || (top !== undefined && !v.outside.has(top)),
      lastUsed: e.lastUsed,
    });
  }
  let size = 0;
  let reclaimable = 0;
  for (const c of used) {
    const n = v.sizes.get(c) ?? 0;
    size += n;
    if (!v.outside.has(c)) reclaimable += n;
  }
  return { entries: out, size, reclaimable };
}

/** The build cache's disk use (`builder du`, `system df`). */
export async function buildCacheUsage(store: Store): Promise<CacheUsage> {
  const cache = await BuildCache.open(store);
  return usageOf(cache.list(), await view(store));
}

/** What to prune. */
export interface PruneOptions {
  all: boolean;
  /** Keep entries used within this many milliseconds. */
  untilMs?: number;
  /** Stop once the reclaimable size is at most this many bytes. */
  keepStorage?: number;
  now?: number;
}

/** What a prune removed. */
export interface PruneReport {
  /** Keys of the removed entries. */
  deleted: string[];
  images: Digest[];
  reclaimed: number;
  /** Why images or layers were kept although unneeded (nothing proven unused). */
  kept: string[];
}

/** `builder prune`; see the module comment. */
export async function pruneBuildCache(store: Store, o: PruneOptions): Promise<PruneReport> {
  const cache = await BuildCache.open(store);
  const v = await view(store);
  const now = o.now ?? Date.now();
  let remaining = cache.list();
  const byKey = new Map(usageOf(remaining, v).entries.map((u) => [u.key, u]));
  const candidates = remaining.filter((e) => (o.all || byKey.get(e.entry.key)!.dangling) && (o.untilMs === undefined || e.lastUsed < now - o.untilMs));
  const deleted: string[] = [];
  for (const e of candidates) {
    if (o.keepStorage !== undefined && usageOf(remaining, v).reclaimable <= o.keepStorage) break;
    await cache.drop(e.entry.key);
    deleted.push(e.entry.key);
    remaining = remaining.filter((r) => r !== e);
  }
  // Intermediate images stay while a remaining entry's result ends in their top layer.
  const needed = new Set<ChainId | undefined>(remaining.map((e) => chainsOf(e).at(-1)));
  const images: Digest[] = [];
  // A container whose record cannot be read may use any intermediate: then none goes.
  const kept = v.unreadable.map((f) => `container folder ${f} has no readable record: intermediate images kept`);
  if (kept.length === 0) await store.withLock(async () => {
    for (const img of v.removable) {
      if (img.top !== undefined && needed.has(img.top)) continue;
      await store.images.remove(img.id);
      images.push(img.id);
    }
  });
  const collected = await pruneStore(store, { dangling: false });
  return { deleted, images, reclaimed: collected.reclaimed, kept: [...kept, ...collected.kept] };
}

/** `until` durations as Docker takes them (`24h`, `90m`, `1h30m`, `3600s`) in milliseconds. */
export function parseUntil(text: string): number | undefined {
  const units: Record<string, number> = { ms: 1, s: 1e3, m: 60e3, h: 3600e3 };
  let ms = 0;
  let consumed = 0;
  for (const m of text.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)) {
    ms += Number(m[1]) * units[m[2]!]!;
    consumed += m[0].length;
  }
  return consumed === text.length && text !== '' ? ms : undefined;
}
