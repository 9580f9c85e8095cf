/**
 * The front door of overlay/: the kernel overlayfs on-disk vocabulary every other module
 * shares (store writes it when it extracts a layer, union reads and writes it, teach
 * explains it, sandbox and the engine honour it). Import from here, not from the files.
 */
export * from './overlay-format.js';
export * from './whiteout-policy.js';
export * from './paths.js';
export * from './inode.js';
export * from './aufs-whiteouts.js';
