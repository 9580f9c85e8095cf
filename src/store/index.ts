/**
 * The front door of store/: the image store: blobs by digest, imagedb, layerdb and layer
 * caches, tags, the lock, import/load/save/remove, checks and disk use. Other modules import
 * from here, not from the files (test/unit/module-boundaries.test.ts).
 */
export * from './atomic.js';
export * from './build-marks.js';
export * from './container-refs.js';
export * from './damage-record.js';
export * from './disk-report.js';
export * from './image-import.js';
export * from './image-loader.js';
export * from './image-remover.js';
export * from './image-saver.js';
export * from './layer-privilege.js';
export * from './layout-import.js';
export * from './store-check.js';
export * from './store-lock.js';
export * from './store-paths.js';
export * from './store.js';
