/**
 * Writing COPY/ADD sources into a mounted container rootfs, with Docker's rules: a
 * directory source copies its contents, a file goes to DEST (or into it when DEST ends in
 * `/`, names an existing directory, or there are several sources), missing parent
 * directories are made (0755, root), modes and mtimes are kept, owners become root or
 * `--chown`'s user, `--chmod` replaces the mode, and ADD unpacks a local tar archive
 * (plain, gzip, bzip2 or xz) into DEST. Every path inside the rootfs is resolved as the
 * container sees it (symlinks against its root, never the host's).
 *
 * These are ordinary asynchronous file calls on a FUSE mount served by another process
 * (the supervisor's mount process), so the union semantics — copy-up of a parent
 * directory, a whiteout when a file replaces one — are the mount's.
 */
import { execFile } from 'node:child_process';
import { open, chmod, copyFile, lchown, lstat, lutimes, mkdir, readdir, readlink, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { basename, join, posix } from 'node:path';
import { promisify } from 'node:util';
import { LayerfsError } from '../core/errors.js';

const run = promisify(execFile);

/**
 * The sandbox's path resolution, imported when a copy runs: this module is part of build/'s
 * front door, which a fully cached build loads, and the sandbox is most of the program.
 */
const resolveInRootfs = async (rootfs: string, path: string): Promise<string> => (await import('../sandbox/index.js')).resolveInRootfs(rootfs, path);

/** One thing to copy: a host path, a heredoc's text, or a file ADD downloaded. */
export type CopyItem =
  | { kind: 'path'; abs: string; isDir: boolean }
  | { kind: 'heredoc'; name: string; content: string }
  | { kind: 'download'; url: string; name: string; abs: string; digest: string; mtime?: Date };

/** How to copy. */
export interface CopySpec {
  items: CopyItem[];
  /** Absolute destination inside the rootfs, as written (a trailing `/` means a directory). */
  dest: string;
  /** Several sources or a glob: DEST must be a directory. */
  forceDir: boolean;
  owner: { uid: number; gid: number } | undefined;
  chmod: number | undefined;
  /** ADD: unpack local archives. */
  extract: boolean;
  /** Host paths left out (.dockerignore of the context). */
  excluded?: (abs: string) => boolean;
}

async function lstatOrUndefined(p: string): Promise<Awaited<ReturnType<typeof lstat>> | undefined> {
  return lstat(p).catch(() => undefined);
}

/** `mkdir -p` inside the rootfs; new folders are root-owned 0755 (as Docker makes them). */
async function ensureDir(rootfs: string, path: string): Promise<string> {
  let cur = '/';
  for (const part of path.split('/').filter(Boolean)) {
    cur = posix.join(cur, part);
    const host = await resolveInRootfs(rootfs, cur);
    const st = await lstatOrUndefined(host);
    if (st?.isDirectory()) continue;
    if (st) throw new LayerfsError('INVALID_ARGUMENT', `cannot copy to ${path}: ${cur} exists and is not a directory`);
    await mkdir(host, { mode: 0o755 });
    await chmod(host, 0o755);
  }
  return resolveInRootfs(rootfs, path);
}

/** Tar magic: gzip, bzip2, xz, or `ustar` at offset 257. */
async function isArchive(file: string): Promise<boolean> {
  const fh = await open(file, 'r');
  try {
    const b = Buffer.alloc(262);
    const { bytesRead } = await fh.read(b, 0, 262, 0);
    const h = b.subarray(0, bytesRead);
    return (h[0] === 0x1f && h[1] === 0x8b) || h.subarray(0, 3).toString('latin1') === 'BZh' || h.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])) || h.subarray(257, 262).toString('latin1') === 'ustar';
  } finally {
    await fh.close();
  }
}

/**
 * Files copied at once in one COPY. Each file is five calls (create, write, chown, chmod,
 * utimes) through the FUSE mount, served by another process; one at a time, the copy
 * waited on every round trip (2,000 small files: native-notes/build.md).
 */
const PARALLEL_FILES = 8;

/** At most `free` holders at once. */
class Slots {
  private readonly waiting: Array<() => void> = [];
  constructor(private free: number) {}
  async acquire(): Promise<void> {
    if (this.free > 0) {
      this.free--;
      return;
    }
    await new Promise<void>((resolve) => this.waiting.push(resolve));
  }
  release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.free++;
  }
}

/**
 * Copies the entries of host directory `srcDir` into `dstDir` inside the mount. Files
 * (and symlinks) run in parallel under the COPY's slots; subdirectories one at a time,
 * holding no slot (their files take slots), so nesting cannot deadlock or multiply the
 * files in flight. The first entry goes alone: it makes the mount copy `dstDir` up once,
 * before concurrent creates in it. Returns when every entry is done (the caller then
 * sets `dstDir`'s own mtime, which each create changed); the first error is thrown then.
 */
