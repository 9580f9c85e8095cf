/**
 * The runtime creates a mount point for every mount of the spec that the image lacks —
 * `/proc`, `/dev`, `/sys`, and the empty files `/etc/hosts`, `/etc/hostname`,
 * `/etc/resolv.conf` it binds over — and on a union mount those land in the writable
 * layer. Neither a RUN step's layer nor `diff` and `commit` of a run container may show
 * them (BuildKit removes them the same way; Docker keeps them in an init layer below the
 * container's): once the container's mount is gone, an empty file or folder at one of
 * those paths that no lower layer has is removed from the writable layer.
 */
import { lstat, readdir, rmdir, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { lgetxattr } from '../sys/native.js';
import { OPAQUE_XATTR } from '../overlay/index.js';
import { defaultMounts } from './docker-defaults.js';
import { nullOnSystemError } from '../core/errors.js';

/** Mount destinations of a RUN container, deepest first. */
function stubPaths(): string[] {
  const paths = [...defaultMounts().map((m) => m.destination), '/etc/resolv.conf', '/etc/hostname', '/etc/hosts'];
  return [...new Set(paths)].sort((a, b) => b.split('/').length - a.split('/').length);
}

/** The lstat of a path in the image below (top layer first; a whiteout hides it). */
async function inLowers(lowerDirs: string[], rel: string): Promise<Awaited<ReturnType<typeof lstat>> | undefined> {
  for (const dir of lowerDirs) {
    const st = await lstat(join(dir, rel)).catch(() => undefined);
    if (!st) continue;
    return st.isCharacterDevice() && st.rdev === 0 ? undefined : st;
  }
  return undefined;
}

/**
 * A folder the stubs made the mount copy up (`/etc` for `/etc/hosts`) that is now empty,
 * not opaque, and the same as below is no change: it leaves the layer too.
 */
async function removeIdleCopyUp(upperDir: string, lowerDirs: string[], rel: string): Promise<void> {
  if (rel === '/' || rel === '.') return;
  const host = join(upperDir, rel);
  const st = await lstat(host).catch(() => undefined);
  const below = await inLowers(lowerDirs, rel);
  if (!st?.isDirectory() || !below?.isDirectory() || (await readdir(host)).length > 0) return;
  if (st.mode !== below.mode || st.uid !== below.uid || st.gid !== below.gid) return;
  if ((await lgetxattr(host, OPAQUE_XATTR).catch(nullOnSystemError)) !== null) return;
  await rmdir(host);
}

/** Removes the runtime's mount stubs from `upperDir`; `lowerDirs` top layer first. */
export async function removeMountStubs(upperDir: string, lowerDirs: string[]): Promise<string[]> {
  const removed: string[] = [];
  for (const p of stubPaths()) {
    const host = join(upperDir, p);
    const st = await lstat(host).catch(() => undefined);
    if (!st || (await inLowers(lowerDirs, p))) continue;
    if (st.isFile() && st.size === 0) await unlink(host);
    else if (st.isDirectory() && (await readdir(host)).length === 0) await rmdir(host);
    else continue;
    removed.push(p);
    await removeIdleCopyUp(upperDir, lowerDirs, dirname(p));
  }
  return removed;
}
