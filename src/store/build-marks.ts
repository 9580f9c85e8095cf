/**
 * Which stored images a build made. Image metadata key `build`: `intermediate` on an image
 * a build stored for one of its steps — it belongs to the build cache, so `images` hides it
 * unless it is tagged (`images -a` shows it), `prune --dangling` leaves it to
 * `builder prune` — and `result` on the image a build produced (an ordinary image, `<none>`
 * when untagged). Kept in the store layer because image removal must know it.
 */
import type { Digest } from '../core/digest.js';
import type { ImageDb } from './image-db.js';

const KEY = 'build';

/** Marks a stored image as a build's intermediate step or its result. */
export async function markBuilt(images: ImageDb, id: Digest, role: 'intermediate' | 'result'): Promise<void> {
  await images.setMeta(id, KEY, role);
}

/** Whether an image is a build-cache intermediate. */
export async function isIntermediate(images: ImageDb, id: Digest): Promise<boolean> {
  return (await images.getMeta(id, KEY)) === 'intermediate';
}
