/**
 * Paths inside a container's root filesystem, seen from the host. An image's symlinks
 * must resolve against the container's root, never the host's: `/etc/passwd -> /x/y` in
 * an image means `<rootfs>/x/y`. Every host-side access to the rootfs (reading passwd,
 * creating the working directory) goes through `resolveInRootfs`.
 */
import { lstat, mkdir, readFile, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { LayerfsError, hasErrnoCode } from '../core/errors.js';

const MAX_LINKS = 40;

/**
 * The host path of `path` inside `rootfs`, following symlinks as if `rootfs` were `/`
 * (`..` never climbs above it). Components that do not exist are appended as they are.
 */
export async function resolveInRootfs(rootfs: string, path: string): Promise<string> {
  const done: string[] = [];
  let todo = path.split('/').filter((p) => p !== '' && p !== '.');
  let links = 0;
  while (todo.length > 0) {
    const part = todo.shift()!;
    if (part === '..') {
      done.pop();
      continue;
    }
    const host = join(rootfs, ...done, part);
    let isLink = false;
    try {
      isLink = (await lstat(host)).isSymbolicLink();
    } catch (err) {
      if (hasErrnoCode(err, 'ENOENT') || hasErrnoCode(err, 'ENOTDIR')) {
        // Nothing below here exists, so there are no more links: finish lexically.
        for (const rest of [part, ...todo]) rest === '..' ? done.pop() : done.push(rest);
        return join(rootfs, ...done);
      }
      throw err;
    }
    if (!isLink) {
      done.push(part);
      continue;
    }
    if (++links > MAX_LINKS) throw new LayerfsError('INVALID_ARGUMENT', `too many levels of symbolic links in ${path} inside the image`, { errno: 'ELOOP' });
    const target = await readlink(host);
    if (target.startsWith('/')) done.length = 0;
    todo = [...target.split('/').filter((p) => p !== '' && p !== '.'), ...todo];
  }
  return join(rootfs, ...done);
}

/** Reads a file of the rootfs, or undefined when it does not exist. */
export async function readRootfsFile(rootfs: string, path: string): Promise<string | undefined> {
  try {
    return await readFile(await resolveInRootfs(rootfs, path), 'utf8');
  } catch (err) {
    if (hasErrnoCode(err, 'ENOENT') || hasErrnoCode(err, 'ENOTDIR') || hasErrnoCode(err, 'EISDIR')) return undefined;
    throw err;
  }
}

/** `mkdir -p` inside the rootfs (Docker creates a missing WorkingDir the same way, owned by root). */
export async function mkdirInRootfs(rootfs: string, path: string): Promise<void> {
  await mkdir(await resolveInRootfs(rootfs, path), { recursive: true, mode: 0o755 });
}
