/**
 * The contract between a filesystem implementation (the union in `union/`) and whatever
 * serves it (the FUSE adapter in `fuse/`, or a test calling it directly). Nothing here
 * knows about FUSE.
 *
 * Paths and names are BYTE STRINGS: JavaScript strings in which each UTF-16 code unit is
 * one byte (0–255) of the real name, i.e. latin1. This keeps names that are not valid
 * UTF-8 (e.g. bytes 0xff 0xfe) exact end to end. Convert with `toFsPath()` before
 * calling node:fs, and with `fromFsName()` on names node:fs returns as Buffers.
 * Paths are absolute within the filesystem: '/', '/etc', '/etc/passwd'.
 *
 * Errors: a method rejects with a LayerfsError carrying `errno`, or with a Node system
 * error (string `code` such as 'ENOENT'); the server turns either into an errno reply.
 */

import type { DirectIo, LowerFile, MetadataMirror } from './fast-path.js';

export type { DirectIo, LowerFile, MetadataMirror, UpperFacts } from './fast-path.js';

/** Who made the request (from the kernel's FUSE request header). */
export interface Caller {
  uid: number;
  gid: number;
  pid: number;
  umask: number;
}

export interface Timespec {
  sec: number;
  nsec: number;
}

/** utimensat(2)'s three cases for each timestamp. */
export type TimeUpdate = Timespec | 'now' | 'omit';

export interface FileStat {
  ino: number | bigint;
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  rdev: number;
  size: number | bigint;
  blksize: number;
  blocks: number | bigint;
  atime: Timespec;
  mtime: Timespec;
  ctime: Timespec;
  /**
   * This name shares its object with other names only until a copy-up gives it an inode
   * of its own (a hard link in a read-only layer): a server that gives the kernel one
   * inode per object gives each such name its own, as the kernel's overlayfs does.
   */
  perName?: boolean;
}

export interface StatFs {
  bsize: number;
  frsize: number;
  blocks: number | bigint;
  bfree: number | bigint;
  bavail: number | bigint;
  files: number | bigint;
  ffree: number | bigint;
  favail: number | bigint;
  fsid: number;
  flag: number;
  namemax: number;
}

/** What PathFilesystem.lookupSync knew about a path that exists. */
export interface LookupAnswer {
  stat: FileStat;
  /** Whether the object has no xattr at all (as hasNoXattrs would say). */
  noXattrs: boolean;
  /** A regular file only a read-only layer holds: its backing file, as lowerFile(fh) would
   * give for a handle open on it. */
  lowerFile?: LowerFile;
  /** A directory only the read-only layers hold (nothing of the writable layer at or below
   * it): its path in the lower index (loopLookups' index), where every name below it is. */
  lowerDir?: string;
}

/** Where the names of a directory are (PathFilesystem.loopDir): a name `upper` holds no
 * entry for (no object, no whiteout) is what the read-only index has at `index` + '/' + name. */
export interface LoopDir {
  /** The directory's path in the index; null: nothing of the read-only layers shows in it. */
  index: string | null;
  /** Its backing directory on the writable layer; null: it has none. */
  upper: Buffer | null;
}

/** What a server needs to look names up in lower-only directories itself
 * (PathFilesystem.loopLookups). */
export interface LoopLookups {
  /** The read-only index as its lower-index cache file's bytes (unchanged while the
   * filesystem lives). */
  index: Buffer;
  /** Whether files found so may be copied up by the server (as LowerFile.unionAt says for
   * those the filesystem finds). */
  copyUp: boolean;
}

/** How getattr of a directory of the writable layer is made from an lstat of its backing
 * directory (PathFilesystem.upperDirStat): what the lstat says, but for these. */
export interface UpperDirStat {
  /** The backing directory. */
  path: Buffer;
  /** The st_ino getattr shows (a merged or copied-up directory keeps its lower one), or
   * undefined: the writable layer's number for the backing inode. */
  ino: number | undefined;
  /** getattr shows one link (a merged directory, as on the kernel's overlayfs). */
  nlinkOne: boolean;
}

/** Where a FUSE server may copy lower files up itself (PathFilesystem.copyUpTarget), as
 * the filesystem's own copy-up would: LowerFile.unionAt says which files. */
