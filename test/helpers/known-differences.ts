/**
 * Every difference from the kernel's overlayfs that the oracle knows of, in one place,
 * per engine, each with what explains it. The oracle asserts each one as the difference
 * it is: where one applies, layerfs must give exactly the predicted answer, and an
 * engine that no longer shows it (it agrees with the kernel) fails the test with "known
 * difference … did not occur", so whoever fixed it removes the engine from the list here.
 *
 * Engines: 'direct' is the union object called without FUSE; 'fuse-native' is today's
 * FUSE engine (libfuse 2.9's high-level API through fuse-native); 'layerfs' is the engine
 * of issue 12 (its own FUSE protocol core), chosen with LAYERFS_ENGINE in the mount process.
 */
import { DEFAULT_ENGINE } from '../../src/fuse/engine-choice.js';
import type { Op, OpResult } from './oracle.js';

export type Engine = 'direct' | 'fuse-native' | 'layerfs';

/** The FUSE engines the oracle runs (LAYERFS_ORACLE_ENGINES=fuse-native,layerfs for both):
 * by default the default engine; scripts/test's second pass names the other. */
export const ORACLE_FUSE_ENGINES: Engine[] = (process.env.LAYERFS_ORACLE_ENGINES ?? DEFAULT_ENGINE)
  .split(',').filter(Boolean).map((e) => {
    if (e !== 'fuse-native' && e !== 'layerfs') throw new Error(`LAYERFS_ORACLE_ENGINES: unknown engine ${e}`);
    return e;
  });

export interface KnownDifference {
  id: string;
  engines: readonly Engine[];
  /** What layerfs does instead, and the note or issue that explains it. */
  why: string;
}

export const KNOWN_DIFFERENCES = {
  renameFlags: {
    id: 'rename-flags-einval',
    engines: ['fuse-native'],
    why: 'renameat2 with RENAME_EXCHANGE or RENAME_NOREPLACE answers EINVAL and does nothing: libfuse 2.9\'s '
      + 'high-level API has no rename flags (FUSE_RENAME2 came with protocol 7.23), so the kernel refuses '
      + 'before layerfs sees the request; errors the VFS finds first (ENOENT, EEXIST, …) still come. '
      + 'native-notes/, issue 12 (the new engine speaks FUSE_RENAME2).',
  },
  hardLinkAttrLag: {
    id: 'hard-link-sibling-attr-lag',
    engines: ['fuse-native'],
    why: 'after a change through one name of a hard link (link, unlink, chmod, chown, write, truncate), the '
      + 'other names and descriptors opened through them may show their previous attributes (nlink, mode, '
      + 'owner, size, mtime, and st_ino after a copy-up) for up to attr_timeout (1 s): the high-level API gives '
      + 'each name its own kernel inode; a read through such a name stops at the size it still shows. '
      + 'Likewise a lower directory\'s nlink, which becomes 1 when a copy-up beneath it makes it a merged '
      + 'directory (as in the kernel\'s overlayfs), without a request the kernel could see. '
      + 'src/fuse/mount-options.ts, native-notes/kernel-cache.md, issue 12.',
  },
  fstatUnlinkedEnoent: {
    id: 'fstat-of-unlinked-name-enoent',
    engines: ['fuse-native'],
    why: 'fstat(2) of a descriptor whose name was unlinked answers ENOENT (reads and writes through it '
      + 'still work): since Linux 4.11 the kernel sends fstat as a GETATTR by node without the file handle, '
      + 'and libfuse 2.9\'s high-level API has no path for an unlinked node (hard_remove), so it never '
      + 'reaches layerfs\'s fgetattr. Found by this oracle (issue 19); issue 12 (the new engine keeps nodes).',
  },
  readOnlyFdStaysOnLower: {
    id: 'read-only-fd-stays-on-lower',
    engines: ['direct', 'layerfs'],
    why: 'layerfs engine: a descriptor opened read-only on a lower file reads it by FUSE passthrough, whose '
      + 'backing file the kernel fixes at open (one backing file per inode); the open that copies the file up '
      + 'for writing gets a new kernel inode for the name (src/engine/open-files.ts), and the old descriptor '
      + 'keeps the lower file. Direct: through the union object\'s own calls, a handle opened read-only on a lower file before that file '
      + 'is copied up keeps showing the lower file as it was (fgetattr, read); the kernel\'s overlayfs (since '
      + 'Linux 4.19) moves such descriptors to the copy. Over FUSE (fuse-native) the oracle sees the kernel\'s '
      + 'behaviour: fstat is a GETATTR by path there. layerfs keeps each handle\'s backing fd '
      + '(src/union/file-handles.ts). Found by this oracle (issue 19).',
  },
} as const satisfies Record<string, KnownDifference>;

export function applies(d: KnownDifference, engine: Engine): boolean {
  return d.engines.includes(engine);
}

/** What the oracle must see from an engine for one op. */
export interface OpExpectation {
  result: OpResult;
  /** Set when a known difference decides `result` (and it differs from the kernel's). */
  difference?: KnownDifference;
  /** Ops that undo the kernel's effect, when by the difference layerfs did nothing. */
  undoOnKernel?: Op[];
}

/** Errors of renameat2 that the VFS finds before the filesystem's rename is called. */
const VFS_RENAME_ERRNOS = new Set(['ENOENT', 'EEXIST', 'ENOTDIR', 'EISDIR', 'EINVAL', 'ENAMETOOLONG', 'ELOOP', 'EACCES', 'EPERM', 'EXDEV', 'EBUSY']);

/** The answer `engine` must give to `op`, given the kernel's answer. */
export function expectOp(engine: Engine, op: Op, kernel: OpResult): OpExpectation {
  const inner = op.op === 'as' ? op.do : op;
  if (inner.op === 'rename' && inner.flags !== undefined && inner.flags !== 'whiteout' && applies(KNOWN_DIFFERENCES.renameFlags, engine)) {
    if (!kernel.ok && VFS_RENAME_ERRNOS.has(kernel.errno)) return { result: kernel };
    // A name renamed onto itself: the VFS answers 0 before the filesystem is asked.
    if (inner.from === inner.to) return { result: kernel };
    const undo: Op[] = !kernel.ok ? [] : inner.flags === 'exchange' ? [inner] : [{ op: 'rename', from: inner.to, to: inner.from }];
    return { result: { ok: false, errno: 'EINVAL' }, difference: KNOWN_DIFFERENCES.renameFlags, undoOnKernel: undo };
  }
  return { result: kernel };
}
