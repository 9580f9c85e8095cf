/** The `<64 hex>` entries of a store folder (blobs, imagedb content, layerdb), as digests. */
import { readdir } from 'node:fs/promises';
import { hasErrnoCode } from '../core/errors.js';

/** Hex names in `dir`, each passed to `parse` as `sha256:<hex>`; a missing folder is empty. */
export async function listDigestNames<T>(dir: string, parse: (digest: string) => T): Promise<T[]> {
  try {
    return (await readdir(dir)).filter((n) => /^[0-9a-f]{64}$/.test(n)).map((n) => parse(`sha256:${n}`));
  } catch (err) {
    if (hasErrnoCode(err, 'ENOENT')) return [];
    throw err;
  }
}
