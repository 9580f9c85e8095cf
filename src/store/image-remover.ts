/**
 * `rmi` and `prune`: removing images, and the layers and blobs nothing references any more.
 * References are: an image's config → its chain of layers; an image's manifest (metadata)
 * → the manifest blob and its layer blobs; a container record → its image. Each removal
 * reports what it actually deleted (moby's layer store does the same on release).
 */
import { chainIds, shortId, parseDigest, type ChainId, type Digest } from '../core/digest.js';
import { LayerfsError } from '../core/errors.js';
import { parseManifest, familiarString, parseReference } from '../image/index.js';
import { readFile, readdir, rm } from 'node:fs/promises';
import type { LayerRecord } from './layer-db.js';
import { readMarkers } from './layer-markers.js';
import { isIntermediate } from './build-marks.js';
import { containerImages } from './container-refs.js';
import type { Store } from './store.js';

/** What a removal did, in Docker's words. */
export interface RemoveReport {
  untagged: string[];
  deleted: string[];
  /** Bytes freed on disk (layer content and blobs). */
  reclaimed: number;
  /** Why no layer or blob was deleted: what could not be read, so nothing is proven unused. */
  kept: string[];
}

/** Blobs (manifest + its layer blobs) an image references; undefined when the manifest cannot be read. */
export async function blobsOf(store: Store, id: Digest): Promise<Digest[] | undefined> {
  const m = await store.images.getMeta(id, 'manifest');
  if (!m) return [];
  try {
    const md = parseDigest(m);
    const manifest = parseManifest(await readFile(store.paths.blob(md)));
    return [md, manifest.config.digest, ...manifest.layers.map((l) => l.digest)];
  } catch {
    return undefined;
  }
}

/**
 * Deletes layers and blobs that are proven unused. Call under the lock. A layer goes only
 * when every image config, every container record and every layerdb entry could be read
 * and none of them leads to it; otherwise nothing is deleted and the reasons are reported
 * (`layerfs check` shows and repairs them). Blobs likewise, and a blob a kept layerdb entry
 * names is kept (it is what `check --repair` re-extracts a damaged cache from).
 */
async function collect(store: Store, report: RemoveReport): Promise<void> {
  const unprovable: string[] = [];
  const usedChains = new Set<ChainId>();
  const usedBlobs = new Set<Digest>();
  const images = await store.images.list();
  const containerUse = await containerImages(store.paths);
  unprovable.push(...containerUse.unreadable.map((f) => `container folder ${f} has no readable record`));
  for (const img of new Set(containerUse.images.values())) {
    if (!images.includes(img)) unprovable.push(`a container uses image ${shortId(img)}, which is not in the store`);
  }
  for (const id of images) {
    try {
      for (const c of chainIds((await store.images.config(id)).config.rootfs.diff_ids)) usedChains.add(c);
    } catch (err) {
      unprovable.push(`image config ${store.paths.imageConfig(id)} cannot be read (${(err as Error).message})`);
    }
    const b = await blobsOf(store, id);
    if (b) for (const x of b) usedBlobs.add(x);
    else unprovable.push(`the manifest of image ${shortId(id)} cannot be read`);
  }
  const entries = new Map<ChainId, LayerRecord>();
  for (const chain of await store.layers.list()) {
    try {
      const rec = await store.layers.get(chain);
      if (rec) entries.set(chain, rec);
    } catch (err) {
      unprovable.push((err as Error).message);
    }
  }
  if (unprovable.length > 0) {
    report.kept.push(...unprovable);
    return;
  }
  const usedCaches = new Set<string>();
  for (const [chain, rec] of entries) {
    if (usedChains.has(chain)) {
      usedCaches.add(rec.cacheId);
      for (const b of rec.blobs) usedBlobs.add(b);
      continue;
    }
    await store.layers.remove(rec);
    report.deleted.push(chain);
    report.reclaimed += rec.size;
  }
  // Caches no entry names (left by a load killed before this store kept markers): with
  // every entry read above, and the lock held, nothing can be using them.
  const { markers } = await readMarkers(store.paths);
  for (const m of markers) usedCaches.add(m.cacheId);
  for (const n of await readdir(store.paths.layersDir).catch(() => [] as string[])) {
    if (!/^[0-9a-f]{64}$/.test(n) || usedCaches.has(n)) continue;
    await rm(store.paths.cache(n), { recursive: true, force: true });
    report.deleted.push(`layer cache ${n} (no layerdb entry)`);
  }
  for (const b of await store.blobs.list()) {
    if (usedBlobs.has(b)) continue;
    report.reclaimed += await store.blobs.remove(b);
  }
}

