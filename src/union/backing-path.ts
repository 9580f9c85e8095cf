/**
 * Backing files by paths of any length. The union reaches a backing object as its layer
 * root plus its path in the union; a path of up to 4,095 bytes below the mount point (all
 * the kernel lets a caller pass, and deeper still by relative paths) plus the root
 * overflows PATH_MAX, and the kernel refuses the whole path with ENAMETOOLONG, where its
 * own overlayfs, which walks dentries, has no such limit (issue 12 point 9).
 *
 * Every backing-file call of the union goes through here. A path shorter than PATH_MAX
 * goes to the call as it is (the common case costs one length check). A longer one is
 * walked in steps: an O_PATH descriptor of an ancestor directory is opened for each step
 * of under PATH_MAX bytes, each relative to the previous through `/proc/self/fd/N/…`
 * (Node has no openat), and the call is made on `/proc/self/fd/M/<rest>`, whose last
 * component is the object's own name, so the l-variants and O_NOFOLLOW keep their
 * meaning. The descriptors are closed when the call settles. The ancestors are
 * directories the union has resolved itself (no symlinks among them), as with a whole path.
 */
// The calls themselves run inline in a serving mount process (./backing-calls.ts).
import * as fsp from './backing-calls.js';
import { closeSync, constants as C, openSync, type BigIntStats, type Dirent, type Stats } from 'node:fs';
import { sys, openFd } from './sys.js';
import type { Timespec } from '../sys/native.js';
import { fsError } from './fs-error.js';
import { hasErrnoCode } from '../core/errors.js';

/** The kernel refuses a path of this many bytes or more (PATH_MAX counts the NUL). */
export const PATH_MAX = 4096;
/** O_PATH (Linux): a descriptor that only names a directory, needing no read permission. */
const O_PATH = 0o10000000;
/** Room kept in each step for its `/proc/self/fd/N/` prefix. */
const STEP = PATH_MAX - 64;
const SLASH = 0x2f;

/** A path the kernel accepts for one object, valid until `close`. */
interface ShortPath {
  path: Buffer;
  close(): void;
}

const NOTHING_TO_CLOSE = (): void => undefined;

/** `real` itself, or the same object as `/proc/self/fd/M/<rest>` (see the top of the file). */
function shorten(real: Buffer): ShortPath {
  if (real.length < PATH_MAX) return { path: real, close: NOTHING_TO_CLOSE };
  let fd = -1;
  let rest = real;
  try {
    for (;;) {
      const prefix = fd < 0 ? Buffer.alloc(0) : Buffer.from(`/proc/self/fd/${fd}/`);
      if (prefix.length + rest.length < PATH_MAX) return { path: Buffer.concat([prefix, rest]), close: () => closeSync(fd) };
      // The longest run of whole components that fits this step; the object's own name stays in `rest`.
      const cut = rest.lastIndexOf(SLASH, STEP - prefix.length);
      if (cut <= 0) throw fsError('ENAMETOOLONG', real.toString('latin1'), 'a component longer than a step');
      const dir = openSync(Buffer.concat([prefix, rest.subarray(0, cut)]), O_PATH | C.O_DIRECTORY);
      if (fd >= 0) closeSync(fd);
      fd = dir;
      rest = rest.subarray(cut + 1);
    }
  } catch (err) {
    if (fd >= 0) closeSync(fd);
    throw err;
  }
}

/** Runs `fn` on a path the kernel accepts for `real`. */
export async function atPath<T>(real: Buffer, fn: (p: Buffer) => Promise<T>): Promise<T> {
  if (real.length < PATH_MAX) return fn(real);
  const s = shorten(real);
  try {
    return await fn(s.path);
  } finally {
    s.close();
  }
}

/** atPath for a synchronous call. */
export function atPathSync<T>(real: Buffer, fn: (p: Buffer) => T): T {
  if (real.length < PATH_MAX) return fn(real);
  const s = shorten(real);
  try {
    return fn(s.path);
  } finally {
    s.close();
  }
}

/** atPath for calls on two objects (rename, link). */
export async function atPaths<T>(a: Buffer, b: Buffer, fn: (a: Buffer, b: Buffer) => Promise<T>): Promise<T> {
  if (a.length < PATH_MAX && b.length < PATH_MAX) return fn(a, b);
  const sa = shorten(a);
  let sb: ShortPath;
  try {
    sb = shorten(b);
  } catch (err) {
    sa.close();
    throw err;
  }
  try {
    return await fn(sa.path, sb.path);
  } finally {
    sa.close();
    sb.close();
  }
}

