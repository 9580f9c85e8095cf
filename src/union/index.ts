/**
 * The front door of union/ (see README.md): the union filesystem over overlay-format
 * layers, and the pieces of it the read-only tools reuse — the lower index of an image's
 * layers, the merged view and the writable layer's state (inspect/, commit/), and the
 * index cache's check for `layerfs check`.
 */
import { LowerIndex } from './lower-index.js';
import { checkIndexCache } from './lower-index-cache.js';

export { UnionFilesystem, type LayerDamage, type UnionOptions } from './union-fs.js';
export { LowerIndex, type IndexOrigin, type LowerEntry, type OpenOptions } from './lower-index.js';
export { UnionView, isLowerDir, lowerStat, type Resolved } from './union-view.js';
export { UpperState, type UpperNode } from './upper-state.js';
export { containerOwnership, type Ownership } from './owner-override.js';
export { runBackingCallsInline } from './backing-calls.js';
export { fixProcessUmask } from './process-umask.js';
export { removeTree } from './backing-path.js';

/** The lower-index cache file as a store check sees it (store/store-check.ts `IndexCaches`). */
export const indexCaches = {
  check: (file: string, layerDirs: string[]): Promise<string | undefined> => checkIndexCache(file, layerDirs.map((d) => Buffer.from(d))),
  rebuild: (file: string, layerDirs: string[]): Promise<unknown> => LowerIndex.ensureCache(layerDirs, file),
};
