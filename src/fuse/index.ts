/**
 * The front door of fuse/: the mount process's side of FUSE, whichever engine serves it: the
 * engine choice, mount options and config, the fuse-native server and the errno boundary.
 * Other modules import from here, not from the files (test/unit/module-boundaries.test.ts).
 */
export * from './engine-choice.js';
export * from './errno.js';
export * from './fuse-server.js';
export * from './mount-options.js';
export * from './mount-process.js';
export * from './union-mount-config.js';
