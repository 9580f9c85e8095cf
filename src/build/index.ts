/**
 * The front door of build/: Dockerfile builds: the builder, its cache and prune, build args,
 * context and progress. Other modules import from here, not from the files (test/unit/module-
 * boundaries.test.ts).
 */
export * from './base-image.js';
export * from './build-args.js';
export * from './build-context.js';
export * from './build-log.js';
export * from './builder.js';
export * from './cache-prune.js';
export * from './copy-files.js';
export * from './progress.js';
