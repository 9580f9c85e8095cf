/**
 * The front door of snapshotter/: the containerd snapshotter: the snapshotter over the store,
 * its gRPC server and mounts. Other modules import from here, not from the files
 * (test/unit/module-boundaries.test.ts).
 */
export * from './grpc-server.js';
export * from './mounts.js';
export * from './snapshotter.js';
