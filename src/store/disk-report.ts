/**
 * `layerfs system df`: where the store's disk space goes, as `docker system df` shows it —
 * per kind, how many, how many in use, how much space, and how much a removal would free.
 *
 *  - Images: content bytes of their layers (each layer once); in use = a container's
 *    image; reclaimable = layers no image in use needs (rmi of the unused images, prune).
 *  - Layer caches: the extracted layers on disk (allocated bytes, hard links once).
 *  - Blobs: compressed layers and manifests as imported; reclaimable = referenced by no
 *    image (what prune deletes).
 *  - Containers: writable layers; in use = running or mounted; reclaimable = the others'.
 *  - Build cache: here only the entries' own records; `system df` (cli) puts in the layers
 *    the entries keep, which build/cache-prune.ts knows.
 */
import { readdir } from 'node:fs/promises';
import { diskUsage } from '../core/disk-usage.js';
import type { ChainId, Digest } from '../core/digest.js';
import { chainIds } from '../core/digest.js';
import { blobsOf } from './image-remover.js';
import type { Store } from './store.js';

export interface DiskRow {
  Type: string;
  TotalCount: number;
  Active: number;
  Size: number;
  Reclaimable: number;
}

/** Computes the rows; `liveContainers` are the ids of running or mounted containers, `imageOf` each container's image. */
export async function diskReport(store: Store, containers: Array<{ id: string; image: Digest; live: boolean; upper: string }>): Promise<DiskRow[]> {
  const images = await store.images.list();
  const active = new Set(containers.map((c) => c.image));
  const chainsOf = new Map<Digest, ChainId[]>();
  for (const id of images) chainsOf.set(id, chainIds((await store.images.config(id)).config.rootfs.diff_ids));
  const sizeOf = new Map<ChainId, { size: number; cacheId: string }>();
  for (const chains of chainsOf.values()) {
    for (const c of chains) {
      if (sizeOf.has(c)) continue;
      const rec = await store.layers.get(c).catch(() => undefined);
      if (rec) sizeOf.set(c, { size: rec.size, cacheId: rec.cacheId });
    }
  }
  const neededChains = new Set<ChainId>();
  for (const [id, chains] of chainsOf) if (active.has(id)) for (const c of chains) neededChains.add(c);
  const sum = (xs: Iterable<number>): number => [...xs].reduce((a, b) => a + b, 0);
  const imageSize = sum([...sizeOf.values()].map((l) => l.size));
  const imageFree = sum([...sizeOf.entries()].filter(([c]) => !neededChains.has(c)).map(([, l]) => l.size));

  let cacheSize = 0;
  let cacheFree = 0;
  const caches = await readdir(store.paths.layersDir).catch(() => [] as string[]);
  const neededCaches = new Set([...neededChains].map((c) => sizeOf.get(c)?.cacheId));
  for (const cache of caches) {
    const used = (await diskUsage(store.paths.cache(cache))).size;
    cacheSize += used;
    if (!neededCaches.has(cache)) cacheFree += used;
  }

  const referenced = new Set<Digest>();
  for (const id of images) for (const b of (await blobsOf(store, id)) ?? []) referenced.add(b);
  let blobSize = 0;
  let blobFree = 0;
  const blobs = await store.blobs.list();
  for (const b of blobs) {
    const used = (await diskUsage(store.paths.blob(b))).size;
    blobSize += used;
    if (!referenced.has(b)) blobFree += used;
  }

  let ctrSize = 0;
  let ctrFree = 0;
  for (const c of containers) {
    const used = (await diskUsage(c.upper)).size;
    ctrSize += used;
    if (!c.live) ctrFree += used;
  }

  const buildDir = `${store.paths.root}/build-cache`;
  const buildEntries = await readdir(`${buildDir}/entries`).catch(() => [] as string[]);
  const buildSize = (await diskUsage(buildDir)).size;

  return [
    { Type: 'Images', TotalCount: images.length, Active: images.filter((i) => active.has(i)).length, Size: imageSize, Reclaimable: imageFree },
    { Type: 'Layer caches', TotalCount: caches.length, Active: neededCaches.size - (neededCaches.has(undefined) ? 1 : 0), Size: cacheSize, Reclaimable: cacheFree },
    { Type: 'Blobs', TotalCount: blobs.length, Active: blobs.filter((b) => referenced.has(b)).length, Size: blobSize, Reclaimable: blobFree },
    { Type: 'Containers', TotalCount: containers.length, Active: containers.filter((c) => c.live).length, Size: ctrSize, Reclaimable: ctrFree },
    { Type: 'Build cache', TotalCount: buildEntries.length, Active: 0, Size: buildSize, Reclaimable: buildSize },
  ];
}
