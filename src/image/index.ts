/**
 * The front door of image/: image formats: references, manifests and configs (OCI and Docker),
 * platforms, layer streams and tar, docker-archive and OCI-layout sources, input limits. Other
 * modules import from here, not from the files (test/unit/module-boundaries.test.ts).
 */
export * from './archive-reader.js';
export * from './archive-source.js';
export * from './layer-stream.js';
export * from './limits.js';
export * from './oci-types.js';
export * from './platform.js';
export * from './reference.js';
export * from './tar-reader.js';
