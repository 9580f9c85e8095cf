/**
 * The kernel's overlayfs as the oracle for layerfs's union object, called directly: the
 * shared suite (test/helpers/oracle-suite.ts) with the direct factory. The same suite can
 * run against a layerfs FUSE mount by passing a factory that mounts one.
 * Replay a property failure with LAYERFS_ORACLE_SEED=<seed> (LAYERFS_ORACLE_RUNS=<n>).
 */
import { defineUnionOracleSuite, directUnionFactory } from '../helpers/oracle-suite.js';

defineUnionOracleSuite('union vs kernel overlayfs', directUnionFactory);
