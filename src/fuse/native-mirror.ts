/**
 * The MetadataMirror a filesystem fills, backed by the binding's native fast path: facts
 * about the writable layer become the flag words layerfs-fast.h reads.
 */
import type { MetadataMirror } from '../core/filesystem.js';
import type { NativeFastPath } from '../sys/fuse-native.js';

/** Flag bits of `lf_fast_upper_set` (layerfs-fast.h). */
const HIDES_LOWER = 1;
const NO_XATTRS = 2;
const OWN_STAT = 4;
const WHITEOUT = 8;

export function nativeMirror(fast: NativeFastPath): MetadataMirror {
  return {
    loadReadOnlyIndex: (blob) => fast.loadIndex(blob),
    upperRoot: (dir) => fast.upperRoot(dir.toString('latin1')),
    upperSet: (path, facts) =>
      fast.upperSet(
        path,
        (facts.hidesLower ? HIDES_LOWER : 0) | (facts.noXattrs ? NO_XATTRS : 0) | (facts.ownStat ? OWN_STAT : 0) | (facts.kind === 'whiteout' ? WHITEOUT : 0),
        facts.originIno ?? 0,
      ),
    upperRemoveTree: (path, subtree) => fast.upperRemoveTree(path, subtree),
  };
}