async function copyEntries(srcDir: string, dstDir: string, spec: CopySpec, slots: Slots): Promise<void> {
  const inFlight = new Set<Promise<void>>();
  let failure: { err: unknown } | undefined;
  let first = true;
  for (const name of (await readdir(srcDir)).sort()) {
    if (failure) break;
    const src = join(srcDir, name);
    const dst = join(dstDir, name);
    if (spec.excluded?.(src)) continue;
    if (first || (await lstat(src)).isDirectory()) {
      first = false;
      try {
        await copyTree(src, dst, spec, slots);
      } catch (err) {
        failure ??= { err };
      }
      continue;
    }
    await slots.acquire();
    const task: Promise<void> = copyTree(src, dst, spec, slots)
      .catch((err: unknown) => {
        failure ??= { err };
      })
      .finally(() => {
        slots.release();
        inFlight.delete(task);
      });
    inFlight.add(task);
  }
  await Promise.all(inFlight);
  if (failure) throw failure.err;
}

/** Copies one host path to a host path inside the mount, recursively. */
async function copyTree(src: string, dst: string, spec: CopySpec, slots: Slots): Promise<void> {
  if (spec.excluded?.(src)) return;
  const st = await lstat(src);
  const existing = await lstatOrUndefined(dst);
  const uid = spec.owner?.uid ?? 0;
  const gid = spec.owner?.gid ?? 0;
  if (st.isDirectory()) {
    if (existing && !existing.isDirectory()) await rm(dst, { force: true });
    if (!existing?.isDirectory()) await mkdir(dst);
    await copyEntries(src, dst, spec, slots);
    await lchown(dst, uid, gid);
    await chmod(dst, spec.chmod ?? st.mode & 0o7777);
    await utimes(dst, st.atime, st.mtime);
    return;
  }
  if (existing) await rm(dst, { recursive: true, force: true });
  if (st.isSymbolicLink()) {
    await symlink(await readlink(src), dst);
    await lchown(dst, uid, gid);
    await lutimes(dst, st.atime, st.mtime);
  } else if (st.isFile()) {
    await copyFile(src, dst);
    await lchown(dst, uid, gid);
    await chmod(dst, spec.chmod ?? st.mode & 0o7777);
    await utimes(dst, st.atime, st.mtime);
  }
  // Sockets, fifos and devices in a context are skipped, as Docker's context upload does.
}

/** Copies the items of `spec` into the rootfs mounted at `rootfs`. */
export async function copyInto(rootfs: string, spec: CopySpec): Promise<void> {
  const destDir = spec.dest.endsWith('/') || spec.forceDir;
  const destHost = await resolveInRootfs(rootfs, spec.dest);
  const destSt = await lstatOrUndefined(destHost);
  const intoDir = destDir || !!destSt?.isDirectory();
  const slots = new Slots(PARALLEL_FILES);
  for (const item of spec.items) {
    if (item.kind === 'heredoc' || item.kind === 'download') {
      const target = intoDir ? join(await ensureDir(rootfs, spec.dest), item.name) : join(await ensureDir(rootfs, posix.dirname(spec.dest)), basename(spec.dest));
      await rm(target, { recursive: true, force: true });
      if (item.kind === 'heredoc') await writeFile(target, item.content);
      else await copyFile(item.abs, target);
      await lchown(target, spec.owner?.uid ?? 0, spec.owner?.gid ?? 0);
      // Docker: a heredoc file is 644, a downloaded one 600; --chmod replaces either.
      await chmod(target, spec.chmod ?? (item.kind === 'heredoc' ? 0o644 : 0o600));
      if (item.kind === 'download' && item.mtime) await utimes(target, item.mtime, item.mtime);
      continue;
    }
    if (item.isDir) {
      // The folder's contents, not the folder itself (DEST keeps its own metadata).
      const dir = await ensureDir(rootfs, spec.dest);
      await copyEntries(item.abs, dir, spec, slots);
      continue;
    }
    if (spec.extract && (await isArchive(item.abs))) {
      const dir = await ensureDir(rootfs, spec.dest);
      try {
        await run('tar', ['-x', '-p', '--same-owner', '--numeric-owner', '-f', item.abs, '-C', dir]);
      } catch (err) {
        throw new LayerfsError('INVALID_ARGUMENT', `ADD: cannot unpack ${basename(item.abs)}: ${(err as { stderr?: string }).stderr ?? (err as Error).message}`, { cause: err });
      }
      continue;
    }
    const target = intoDir ? join(await ensureDir(rootfs, spec.dest), basename(item.abs)) : join(await ensureDir(rootfs, posix.dirname(spec.dest)), basename(spec.dest));
    await copyTree(item.abs, target, spec, slots);
  }
}
