/**
 * The front door of registry/: the distribution client: credentials, pulling into the store,
 * pushing from it. Other modules import from here, not from the files (test/unit/module-
 * boundaries.test.ts).
 */
export * from './credentials.js';
export * from './puller.js';
export * from './push-compress.js';
export * from './pusher.js';
export * from './registry-client.js';
