/**
 * The MetadataMirror a filesystem fills, backed by the binding's native fast path: facts
 * about the writable layer become the flag word of src/engine/formats/upper-facts.ts.
 */
import type { MetadataMirror } from '../core/filesystem.js';
import { upperFlags } from '../engine/formats/upper-facts.js';
import type { NativeFastPath } from '../sys/fuse-native.js';

export function nativeMirror(fast: NativeFastPath): MetadataMirror {
  return {
    loadReadOnlyIndex: (bytes) => fast.loadIndex(bytes),
    upperRoot: (dir) => fast.upperRoot(dir.toString('latin1')),
    upperSet: (path, facts) => fast.upperSet(path, upperFlags(facts), facts.originIno ?? 0),
    upperRemoveTree: (path, subtree) => fast.upperRemoveTree(path, subtree),
  };
}
