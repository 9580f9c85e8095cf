/**
 * FUSE_INIT: the protocol version and features the engine and the kernel agree on
 * (native-notes/engine.md says why each one). The engine speaks 7.40 and takes less when
 * the kernel offers less; a feature is on only when the kernel offered it.
 */
import { InitFlag, Out, type StructView } from './wire.js';

export const ENGINE_MINOR = 40;
/** 256 pages of 4 KiB: READ and WRITE requests of up to 1 MiB. */
export const MAX_PAGES = 256;
export const MAX_WRITE = MAX_PAGES * 4096;
/** Requests the kernel keeps in flight for readahead and async direct I/O. */
const MAX_BACKGROUND = 64;
const CONGESTION_THRESHOLD = 48;
/** The layers live on a plain filesystem (depth 0): the mount may stack one on top. */
const MAX_STACK_DEPTH = 1;

/** What the engine asks for, whatever the kernel offers. */
const WANTED =
  InitFlag.ASYNC_READ | // readahead requests in parallel
  InitFlag.ATOMIC_O_TRUNC | // open(O_TRUNC) in one OPEN: no copy of data about to be dropped
  InitFlag.BIG_WRITES |
  InitFlag.MAX_PAGES |
  // Entries with attributes, for every READDIR (no READDIRPLUS_AUTO, native-notes/engine.md
  // "READDIRPLUS always"): with the kernel's heuristic only a listing's first chunk came
  // with attributes, and a tar, du or chown -R, which read a whole directory before
  // stat'ing its entries, sent a LOOKUP per name after that (48,387 in a cold tar of the
  // bench tree; -30 % mount CPU without them; a names-only find costs +20 %).
  InitFlag.DO_READDIRPLUS |
  (process.env.LAYERFS_READDIRPLUS === 'auto' ? InitFlag.READDIRPLUS_AUTO : 0n) |
  InitFlag.ASYNC_DIO |
  InitFlag.PARALLEL_DIROPS | // lookups and readdirs in one directory need not queue up
  InitFlag.CACHE_SYMLINKS | // symlink targets never change behind the engine's back
  InitFlag.DIRECT_IO_ALLOW_MMAP | // a FOPEN_DIRECT_IO fallback open can still be mmap'ed
  InitFlag.INIT_EXT;

export interface InitChoice {
  minor: number;
  /** Flags both sides agreed on (flags2 in bits 32–63). */
  flags: bigint;
  passthrough: boolean;
  /** An errno name when the kernel's protocol cannot be spoken. */
  error?: 'EPROTO';
}

/**
 * Asked for when the filesystem keeps POSIX ACLs and applies umasks itself
 * (PathFilesystem.posixAcls). POSIX_ACL: the kernel enforces ACLs in its permission checks
 * (default_permissions) and caches each inode's ACLs, "none" included, until a SETATTR,
 * SETXATTR/REMOVEXATTR of an ACL or an inode invalidation — `ls -l`'s getxattr of
 * system.posix_acl_access is then answered by the kernel after the first. DONT_MASK: the
 * kernel sends create modes unmasked (with POSIX_ACL it would apply the umask even where
 * the parent's default ACL must decide instead, as on the kernel's overlayfs).
 */
const ACL_FLAGS = InitFlag.POSIX_ACL | InitFlag.DONT_MASK;
/**
 * With ACLs: the longer setxattr_in, whose ACL_KILL_SGID says when setting an ACL must
 * clear setgid (an owner outside the file's group without CAP_FSETID: the kernel decides,
 * the server does it, as the kernel's overlayfs does in ovl_set_or_remove_acl).
 */
const ACL_EXTRAS = InitFlag.SETXATTR_EXT;

export function negotiateInit(inp: StructView, opts: { passthrough: boolean; posixAcls?: boolean }): { choice: InitChoice; reply: Buffer } {
  const major = inp.u32('major');
  const out = new Out('fuse_init_out').u32('major', 7).u32('minor', ENGINE_MINOR);
  // A newer major: answer ours only, the kernel then offers 7.x again.
  if (major !== 7) return { choice: { minor: 0, flags: 0n, passthrough: false, ...(major < 7 ? { error: 'EPROTO' as const } : {}) }, reply: out.buf };
  const minor = Math.min(inp.u32('minor'), ENGINE_MINOR);
  const low = BigInt(inp.u32('flags'));
  const offered = low | ((low & InitFlag.INIT_EXT) !== 0n ? BigInt(inp.u32('flags2')) << 32n : 0n);
  const wanted = WANTED | (opts.passthrough && minor >= 40 ? InitFlag.PASSTHROUGH : 0n) | (opts.posixAcls === true ? ACL_FLAGS | ACL_EXTRAS : 0n);
  let flags = wanted & offered;
  // One without the other is wrong either way (see ACL_FLAGS).
  if ((flags & ACL_FLAGS) !== ACL_FLAGS) flags &= ~(ACL_FLAGS | ACL_EXTRAS);
  const passthrough = (flags & InitFlag.PASSTHROUGH) !== 0n;
  out
    .u32('minor', minor)
    .u32('max_readahead', inp.u32('max_readahead'))
    .u32('flags', Number(flags & 0xffffffffn))
    .u32('flags2', Number(flags >> 32n))
    .u16('max_background', MAX_BACKGROUND)
    .u16('congestion_threshold', CONGESTION_THRESHOLD)
    .u32('max_write', MAX_WRITE)
    .u32('time_gran', 1)
    .u16('max_pages', (flags & InitFlag.MAX_PAGES) !== 0n ? MAX_PAGES : 0);
  if (passthrough) out.u32('max_stack_depth', MAX_STACK_DEPTH);
  return { choice: { minor, flags, passthrough }, reply: out.buf };
}
