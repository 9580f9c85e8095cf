/**
 * Commit records for layer caches, so that store cleanup deletes a cache only when a record
 * says it is garbage — never because nothing seems to point to it (a layerdb entry that
 * fails to parse points to nothing readable, yet its cache is in use).
 *
 *   layers/<cache-id>.pending    written before a new cache is renamed into place; removed
 *                                once its layerdb entry is committed. Left behind by a
 *                                killed load: the cache is garbage unless the entry of the
 *                                chain it names points to it.
 *   layers/<cache-id>.removing   written before a layer is deleted (rmi, prune, a load
 *                                rolled back, a cache replaced); a crash mid-removal is
 *                                finished by the next command.
 *
 * Each holds `{"chainId": …, "pid": …}`; written with temp file + rename.
 */
import { readFile, readdir, unlink } from 'node:fs/promises';
import { parseChainId, type ChainId } from '../core/digest.js';
import { hasErrnoCode } from '../core/errors.js';
import { writeFileAtomic } from './atomic.js';
import type { StorePaths } from './store-paths.js';

export type MarkerKind = 'pending' | 'removing';

/** One marker file. */
export interface LayerMarker {
  kind: MarkerKind;
  cacheId: string;
  chainId: ChainId;
  pid: number;
  path: string;
}

const NAME = /^([0-9a-f]{64})\.(pending|removing)$/;

export function markerPath(paths: StorePaths, cacheId: string, kind: MarkerKind): string {
  return `${paths.layersDir}/${cacheId}.${kind}`;
}

/** Records that `cacheId` is about to become (pending) or stop being (removing) the cache of `chainId`. */
export async function writeMarker(paths: StorePaths, kind: MarkerKind, cacheId: string, chainId: ChainId): Promise<void> {
  await writeFileAtomic(markerPath(paths, cacheId, kind), JSON.stringify({ chainId, pid: process.pid }) + '\n');
}

export async function clearMarker(paths: StorePaths, cacheId: string, kind: MarkerKind): Promise<void> {
  await unlink(markerPath(paths, cacheId, kind)).catch((err: unknown) => {
    if (!hasErrnoCode(err, 'ENOENT')) throw err;
  });
}

/** Every marker; `bad` lists marker files that do not parse (left alone, reported by check). */
export async function readMarkers(paths: StorePaths): Promise<{ markers: LayerMarker[]; bad: string[] }> {
  const markers: LayerMarker[] = [];
  const bad: string[] = [];
  let names: string[];
  try {
    names = await readdir(paths.layersDir);
  } catch (err) {
    if (hasErrnoCode(err, 'ENOENT')) return { markers, bad };
    throw err;
  }
  for (const n of names) {
    const m = NAME.exec(n);
    if (!m) continue;
    const path = `${paths.layersDir}/${n}`;
    try {
      const v = JSON.parse(await readFile(path, 'utf8')) as { chainId?: unknown; pid?: unknown };
      markers.push({ kind: m[2] as MarkerKind, cacheId: m[1]!, chainId: parseChainId(String(v.chainId)), pid: Number(v.pid), path });
    } catch (err) {
      if (hasErrnoCode(err, 'ENOENT')) continue;
      bad.push(path);
    }
  }
  return { markers, bad };
}
