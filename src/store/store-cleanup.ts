/**
 * Clears what an interrupted command left behind. Every write in the store goes to a
 * staging name (`tmp-<pid>-…`, or `.tmp-<pid>-…` for single files) and is renamed into place,
 * so leftovers are exactly: staging names, and what a layer marker (layer-markers.ts) says
 * an interrupted load or removal left. A layer cache no entry seems to point to is never
 * removed here: only `prune`, with every entry readable, may (image-remover.ts). Runs under
 * the store lock, so no live writer can own any of them.
 */
import { readdir } from 'node:fs/promises';
import { diskUsage } from '../core/disk-usage.js';
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

/** What a cleanup removed. */
export interface CleanupReport {
  entries: number;
  /** Disk space freed (allocated bytes), for `prune`'s "Total reclaimed space". */
  bytes: number;
}

/** Removes leftovers; returns what was removed. Call with the lock held. */
export async function cleanupStore(paths: StorePaths, layers: LayerDb): Promise<CleanupReport> {
  const report: CleanupReport = { entries: 0, bytes: 0 };
  const remove = async (path: string): Promise<void> => {
    report.bytes += (await diskUsage(path)).size;
    // A rootless store's caches hold files of subordinate uids: removed inside the userns.
    await removeTree(path);
    report.entries++;
  };
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
        await remove(`${d}/${n}`);
      }
    }
  }
  for (const id of await names(paths.imageMetadataDir)) {
    for (const n of await names(`${paths.imageMetadataDir}/${id}`)) {
      if (STAGING.test(n)) {
        await remove(`${paths.imageMetadataDir}/${id}/${n}`);
      }
    }
  }
  // Single files rewritten inside a layerdb entry (blob list, lower index) stage beside
  // it. A mount process may write its lower index without the lock, so only a staging
  // file whose writer is gone is a leftover.
  for (const chain of await names(paths.layerdbDir)) {
    for (const n of await names(`${paths.layerdbDir}/${chain}`)) {
      if (STAGING.test(n) && !isAlive(Number(/tmp-(\d+)-/.exec(n)![1]))) {
        await remove(`${paths.layerdbDir}/${chain}/${n}`);
      }
    }
  }
  // New layer caches a commit is extracting without the lock (store-paths.ts unlockedStagingName).
  for (const n of await names(paths.layersDir)) {
    const m = /^commit-tmp-(\d+)-[0-9a-f]+$/.exec(n);
    if (m && !isAlive(Number(m[1]))) await remove(`${paths.layersDir}/${n}`);
  }
  // Staging layouts of `import` (in downloads/, beside a pull's resumable blobs) whose writer is gone.
  for (const n of await names(`${paths.root}/downloads`)) {
    const m = /^import-tmp-(\d+)-[0-9a-f]+$/.exec(n);
    if (m && !isAlive(Number(m[1]))) await remove(`${paths.root}/downloads/${n}`);
  }
  for (const n of await names(paths.tmpDir)) {
    await remove(`${paths.tmpDir}/${n}`);
  }
  await resolveMarkers(paths, layers, report);
  return report;
}

/**
 * Acts on the layer markers of interrupted commands (layer-markers.ts). Only what a marker
 * proves is garbage goes: a cache is never removed because nothing *seems* to use it — a
 * layerdb entry that cannot be read may well be its owner.
 */
async function resolveMarkers(paths: StorePaths, layers: LayerDb, report: CleanupReport): Promise<void> {
  for (const m of (await readMarkers(paths)).markers) {
    if (m.pid !== process.pid && isAlive(m.pid)) continue; // its owner is still at work
    if (m.kind === 'removing') {
      report.bytes += (await diskUsage(paths.cache(m.cacheId))).size;
      await layers.finishRemoval(m.chainId, m.cacheId);
      report.entries++;
      continue;
    }
    const entry = await layers.rawCacheId(m.chainId);
    if (entry.present && entry.cacheId === m.cacheId) {
      await clearMarker(paths, m.cacheId, 'pending'); // committed; only the marker was left
    } else if (!entry.present || entry.cacheId !== undefined) {
      // No entry for the chain, or one naming another cache: this cache was never committed.
      report.bytes += (await diskUsage(paths.cache(m.cacheId))).size;
      await removeTree(paths.cache(m.cacheId));
      await clearMarker(paths, m.cacheId, 'pending');
      report.entries++;
    }
    // else: the entry exists but its cache-id is unreadable — unprovable; `check` reports it.
  }
}
