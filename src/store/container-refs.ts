/**
 * Which images containers use, read from the supervisor's records under
 * `<root>/containers/<id>/`. The store does not own those records; it only needs the image
 * id each one references, so it reads every `*.json` file at the top of each container
 * folder and takes the first image-id-looking field (`image`, `imageId`, `Image`, `ImageID`).
 * A container folder where no record names an image is returned in `unreadable`: which
 * image it uses is unknown, so prune deletes no layer while it exists (`layerfs check
 * --repair` clears such a folder).
 */
import { readFile, readdir } from 'node:fs/promises';
import { isDigestString, parseDigest, type Digest } from '../core/digest.js';
import { hasErrnoCode } from '../core/errors.js';
import type { StorePaths } from './store-paths.js';

const KEYS = ['image', 'imageId', 'Image', 'ImageID', 'imageID'];

/** Container id → image id for every container record that names an image; folders without one. */
export async function containerImages(paths: StorePaths): Promise<{ images: Map<string, Digest>; unreadable: string[] }> {
  const out = new Map<string, Digest>();
  const unreadable: string[] = [];
  let ids: string[];
  try {
    ids = await readdir(paths.containersDir);
  } catch (err) {
    if (hasErrnoCode(err, 'ENOENT')) return { images: out, unreadable };
    throw err;
  }
  for (const id of ids) {
    let files: string[];
    try {
      files = (await readdir(`${paths.containersDir}/${id}`)).filter((f) => f.endsWith('.json'));
    } catch {
      continue; // not a folder (or gone meanwhile)
    }
    for (const f of files) {
      try {
        const v = JSON.parse(await readFile(`${paths.containersDir}/${id}/${f}`, 'utf8')) as Record<string, unknown>;
        const hit = KEYS.map((k) => v[k]).find((x) => isDigestString(x));
        if (hit) {
          out.set(id, parseDigest(hit));
          break;
        }
      } catch {
        /* not a record we understand */
      }
    }
    if (!out.has(id)) unreadable.push(`${paths.containersDir}/${id}`);
  }
  return { images: out, unreadable };
}
