/**
 * The kernel's overlayfs as the oracle for layerfs's ROOTLESS on-disk format (issue 14):
 * the shared oracle suite (test/helpers/oracle-suite.ts) with the union object in the
 * `user.` xattr namespace (user.overlay.opaque, user.overlay.layerfs.origin, escaping of
 * user.overlay.X, no redirects) and the kernel overlayfs mounted with `userxattr` (as in a
 * user namespace, where it must be) — every case, both crossings of the formats, and the
 * remount. What an ordinary uid may do is asserted in rootless-union.test.ts.
 * Replay a property failure with LAYERFS_ORACLE_SEED=<seed> (LAYERFS_ORACLE_RUNS=<n>).
 */
import { afterAll, vi } from 'vitest';
import { defineUnionOracleSuite, directUnionFactory } from '../helpers/oracle-suite.js';

// Before any import evaluates overlay/overlay-format.ts (which reads it once per process).
vi.hoisted(() => {
  process.env.LAYERFS_OVERLAY_XATTRS = 'user';
});
// The mount project runs every file in one process: later files get root's format again.
afterAll(() => {
  delete process.env.LAYERFS_OVERLAY_XATTRS;
});

defineUnionOracleSuite('union vs kernel overlayfs (userxattr), rootless format', directUnionFactory, { engine: 'direct', kernelVfs: false });