export interface CopyUpTarget {
  /** The writable layer's root directory. */
  upper: Buffer;
  /** A private directory on the same filesystem for the temp files. */
  work: Buffer;
  /** The xattr naming the lower object a copy came from. */
  originName: string;
  /** The process umask (fixed while the mount serves). */
  umask: number;
  /** A copy with data is flushed before it is renamed into place (then the filesystem copies it). */
  durable: boolean;
}

export interface DirEntry {
  name: string;
  /** When present, served to the kernel with the entry (saves a getattr per entry). */
  stat?: FileStat;
  /** True when the object is known to have no xattr at all (as hasNoXattrs would say). */
  noXattrs?: boolean;
}

/** RENAME_* flags of renameat2(2). */
export const RenameFlags = { NOREPLACE: 1, EXCHANGE: 2, WHITEOUT: 4 } as const;

/**
 * A path-addressed filesystem. File handles (`fh`) are small positive integers chosen by
 * the implementation. Methods that create things receive the caller so the new inode
 * gets the caller's uid/gid (as a kernel filesystem would).
 */
export interface PathFilesystem {
  getattr(path: string): Promise<FileStat>;
  /**
   * getattr when it can be answered without waiting (e.g. from an in-memory index): the
   * stat, a negative errno (-ENOENT, -ENOTDIR: no Error made for a miss), or undefined
   * when only getattr can tell. A server's LOOKUP tries it first.
   */
  lookupSync?(path: string): LookupAnswer | number | undefined;
  /** The index a server may answer lookups in LookupAnswer.lowerDir directories from, or
   * undefined (none). */
  loopLookups?(): LoopLookups | undefined;
  /** How a server may look names up in directory `path` itself (loopLookups), or undefined
   * (not a directory, or only the filesystem can tell). Valid until something through the
   * mount changes the directory or renames one of its ancestors. */
  loopDir?(path: string): LoopDir | undefined;
  /** Whether `path` is a directory, another object or missing, when that is known without
   * waiting (undefined: only getattr can tell). */
  kindSync?(path: string): 'dir' | 'other' | 'missing' | undefined;
  /** For a directory of the writable layer whose getattr is an lstat of its backing
   * directory with only UpperDirStat's changes, how; else undefined (not such a directory,
   * or one whose owner or mode the filesystem keeps elsewhere). Valid until something
   * through the mount changes that directory or renames or removes one of its ancestors. */
  upperDirStat?(path: string): UpperDirStat | undefined;
  /** Where a server may copy lower files up itself, or undefined (none may be). */
  copyUpTarget?(): CopyUpTarget | undefined;
  /**
   * The server copied `path` up itself (a LowerFile with a unionAt, copied as the
   * filesystem's copy-up would) and, if `fd` >= 0, opened the copy: record the copy, and
   * take `fd` as the open file of handle `fh` (a number the server chose, outside the
   * filesystem's own range), opened by `uid`.
   */
  adoptCopyUp?(path: string, fd: number, fh: number, uid: number): void;
  /** The server closed the fd of handle `fh` (adopted by adoptCopyUp) itself: forget it. */
  forgetAdopted?(fh: number): void;
  fgetattr?(path: string, fh: number): Promise<FileStat>;
  readlink(path: string): Promise<string>;
  readdir(path: string): Promise<DirEntry[]>;
  open(path: string, flags: number, caller: Caller): Promise<number>;
  create(path: string, mode: number, flags: number, caller: Caller): Promise<number>;
  read(path: string, fh: number, buf: Buffer, length: number, position: number): Promise<number>;
  write(path: string, fh: number, buf: Buffer, length: number, position: number): Promise<number>;
  flush?(path: string, fh: number): Promise<void>;
  release(path: string, fh: number): Promise<void>;
  fsync(path: string, datasync: boolean, fh: number): Promise<void>;
  truncate(path: string, size: number, caller: Caller): Promise<void>;
  ftruncate(path: string, fh: number, size: number): Promise<void>;
  chmod(path: string, mode: number, caller: Caller): Promise<void>;
  chown(path: string, uid: number, gid: number, caller: Caller): Promise<void>;
  utimens(path: string, atime: TimeUpdate, mtime: TimeUpdate, caller: Caller): Promise<void>;
  mknod(path: string, mode: number, rdev: number, caller: Caller): Promise<void>;
  mkdir(path: string, mode: number, caller: Caller): Promise<void>;
  rmdir(path: string, caller: Caller): Promise<void>;
  unlink(path: string, caller: Caller): Promise<void>;
  symlink(target: string, path: string, caller: Caller): Promise<void>;
  link(existing: string, newPath: string, caller: Caller): Promise<void>;
  rename(from: string, to: string, flags: number, caller: Caller): Promise<void>;
  setxattr(path: string, name: string, value: Buffer, flags: number, caller: Caller): Promise<void>;
  /**
   * Resolves null when the attribute does not exist (ENODATA). `caller`, when given, is
   * who asks: a filesystem hides what the kernel would hide from it (`trusted.*` without
   * CAP_SYS_ADMIN, union/caller-privilege.ts). A server must pass it; omitted = privileged.
   */
  getxattr(path: string, name: string, caller?: Caller): Promise<Buffer | null>;
  /** Names as the caller may see them (see getxattr on `caller`). */
  listxattr(path: string, caller?: Caller): Promise<string[]>;
  removexattr(path: string, name: string, caller: Caller): Promise<void>;
  /**
   * True when `path` is known to carry no xattr at all (getxattr would answer ENODATA for
   * any name, listxattr nothing), answered synchronously: a server then skips the call
   * (`ls -l` asks two names of every file). False when unknown or missing.
   */
  hasNoXattrs?(path: string): boolean;
  /**
   * True when the filesystem keeps POSIX ACLs (`system.posix_acl_*`) on the objects whose
   * modes it reports, so that a mode change updates the ACL and an ACL change the mode, and
   * applies the creating caller's umask itself (`Caller.umask`; not when a default ACL
   * governs the new object's mode). A server may then let the kernel enforce and cache ACLs
   * and pass modes unmasked (FUSE_POSIX_ACL + FUSE_DONT_MASK). Absent: no.
   */
  readonly posixAcls?: boolean;
  statfs(path: string): Promise<StatFs>;
  /**
   * Whether the kernel may keep this open file's cached pages from earlier opens
   * (content that cannot change behind the kernel's back, e.g. a read-only layer).
   * Absent: never.
   */
  keepCache?(fh: number): boolean;
  /**
   * The backing fd of an open file, when the server may read it (and write it, if
   * `write`) itself instead of calling read/write: the data then never crosses into
   * JavaScript. The fd must stay open until `release`.
   */
  directIo?(fh: number): DirectIo | undefined;
  /**
   * For a handle open read-only on a file of a read-only layer: that file, so a server may
   * open it again itself for later read-only opens of the same object, as long as nothing
   * changed through the filesystem since (after any change it must ask anew). Undefined
   * for any other handle.
   */
  lowerFile?(fh: number): LowerFile | undefined;
  /** fgetattr of a descriptor a server opened itself on a lowerFile (ino: its `ino`).
   * Synchronous: the server may close the descriptor as soon as this returns. */
  fgetattrLowerFd?(fd: number, ino: number): FileStat;
  /**
   * Hands the filesystem a mirror the server answers from without calling it (see
   * MetadataMirror). Called once, before the mount serves its first request.
   */
  attachMirror?(mirror: MetadataMirror): void;
  /**
   * Calls `listener` with every path whose copy-up changed attributes without a request
   * that answers with them, so a server that lets the kernel cache attributes drops that
   * object's: a directory copied up for a change below it (a merged directory reports
   * nlink 1, as the kernel's overlayfs does), and a file with other names below, copied up
   * by an open (its copy is an object of its own: one link, its own inode number, while
   * those names keep the lower one's). Called once, before the mount serves its first request.
   */
  onCopiedUp?(listener: (path: string) => void): void;
  /** Called once when the server stops; closes whatever the filesystem holds open. */
  destroy?(): Promise<void>;
}

/** A byte-string path as node:fs wants it (a Buffer, so no UTF-8 re-encoding happens). */
export function toFsPath(byteString: string): Buffer {
  return Buffer.from(byteString, 'latin1');
}

/** A name node:fs returned as a Buffer, as a byte string. */
export function fromFsName(name: Buffer): string {
  return name.toString('latin1');
}
