/**
 * The front door of supervisor/: containers: their records, a Container handle with their
 * paths, mounting (the mount process), unmounting, removal and crash recovery. Other modules
 * import from here, not from the files (test/unit/module-boundaries.test.ts).
 */
export * from './container-record.js';
export * from './mount-launcher.js';
export * from './process-check.js';
export * from './supervisor.js';
