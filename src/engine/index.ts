/**
 * The front door of engine/: layerfs's own FUSE engine (the C request loop in native/ and its
 * TypeScript front); the mount process starts it through `serveWithEngine`. Other modules
 * import from here, not from the files (test/unit/module-boundaries.test.ts).
 */
export * from './engine-server.js';
