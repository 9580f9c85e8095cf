/**
 * The fast path's contract: what a server may do without calling the PathFilesystem.
 * A filesystem that offers it (union/union-fs.ts) hands out backing fds (`DirectIo`) and
 * keeps a mirror of its metadata exact (`MetadataMirror`); a server that can use it
 * (fuse/native-mirror.ts, engine/open-files.ts) answers from them natively. Neither side
 * knows the other: both code against these types, re-exported by core/filesystem.ts.
 */

import type { FileStat } from './filesystem.js';

/** See PathFilesystem.directIo. */
export interface DirectIo {
  fd: number;
  write: boolean;
  /** fgetattr may be answered by fstat(fd) with st_ino = 2^40 + backing inode (an
   * object made in the writable layer, numbered as src/overlay/inode.ts upperIno does). */
  upperIno: boolean;
}

/** See PathFilesystem.lowerFile. */
export interface LowerFile {
  /** The backing file, in a layer cache (never written after import). */
  path: Buffer;
  /** Its size as the index has it: another size is damage, for the filesystem to report. */
  size: number;
  /** st_ino as fgetattr reports it for a handle of this file. */
  ino: number;
  /** What getattr of its path answers (constant while it stays a lower file). */
  stat: FileStat;
  /** Where in `path` its path in the union begins (the layer's root ends), when a server
   * may copy it up itself into PathFilesystem.copyUpTarget (a regular file with no xattrs,
   * no set-id bit and one link, reached by its own lower path); else undefined. */
  unionAt?: number;
}

/** What the writable layer holds at one path (see MetadataMirror.upperSet). */
export interface UpperFacts {
  kind: 'dir' | 'other' | 'whiteout';
  /** It hides what the read-only part has below it. */
  hidesLower: boolean;
  /** Known to have no visible xattr (getxattr ENODATA, listxattr empty). */
  noXattrs: boolean;
  /** Its stat is the upper object's own (no lower directory merged into it), with st_ino
   * `originIno` or else 2^40 + backing inode: the server may lstat it itself. */
  ownStat: boolean;
  originIno?: number | undefined;
}

/**
 * What a server's native side may answer alone: the read-only part of a union (an
 * immutable index of paths, loaded once) minus every path the writable part holds.
 * The filesystem keeps the writable part exact: `upperSet` before it replies to the op
 * that created or changed a path, `upperRemoveTree` when a path (and all below) goes.
 * A path below one that hides the read-only part is always asked of the filesystem; a
 * path in the writable set is too, except that a whiteout is ENOENT and an object with
 * `ownStat` is stat'ed in the upper directory by the server itself.
 */
export interface MetadataMirror {
  /**
   * The read-only index as the bytes of its lower-index cache file (format:
   * src/engine/formats/index-cache.ts), read in place: they stay alive and unchanged as
   * long as the filesystem does.
   */
  loadReadOnlyIndex(bytes: Buffer): void;
  /** Where the writable layer's objects are (a 'other' path is lstat'ed there). */
  upperRoot(dir: Buffer): void;
  upperSet(path: string, facts: UpperFacts): void;
  /** `subtree` false: `path` alone (a non-directory has nothing beneath it). */
  upperRemoveTree(path: string, subtree: boolean): void;
}
