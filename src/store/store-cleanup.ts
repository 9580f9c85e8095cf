/**
 * Clears what an interrupted command left behind. Every write in the store goes to a
 * staging name (`tmp-<pid>-…`, or `.tmp-<pid>-…` for single files) and is renamed into place,
 * so leftovers are exactly: staging names, and what a layer marker (layer-markers.ts) says
 * an interrupted load or removal left. A layer cache no entry seems to point to is never
 * removed here: only `prune`, with every entry readable, may (image-remover.ts). Runs under
 * the store lock, so no live writer can own any of them.
 */
import { readdir, rm } from 'node:fs/promises';
import { hasErrnoCode } from '../core/errors.js';
import type { LayerDb } from './layer-db.js';
import { clearMarker, readMarkers } from './layer-markers.js';
import { removeTree } from './layer-privilege.js';
import type { StorePaths } from './store-paths.js';

const STAGING = /^\.?tmp-\d+-[0-9a-f]+$/;

async function names(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    if (hasErrnoCode(err, 'ENOENT') || hasErrnoCode(err, 'ENOTDIR')) return [];
    throw err;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

/** Removes leftovers; returns how many entries were removed. Call with the lock held. */
export async function cleanupStore(paths: StorePaths, layers: LayerDb): Promise<number> {
  let removed = 0;
  const dirs = [
    paths.root,
    `${paths.root}/image`,
    paths.imagedb,
    paths.imageContentDir,
    paths.layerdbStaging,
    paths.blobsStaging,
    paths.blobsDir,
    paths.layersDir,
  ];
  for (const d of dirs) {
    for (const n of await names(d)) {
      if (STAGING.test(n)) {
        await removeTree(`${d}/${n}`);
        removed++;
      }
    }
  }
  for (const id of await names(paths.imageMetadataDir)) {
    for (const n of await names(`${paths.imageMetadataDir}/${id}`)) {
      if (STAGING.test(n)) {
        await rm(`${paths.imageMetadataDir}/${id}/${n}`, { force: true });
        removed++;
      }
    }
  }
  // Single files rewritten inside a layerdb entry (blob list, lower index) stage beside
  // it. A mount process may write its lower index without the lock, so only a staging
  // file whose writer is gone is a leftover.
  for (const chain of await names(paths.layerdbDir)) {
    for (const n of await names(`${paths.layerdbDir}/${chain}`)) {
      if (STAGING.test(n) && !isAlive(Number(/tmp-(\d+)-/.exec(n)![1]))) {
        await rm(`${paths.layerdbDir}/${chain}/${n}`, { force: true });
        removed++;
      }
    }
  }
  for (const n of await names(paths.tmpDir)) {
    await rm(`${paths.tmpDir}/${n}`, { recursive: true, force: true });
    removed++;
  }
  removed += await resolveMarkers(paths, layers);
  return removed;
}

/**
 * Acts on the layer markers of interrupted commands (layer-markers.ts). Only what a marker
 * proves is garbage goes: a cache is never removed because nothing *seems* to use it — a
 * layerdb entry that cannot be read may well be its owner.
 */
async function resolveMarkers(paths: StorePaths, layers: LayerDb): Promise<number> {
  let removed = 0;
  for (const m of (await readMarkers(paths)).markers) {
    if (m.pid !== process.pid && isAlive(m.pid)) continue; // its owner is still at work
    if (m.kind === 'removing') {
      await layers.finishRemoval(m.chainId, m.cacheId);
      removed++;
      continue;
    }
    const entry = await layers.rawCacheId(m.chainId);
    if (entry.present && entry.cacheId === m.cacheId) {
      await clearMarker(paths, m.cacheId, 'pending'); // committed; only the marker was left
    } else if (!entry.present || entry.cacheId !== undefined) {
      // No entry for the chain, or one naming another cache: this cache was never committed.
      await removeTree(paths.cache(m.cacheId));
      await clearMarker(paths, m.cacheId, 'pending');
      removed++;
    }
    // else: the entry exists but its cache-id is unreadable — unprovable; `check` reports it.
  }
  return removed;
}
