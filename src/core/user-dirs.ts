/**
 * Where layerfs keeps things for the user running it. Root keeps the system paths
 * (/var/lib/layerfs, /run/layerfs); any other uid gets the XDG base directories, as
 * rootless podman does, so an ordinary user needs no sudo and no folder made for them:
 *   store:   $XDG_DATA_HOME/layerfs    (default ~/.local/share/layerfs)
 *   runtime: $XDG_RUNTIME_DIR/layerfs  (default /tmp/layerfs-run-<uid>, podman's fallback
 *            when no login session made /run/user/<uid>, e.g. under runuser or cron)
 * `--root` / LAYERFS_ROOT override the store for both.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

/** Root's store, as Docker's is /var/lib/docker. */
export const SYSTEM_STORE_ROOT = '/var/lib/layerfs';
/** Root's runtime state (sockets, logs of detached mount helpers). */
export const SYSTEM_RUNTIME_DIR = '/run/layerfs';

/** True when this process runs as an ordinary user (effective uid ≠ 0). */
export function isRootless(): boolean {
  return (process.geteuid?.() ?? 0) !== 0;
}

let userns: boolean | undefined;

/**
 * True when this process runs in a user namespace other than the machine's: uid 0 there
 * (rootless podman runs its mount_program so) is an ordinary user outside, without
 * trusted.* xattrs or root's folders. The initial namespace maps every id to itself.
 */
export function inUserNamespace(): boolean {
  if (userns === undefined) {
    let map = '';
    try {
      map = readFileSync('/proc/self/uid_map', 'utf8');
    } catch {
      // No /proc: nothing says otherwise.
    }
    userns = map !== '' && map.trim().split(/\s+/).join(' ') !== '0 0 4294967295';
  }
  return userns;
}

/** CAP_SYS_ADMIN's bit in /proc/PID/status's capability masks. */
const CAP_SYS_ADMIN = 21n;

/** Whether a /proc/PID/status text shows CAP_SYS_ADMIN in the effective set. */
export function effectiveSysAdmin(status: string): boolean {
  const m = /^CapEff:\s*([0-9a-fA-F]+)$/m.exec(status);
  return m !== null && ((BigInt(`0x${m[1]}`) >> CAP_SYS_ADMIN) & 1n) === 1n;
}

/**
 * What the kernel's `capable(CAP_SYS_ADMIN)` answers for this process: CAP_SYS_ADMIN in its
 * effective set *and* the initial user namespace. Root of a user namespace (rootless
 * podman's mount_program) has the capability only over that namespace's own objects, so
 * the calls that ask `capable()` (FUSE's backing-file ioctls) refuse it with EPERM.
 */
export function capableSysAdmin(): boolean {
  if (inUserNamespace()) return false;
  try {
    return effectiveSysAdmin(readFileSync('/proc/self/status', 'utf8'));
  } catch {
    return false;
  }
}

/** An absolute XDG variable, else undefined (the spec says to ignore relative ones). */
function xdg(name: string): string | undefined {
  const v = process.env[name];
  return v !== undefined && v.startsWith('/') ? v : undefined;
}

/** The default store root for this user. */
export function defaultStoreRoot(): string {
  if (!isRootless()) return SYSTEM_STORE_ROOT;
  return join(xdg('XDG_DATA_HOME') ?? join(process.env.HOME || homedir(), '.local', 'share'), 'layerfs');
}

/** The runtime folder for this user (may not exist yet; create it with mode 0700). */
export function runtimeDir(): string {
  if (!isRootless() && !inUserNamespace()) return SYSTEM_RUNTIME_DIR;
  const base = xdg('XDG_RUNTIME_DIR');
  if (base) return join(base, 'layerfs');
  // uid 0 of a user namespace is someone else outside: name the folder by the host uid.
  return isRootless() ? `/tmp/layerfs-run-${process.geteuid!()}` : `/tmp/layerfs-run-ns${hostUidOfRoot()}`;
}

/** The host uid that uid 0 of this user namespace is (from /proc/self/uid_map), or 'unknown'. */
function hostUidOfRoot(): string {
  try {
    const line = readFileSync('/proc/self/uid_map', 'utf8').split('\n').find((l) => l.trim().split(/\s+/)[0] === '0');
    return line?.trim().split(/\s+/)[1] ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

/**
 * The runtime folder of one store: root keeps `<store>/runtime` (as before); an ordinary
 * user's lives under runtimeDir(), keyed by the store's path so two `--root` stores of one
 * user never list each other's containers.
 */
export function storeRuntimeDir(storeRoot: string): string {
  if (!isRootless()) return join(storeRoot, 'runtime');
  const key = createHash('sha256').update(resolve(storeRoot)).digest('hex').slice(0, 12);
  return join(runtimeDir(), `store-${key}`);
}
