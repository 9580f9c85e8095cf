/**
 * The kernel's rule for `trusted.*` xattrs, applied to FUSE callers: only a caller with
 * CAP_SYS_ADMIN (in the initial user namespace: `capable()`) sees or changes them. For
 * getxattr/setxattr/removexattr the VFS already refuses before FUSE is asked; listxattr
 * is passed through and each filesystem filters its list (ext4's trusted handler does), so
 * without this an unprivileged `listxattr` on the mount showed `trusted.*` names.
 *
 * Lives in the union, not in a FUSE server, so every engine serving a PathFilesystem gets
 * it by passing the request's Caller (core/filesystem.ts). A call without a Caller is the
 * process itself (tests, tools in this repo) and is privileged.
 */
import { readFile, readlink } from 'node:fs/promises';
import type { Caller } from '../core/filesystem.js';
import { effectiveSysAdmin } from '../core/user-dirs.js';

const TRUSTED = 'trusted.';

let ownUserNs: Promise<string> | undefined;

/**
 * Whether `caller` has CAP_SYS_ADMIN in its effective set and lives in our user namespace
 * (root of a container's own user namespace has every capability there, but not here).
 * A caller whose /proc entry is gone or unreadable is unprivileged.
 */
export async function hasSysAdmin(caller: Caller): Promise<boolean> {
  if (caller.pid <= 0) return false;
  try {
    ownUserNs ??= readlink('/proc/self/ns/user');
    const [status, ns, own] = await Promise.all([readFile(`/proc/${caller.pid}/status`, 'utf8'), readlink(`/proc/${caller.pid}/ns/user`), ownUserNs]);
    return ns === own && effectiveSysAdmin(status);
  } catch {
    return false;
  }
}

export function isTrustedXattr(name: string): boolean {
  return name.startsWith(TRUSTED);
}

/** Whether `caller` may read or change the xattr `name` (always, unless it is trusted.*). */
export async function mayAccessXattr(name: string, caller: Caller | undefined): Promise<boolean> {
  return caller === undefined || !isTrustedXattr(name) || hasSysAdmin(caller);
}

/** `names` without trusted.* ones, unless `caller` may see them (/proc is read only when there are any). */
export async function visibleXattrNamesFor(names: string[], caller: Caller | undefined): Promise<string[]> {
  if (caller === undefined || !names.some(isTrustedXattr)) return names;
  return (await hasSysAdmin(caller)) ? names : names.filter((n) => !isTrustedXattr(n));
}
