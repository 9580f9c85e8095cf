/**
 * The lower-index cache of `layerfs-overlay` mounts (containers-storage's raw `diff`
 * directories), which have no store to key a cache by. Building the index of a Debian
 * minbase (6,129 paths) costs a mount ~250 ms; loading a cache ~0.
 *
 * Why a cache is safe here, and what proves it current: containers-storage fills a layer's
 * `diff` once (ApplyDiff into a fresh directory) and never writes it again once it is a
 * lower; buildah commits a RUN step as a new layer, not by reusing the container's upper.
 * The cache file's name still carries a stamp of every directory of every lower (relative
 * path, device, inode, mtime and ctime, in ns): adding, removing, renaming or replacing an
 * entry anywhere (what tar extraction, `rm` and every atomic writer do) changes its
 * directory's mtime and ctime, so the name changes and the stale file is never opened.
 * The walk reads directories only, in C (src/sys/native/dir-stamps.c: ~30 ms for 770
 * directories in JS, against ~300 ms to lstat all 6,129 paths, which is what the build
 * itself costs). Not seen: a file rewritten in place
 * inside a lower without touching its directory — no layer writer does that; a hand edit of
 * a lower is undefined for kernel overlayfs too. The cache file also checks each root's
 * inode and ctime itself (lower-index-cache.ts).
 *
 * Kept in the runtime folder (root: /run/layerfs, a tmpfs, so a reboot clears it), never in
 * `diff/`, which the container would see; written by the mount process (temp + rename),
 * unused when unreadable or stale.
 */
import { createHash } from 'node:crypto';
import { mkdir, readdir, rm, stat, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { runtimeDir } from '../core/user-dirs.js';
import { dirStamps } from '../sys/native.js';

/** How many cache files to keep (one per distinct lower set; ~1 MB each for a minbase). */
const KEEP = 32;

/** The folder holding the caches. */
export function overlayIndexDir(): string {
  return join(runtimeDir(), 'overlay-index');
}

/** The cache file for `lowerDirs` (real paths, top first) as they are now, or undefined when a lower cannot be walked. */
export async function overlayIndexCache(lowerDirs: string[]): Promise<string | undefined> {
  const stamp = createHash('sha256');
  try {
    for (const dir of lowerDirs) {
      stamp.update(`\0lower ${dir}\0`);
      stamp.update(dirStamps(dir));
    }
  } catch {
    return undefined; // unreadable: the mount builds its index and caches nothing
  }
  const dir = overlayIndexDir();
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
  } catch {
    return undefined; // no runtime folder to keep it in: the mount goes on without a cache
  }
  return join(dir, `${setKey(lowerDirs)}-${stamp.digest('hex').slice(0, 32)}.idx`);
}

/** Name prefix shared by every cache of one lower set. */
function setKey(lowerDirs: string[]): string {
  return createHash('sha256').update(lowerDirs.join('\0')).digest('hex').slice(0, 16);
}

/**
 * After a mount: marks `file` as just used and drops the set's stale caches and the least
 * recently used beyond KEEP. Best effort: a cache folder that cannot be tidied costs disk,
 * never a mount.
 */
export async function tidyOverlayIndexCaches(file: string): Promise<void> {
  const dir = overlayIndexDir();
  const name = file.slice(dir.length + 1);
  const prefix = name.slice(0, name.indexOf('-') + 1);
  const now = new Date();
  await utimes(file, now, now).catch(() => undefined);
  const names = (await readdir(dir).catch(() => [] as string[])).filter((n) => n.endsWith('.idx') && n !== name);
  const stale = names.filter((n) => n.startsWith(prefix));
  const others = await Promise.all(
    names.filter((n) => !n.startsWith(prefix)).map(async (n) => ({ n, t: (await stat(join(dir, n)).catch(() => undefined))?.mtimeMs ?? 0 })),
  );
  others.sort((a, b) => b.t - a.t);
  const drop = [...stale, ...others.slice(KEEP - 1).map((o) => o.n)];
  await Promise.all(drop.map((n) => rm(join(dir, n), { force: true })));
}
