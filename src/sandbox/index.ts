/**
 * The front door of sandbox/: running containers: the OCI runtime spec from an image config,
 * runc/crun, the monitor process, run state, restart and recovery. Other modules import from
 * here, not from the files (test/unit/module-boundaries.test.ts).
 */
export * from './container-monitor.js';
export * from './docker-defaults.js';
export * from './image-process.js';
export * from './monitor-launcher.js';
export * from './oci-runtime.js';
export * from './prepare-run.js';
export * from './recover-runs.js';
export * from './restart-run.js';
export * from './rootfs-path.js';
export * from './run-control.js';
export * from './run-options.js';
export * from './run-state.js';
export * from './runtime-spec-types.js';
export * from './user-resolver.js';
