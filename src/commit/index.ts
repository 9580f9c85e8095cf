/**
 * The front door of commit/: a container's writable layer becomes an image — the layer
 * tar written from the overlay format (whiteouts back to `.wh.` names), the config
 * changes of `commit -c` / `import -c`, and the new image stored and tagged.
 */
export * from './commit.js';
export * from './config-changes.js';
export * from './layer-tar.js';
