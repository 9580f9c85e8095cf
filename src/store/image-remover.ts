/**
 * `rmi` and `prune`: removing images, and the layers and blobs nothing references any more.
 * References are: an image's config → its chain of layers; an image's manifest (metadata)
 * → the manifest blob and its layer blobs; a container record → its image. Each removal
 * reports what it actually deleted (moby's layer store does the same on release).
 */
import { shortId, parseDigest, type Digest } from '../core/digest.js';
import { LayerfsError } from '../core/errors.js';
import { parseManifest } from '../image/oci-types.js';
import { familiarString, parseReference } from '../image/reference.js';
import { readFile } from 'node:fs/promises';
import { isIntermediate } from './build-marks.js';
import { containerImages } from './container-refs.js';
import type { Store } from './store.js';

/** What a removal did, in Docker's words. */
export interface RemoveReport {
  untagged: string[];
  deleted: string[];
  /** Bytes freed on disk (layer content and blobs). */
  reclaimed: number;
}

/** Blobs (manifest + its layer blobs) an image references. */
async function blobsOf(store: Store, id: Digest): Promise<Digest[]> {
  const m = await store.images.getMeta(id, 'manifest');
  if (!m) return [];
  const md = parseDigest(m);
  try {
    const manifest = parseManifest(await readFile(store.paths.blob(md)));
    return [md, manifest.config.digest, ...manifest.layers.map((l) => l.digest)];
  } catch {
    return [md];
  }
}

/** Deletes layers and blobs that no remaining image references. Call under the lock. */
async function collect(store: Store, report: RemoveReport): Promise<void> {
  const usedChains = await store.usedChains();
  const usedBlobs = new Set<Digest>();
  for (const id of await store.images.list()) for (const b of await blobsOf(store, id)) usedBlobs.add(b);
  for (const chain of await store.layers.list()) {
    if (usedChains.has(chain)) continue;
    const rec = await store.layers.get(chain).catch(() => undefined);
    if (!rec) continue;
    await store.layers.remove(rec);
    report.deleted.push(chain);
    report.reclaimed += rec.size;
  }
  for (const b of await store.blobs.list()) {
    if (usedBlobs.has(b)) continue;
    report.reclaimed += await store.blobs.remove(b);
  }
}

/** Removes images by reference or id (`rmi`). Takes the store lock. */
export async function removeImages(store: Store, refs: string[], opts: { force: boolean }): Promise<RemoveReport> {
  return store.withLock(async () => {
    const report: RemoveReport = { untagged: [], deleted: [], reclaimed: 0 };
    const inUse = await containerImages(store.paths);
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
    return report;
  });
}

/** Deletes unreferenced layers and blobs; with `dangling`, also untagged images no container uses. */
export async function pruneStore(store: Store, opts: { dangling: boolean }): Promise<RemoveReport> {
  return store.withLock(async () => {
    const report: RemoveReport = { untagged: [], deleted: [], reclaimed: 0 };
    if (opts.dangling) {
      const users = new Set((await containerImages(store.paths)).values());
      for (const id of await store.images.list()) {
        // A build's intermediate images are its cache's: `builder prune` removes them.
        if (users.has(id) || (await store.tags.tagsOf(id)).length > 0 || (await isIntermediate(store.images, id))) continue;
        await store.images.remove(id);
        report.deleted.push(id);
      }
    }
    await collect(store, report);
    return report;
  });
}