/**
 * rm -rf that reaches below PATH_MAX too: Node's recursive rm builds whole paths and gives
 * up there (ENAMETOOLONG), so what it leaves is removed a directory at a time, each
 * reached by atPath. A writable layer holding deep paths must stay removable.
 */
export async function removeTree(path: string | Buffer): Promise<void> {
  const p = typeof path === 'string' ? Buffer.from(path) : path;
  try {
    return await atPath(p, (s) => fsp.rm(s, { recursive: true, force: true }));
  } catch (err) {
    if (!hasErrnoCode(err, 'ENAMETOOLONG')) throw err;
  }
  // fs.rm removes siblings concurrently and rejects at the first deep failure while the
  // others are still in flight: a name listed here may vanish before it is reached.
  const gone = (err: unknown): undefined => {
    if (hasErrnoCode(err, 'ENOENT')) return undefined;
    throw err;
  };
  for (const name of await backing.readdir(p)) {
    const child = Buffer.concat([p, Buffer.from('/'), name]);
    const st = await backing.lstat(child).catch(gone);
    if (st?.isDirectory()) await removeTree(child);
    else if (st) await backing.unlink(child).catch(gone);
  }
  await backing.rmdir(p).catch(gone);
}

/** The backing-file calls the union makes, each on paths of any length. */
export const backing = {
  lstat: (p: Buffer): Promise<Stats> => atPath(p, (s) => fsp.lstat(s)),
  lstatBig: (p: Buffer): Promise<BigIntStats> => atPath(p, (s) => fsp.lstat(s, { bigint: true })),
  readdir: (p: Buffer): Promise<Buffer[]> => atPath(p, (s) => fsp.readdir(s, { encoding: 'buffer' })),
  readdirTyped: (p: Buffer): Promise<Dirent<Buffer>[]> => atPath(p, (s) => fsp.readdir(s, { withFileTypes: true, encoding: 'buffer' })),
  readlink: (p: Buffer): Promise<Buffer> => atPath(p, (s) => fsp.readlink(s, { encoding: 'buffer' })),
  mkdir: (p: Buffer, mode: number): Promise<void> => atPath(p, async (s) => void (await fsp.mkdir(s, mode))),
  rmdir: (p: Buffer): Promise<void> => atPath(p, (s) => fsp.rmdir(s)),
  unlink: (p: Buffer): Promise<void> => atPath(p, (s) => fsp.unlink(s)),
  /** rm -rf, at any depth. */
  removeAll: (p: Buffer): Promise<void> => removeTree(p),
  chmod: (p: Buffer, mode: number): Promise<void> => atPath(p, (s) => fsp.chmod(s, mode)),
  lchown: (p: Buffer, uid: number, gid: number): Promise<void> => atPath(p, (s) => fsp.lchown(s, uid, gid)),
  truncate: (p: Buffer, size: number): Promise<void> => atPath(p, (s) => fsp.truncate(s, size)),
  open: (p: Buffer, flags: number, mode?: number): Promise<number> => atPath(p, (s) => openFd(s, flags, mode)),
  openSync: (p: Buffer, flags: number): number => atPathSync(p, (s) => openSync(s, flags)),
  /** symlink(2): `target` is the link's content, not a path (any length up to PATH_MAX). */
  symlink: (target: Buffer, p: Buffer): Promise<void> => atPath(p, (s) => fsp.symlink(target, s)),
  rename: (from: Buffer, to: Buffer): Promise<void> => atPaths(from, to, (a, b) => fsp.rename(a, b)),
  link: (from: Buffer, to: Buffer): Promise<void> => atPaths(from, to, (a, b) => fsp.link(a, b)),
  renameat2: (from: Buffer, to: Buffer, flags: number): Promise<void> => atPaths(from, to, (a, b) => sys.renameat2(a, b, flags)),
  lgetxattr: (p: Buffer, name: string): Promise<Buffer | null> => atPath(p, (s) => sys.lgetxattr(s, name)),
  llistxattr: (p: Buffer): Promise<string[]> => atPath(p, (s) => sys.llistxattr(s)),
  lsetxattr: (p: Buffer, name: string, value: Buffer, flags = 0): Promise<void> => atPath(p, (s) => sys.lsetxattr(s, name, value, flags)),
  lremovexattr: (p: Buffer, name: string): Promise<void> => atPath(p, (s) => sys.lremovexattr(s, name)),
  mknod: (p: Buffer, mode: number, dev: number): Promise<void> => atPath(p, (s) => sys.mknod(s, mode, dev)),
  utimens: (p: Buffer, atime: Timespec, mtime: Timespec): Promise<void> => atPath(p, (s) => sys.utimens(s, atime, mtime)),
};
