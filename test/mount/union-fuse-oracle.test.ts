/**
 * The same oracle suite as union-oracle.test.ts, with layerfs served over a real FUSE
 * mount as the subject, once per engine (LAYERFS_ORACLE_ENGINES, default the default engine;
 * the engine reaches the mount process as LAYERFS_ENGINE). Every op goes through the
 * kernel's VFS and FUSE into the union, with the mount options users get (those of
 * `layerfs mount` and `layerfs-overlay`: src/fuse/mount-options.ts, attribute cache
 * included), and ops of another user run in a process with that uid.
 * Where an engine differs from the kernel, test/helpers/known-differences.ts says so and
 * the difference is asserted.
 */
import * as path from 'node:path';
import { describe, inject } from 'vitest';
import { ORACLE_FUSE_ENGINES } from '../helpers/known-differences.js';
import { FsSubject } from '../helpers/oracle-fs-subject.js';
import { defineUnionOracleSuite } from '../helpers/oracle-suite.js';
import { mountUnion } from '../helpers/union-mount.js';

describe.skipIf(!inject('canMount'))('layerfs over FUSE', () => {
  for (const engine of ORACLE_FUSE_ENGINES) {
    defineUnionOracleSuite(
      `layerfs over FUSE (${engine}) vs kernel overlayfs`,
      async (l) => {
        // No extra options: the defaults every user mount gets.
        const m = await mountUnion(
          { mountpoint: path.join(l.root, 'fmnt'), lowerDirs: l.lowers, upperDir: l.upper, workDir: l.work },
          l.root,
          { LAYERFS_ENGINE: engine },
        );
        return { subject: new FsSubject(`layerfs-fuse-${engine}`, m.mountpoint), close: () => m.stop() };
      },
      { engine, kernelVfs: true },
    );
  }
});
