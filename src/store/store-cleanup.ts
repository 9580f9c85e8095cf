/**
 * Clears what an interrupted command left behind. Every write in the store goes to a
 * staging name (`tmp-<pid>-…`, or `.tmp-<pid>-…` for single files) and is renamed into place,
 * so leftovers are exactly: staging names, and layer caches no layerdb entry points to (a
 * load killed between renaming the cache and committing its layerdb entry). Runs under the
 * store lock, so no live writer can own any of them.
 */
import { readdir, rm } from 'node:fs/promises';
import { hasErrnoCode } from '../core/errors.js';
import type { LayerDb } from './layer-db.js';
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
  // Layer caches nothing points to.
  const used = new Set<string>();
  for (const c of await layers.list()) {
    const rec = await layers.get(c).catch(() => undefined);
    if (rec) used.add(rec.cacheId);
  }
  for (const n of await names(paths.layersDir)) {
    if (/^[0-9a-f]{64}$/.test(n) && !used.has(n)) {
      await removeTree(paths.cache(n));
      removed++;
    }
  }
  return removed;
}