/** One line for stderr when a removal kept layers it could not prove unused. */
export function keptWarning(r: RemoveReport): string {
  if (r.kept.length === 0) return '';
  return `layerfs: no layer or blob was deleted, because the store could not be fully read:\n${r.kept.map((k) => `  ${k}\n`).join('')}  run \`layerfs check\` to diagnose, \`layerfs check --repair\` to fix\n`;
}

/** Removes images by reference or id (`rmi`). Takes the store lock. */
export async function removeImages(store: Store, refs: string[], opts: { force: boolean }): Promise<RemoveReport> {
  return store.withLock(async () => {
    const report: RemoveReport = { untagged: [], deleted: [], reclaimed: 0, kept: [] };
    const inUse = (await containerImages(store.paths)).images;
    for (const ref of refs) {
      const id = await store.resolveImage(ref);
      const tags = await store.tags.tagsOf(id);
      const users = [...inUse].filter(([, img]) => img === id).map(([c]) => c);
      const byId = ref.replace(/^sha256:/, '').length >= 4 && id.slice(7).startsWith(ref.replace(/^sha256:/, ''));
      if (!byId && tags.length > 1) {
        // Removing one of several tags only untags (Docker does the same).
        const t = familiarString(parseReference(ref));
        await store.tags.remove(parseReference(ref));
        report.untagged.push(t);
        continue;
      }
      if (byId && tags.length > 1 && !opts.force) {
        throw new LayerfsError('FAILED_PRECONDITION', `image ${shortId(id)} is referenced by several tags (${tags.join(', ')})`, { hint: 'remove the tags one by one, or use --force' });
      }
      if (users.length > 0) {
        if (!opts.force) {
          throw new LayerfsError('IN_USE', `image ${shortId(id)} is used by container ${users.map((c) => c.slice(0, 12)).join(', ')}`, { hint: 'remove the container first (layerfs rm), or use --force to untag it' });
        }
        // Forced: untag, but keep the image and its layers while a container uses them.
        report.untagged.push(...(await store.tags.removeImage(id)));
        continue;
      }
      report.untagged.push(...(await store.tags.removeImage(id)));
      await store.images.remove(id);
      report.deleted.push(id);
    }
    await collect(store, report);
    // What the lock's cleanup removed first (a killed load's spool, half-extracted layers) was reclaimed too.
    report.reclaimed += store.cleanedBytes;
    return report;
  });
}

/** Deletes unreferenced layers and blobs; with `dangling`, also untagged images no container uses. */
export async function pruneStore(store: Store, opts: { dangling: boolean }): Promise<RemoveReport> {
  return store.withLock(async () => {
    const report: RemoveReport = { untagged: [], deleted: [], reclaimed: 0, kept: [] };
    if (opts.dangling) {
      const users = new Set((await containerImages(store.paths)).images.values());
      for (const id of await store.images.list()) {
        // A build's intermediate images are its cache's: `builder prune` removes them.
        if (users.has(id) || (await store.tags.tagsOf(id)).length > 0 || (await isIntermediate(store.images, id))) continue;
        await store.images.remove(id);
        report.deleted.push(id);
      }
    }
    await collect(store, report);
    // What the lock's cleanup removed first (a killed load's spool, half-extracted layers) was reclaimed too.
    report.reclaimed += store.cleanedBytes;
    return report;
  });
}
