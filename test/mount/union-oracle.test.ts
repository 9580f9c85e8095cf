/**
 * The kernel's overlayfs as the oracle for layerfs's union object, called directly: the
 * shared suite (test/helpers/oracle-suite.ts) with the direct factory. The union object
 * checks no permissions (the kernel does that in front of a FUSE mount), so the cases of
 * another user run in union-fuse-oracle.test.ts only.
 * Replay a property failure with LAYERFS_ORACLE_SEED=<seed> (LAYERFS_ORACLE_RUNS=<n>).
 */
import { defineUnionOracleSuite, directUnionFactory } from '../helpers/oracle-suite.js';

defineUnionOracleSuite('union vs kernel overlayfs', directUnionFactory, { engine: 'direct', kernelVfs: false });
