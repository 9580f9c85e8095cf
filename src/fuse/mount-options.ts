import { readFileSync } from 'node:fs';
import { isRootless } from '../core/user-dirs.js';

/**
 * The libfuse options every layerfs mount uses, each with its reason. native-notes/
 * mount-options.md is the long form; keep the two in step.
 */
export interface MountOptionChoices {
  /** Name shown as the source in /proc/mounts (fsname). */
  fsname: string;
  /** Let other users (container processes) in; the kernel still checks permissions. */
  allowOther: boolean;
  /** Extra raw libfuse options, appended last (a later option wins in libfuse). */
  extra?: string[];
}

/**
 * Whether this process may mount with allow_other: root always; an ordinary user only
 * when /etc/fuse.conf has `user_allow_other` (fusermount3 refuses the option otherwise).
 * Without it, a rootless mount is reachable by the user's own uid only — which is what a
 * rootless container's root is; its other uids (subordinate ids) get EACCES.
 */
export function allowOtherPermitted(conf = '/etc/fuse.conf'): boolean {
  if (!isRootless()) return true;
  let text = '';
  try {
    text = readFileSync(conf, 'utf8');
  } catch {
    return false;
  }
  return text.split('\n').some((l) => l.trim() === 'user_allow_other');
}

/** How long the kernel may trust a lookup or attributes it got from layerfs. */
export const CACHE_SECONDS = 3600;
/** How long attributes may be trusted (see the hard-link note in mountOptions). */
export const ATTR_SECONDS = 1;

/** 128 KiB: the largest request libfuse 2.9 negotiates (32 pages) without max_pages. */
export const MAX_REQUEST_BYTES = 128 * 1024;

export function mountOptions(choices: MountOptionChoices): string[] {
  const opts = [
    `fsname=${choices.fsname}`,
    // type shows as fuse.layerfs, so tooling (and our own cleanup) can find our mounts.
    'subtype=layerfs',
    // The kernel checks permissions against the modes and owners we report, exactly as
    // for a local filesystem; layerfs then never has to reimplement access(2) rules.
    'default_permissions',
    // Inode numbers come from getattr (stable across remounts, unchanged by copy-up)
    // instead of libfuse's own per-mount counter.
    'use_ino',
    // Writes arrive in requests of up to 128 KiB instead of 4 KiB.
    'big_writes',
    `max_write=${MAX_REQUEST_BYTES}`,
    `max_read=${MAX_REQUEST_BYTES}`,
    // open(O_TRUNC) reaches open() instead of a separate truncate: a truncating open of a
    // lower file needs no copy of its data.
    'atomic_o_trunc',
    // Unlinking an open file must not rename it to .fuse_hiddenNNN inside the writable
    // layer; the binding sets flag_nullpath_ok so its handle keeps working.
    'hard_remove',
    // Kernel caching (native-notes/kernel-cache.md): every change to the names in the
    // merged view goes through this mount, so dentries (positive and negative) stay
    // coherent without a timeout. Attributes keep libfuse's 1 s: the high-level API gives
    // each hard-link name its own kernel inode, so a sibling's nlink/size may lag for up
    // to that long. Page caching is decided per open file (keepCache).
    `entry_timeout=${CACHE_SECONDS}`,
    `negative_timeout=${CACHE_SECONDS}`,
    `attr_timeout=${ATTR_SECONDS}`,
  ];
  if (choices.allowOther) opts.push('allow_other');
  return [...opts, ...(choices.extra ?? [])];
}
