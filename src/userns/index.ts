/**
 * The front door of userns/: user namespaces: id maps, subordinate ids, spawning a helper
 * inside a namespace. Other modules import from here, not from the files (test/unit/module-
 * boundaries.test.ts).
 */
export * from './id-map.js';
export * from './userns-spawn.js';
