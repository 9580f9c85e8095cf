/**
 * `layerfs cp [-L] CONTAINER:SRC DEST|-` and `layerfs cp SRC|- CONTAINER:DEST`: files
 * between a container and the host, as `docker cp`.
 *
 * Inside the container every path is resolved against the container's root
 * (resolveInRootfs): an absolute or `..` symlink in the container means a place in the
 * container, never on the host — the docker cp CVEs (CVE-2018-15664, CVE-2019-14271)
 * were both the host following a container's symlink. The last component of SRC is
 * copied as it is (a symlink stays a symlink) unless -L. Writes go through the union
 * mount (container-rootfs.ts), so an image file is copied up and a replaced directory
 * hidden as in the container; new files are owned by root, as docker makes them.
 */
import { execFile } from 'node:child_process';
import { lstat, stat } from 'node:fs/promises';
import { basename, dirname, join, posix, resolve as resolvePath } from 'node:path';
import { promisify } from 'node:util';
import type { Command } from 'commander';
import { copyInto } from '../../build/index.js';
import { LayerfsError } from '../../core/errors.js';
import { resolveInRootfs } from '../../sandbox/index.js';
import { withContainerRootfs } from '../container-rootfs.js';
import { openStore } from './format.js';

const run = promisify(execFile);

/** `NAME:/path` → { container, path }; a host path (no colon before the first slash) → undefined. */
function containerPath(arg: string): { container: string; path: string } | undefined {
  const i = arg.indexOf(':');
  if (i <= 0 || arg.slice(0, i).includes('/')) return undefined;
  const path = arg.slice(i + 1);
  return { container: arg.slice(0, i), path: path.startsWith('/') ? path : `/${path}` };
}

async function exists(p: string): Promise<Awaited<ReturnType<typeof lstat>> | undefined> {
  return lstat(p).catch(() => undefined);
}

async function tool(cmd: string, args: string[], what: string): Promise<void> {
  try {
    await run(cmd, args, { maxBuffer: 16 * 1024 * 1024 });
  } catch (err) {
    throw new LayerfsError('IO', `${what}: ${((err as { stderr?: string }).stderr || (err as Error).message).trim()}`, { cause: err });
  }
}

/** The host path of SRC in the rootfs: its parents resolved in the container, the last component too with -L. */
async function sourceIn(rootfs: string, path: string, follow: boolean): Promise<{ host: string; contents: boolean }> {
  const contents = /\/\.$/.test(path);
  const clean = posix.normalize(contents ? path.slice(0, -2) || '/' : path);
  if (follow || clean === '/') return { host: await resolveInRootfs(rootfs, clean), contents };
  return { host: join(await resolveInRootfs(rootfs, posix.dirname(clean)), posix.basename(clean)), contents };
}

async function fromContainer(rootfs: string, src: string, dest: string, follow: boolean): Promise<void> {
  const { host, contents } = await sourceIn(rootfs, src, follow);
  const st = await exists(host);
  if (!st) throw new LayerfsError('NOT_FOUND', `no such file or directory in the container: ${src}`);
  if (dest === '-') {
    // A tar of SRC on stdout, as docker cp's archive form (names relative to SRC's folder).
    const child = execFile('tar', ['-C', contents ? host : dirname(host), '-cf', '-', '--numeric-owner', contents ? '.' : basename(host)], { encoding: 'buffer', maxBuffer: 1 << 30 });
    child.stdout?.pipe(process.stdout);
    await new Promise<void>((res, rej) => child.on('close', (code) => (code === 0 ? res() : rej(new LayerfsError('IO', `tar of ${src} failed (exit ${code})`)))));
    return;
  }
  const destSt = await exists(dest);
  if (!destSt && !(await exists(dirname(resolvePath(dest))))?.isDirectory()) throw new LayerfsError('NOT_FOUND', `the destination folder ${dirname(resolvePath(dest))} does not exist`);
  if (st.isDirectory() && destSt && !destSt.isDirectory()) throw new LayerfsError('INVALID_ARGUMENT', `cannot copy a directory onto the file ${dest}`);
  // -d: symlinks are copied as symlinks, never followed (they point into the container).
  await tool('cp', ['-dR', '--preserve=mode,timestamps,links', contents ? `${host}/.` : host, dest], `cannot copy ${src}`);
}

async function intoContainer(rootfs: string, src: string, dest: string, follow: boolean): Promise<void> {
  if (src === '-') {
    // A tar on stdin is unpacked into DEST, a folder of the container (docker cp - CTR:DIR).
    const dir = await resolveInRootfs(rootfs, dest);
    if (!(await exists(dir))?.isDirectory()) throw new LayerfsError('NOT_FOUND', `the destination folder ${dest} does not exist in the container`);
    await new Promise<void>((res, rej) => {
      const child = execFile('tar', ['-x', '-p', '--same-owner', '--numeric-owner', '-f', '-', '-C', dir], (err, _out, stderr) => (err ? rej(new LayerfsError('IO', `cannot unpack the archive: ${String(stderr).trim()}`)) : res()));
      process.stdin.pipe(child.stdin!);
    });
    return;
  }
  const abs = resolvePath(src);
  const st = follow ? await stat(abs).catch(() => undefined) : await exists(abs);
  if (!st) throw new LayerfsError('NOT_FOUND', `no such file or directory: ${src}`);
  const destHost = await resolveInRootfs(rootfs, dest);
  const destSt = await exists(destHost);
  const contents = /\/\.$/.test(src);
  if (!destSt && !(await exists(dirname(destHost)))?.isDirectory()) throw new LayerfsError('NOT_FOUND', `the destination folder ${posix.dirname(dest)} does not exist in the container`);
  if (dest.endsWith('/') && !destSt) throw new LayerfsError('NOT_FOUND', `the destination folder ${dest} does not exist in the container`);
  if (st.isDirectory()) {
    if (destSt && !destSt.isDirectory()) throw new LayerfsError('INVALID_ARGUMENT', `cannot copy a directory onto the file ${dest} in the container`);
    // DEST exists: the folder goes inside it (its contents with SRC/.); else DEST becomes the copy.
    const target = destSt && !contents ? posix.join(dest, basename(abs)) : dest;
    await copyInto(rootfs, { items: [{ kind: 'path', abs, isDir: true }], dest: target, forceDir: true, owner: undefined, chmod: undefined, extract: false });
    return;
  }
  await copyInto(rootfs, { items: [{ kind: 'path', abs, isDir: false }], dest, forceDir: false, owner: undefined, chmod: undefined, extract: false });
}

export function register(program: Command): void {
  program
    .command('cp')
    .description("Copy files between a container and the host (CONTAINER:PATH either side; '-' is a tar stream)")
    .argument('<src>', 'CONTAINER:SRC, a host path, or - (a tar on stdin)')
    .argument('<dest>', 'CONTAINER:DEST, a host path, or - (a tar on stdout)')
    .option('-L, --follow-link', "follow a symlink SRC (inside the container, resolved against the container's root)")
    .action(async (src: string, dest: string, flags: { followLink?: boolean }, cmd: Command) => {
      const from = containerPath(src);
      const to = containerPath(dest);
      if ((from && to) || (!from && !to)) throw new LayerfsError('INVALID_ARGUMENT', 'usage: cp CONTAINER:SRC DEST or cp SRC CONTAINER:DEST (one side is a container)');
      const store = await openStore(cmd);
      if (from) await withContainerRootfs(store, from.container, (rootfs) => fromContainer(rootfs, from.path, dest, !!flags.followLink));
      else await withContainerRootfs(store, to!.container, (rootfs) => intoContainer(rootfs, src, to!.path, !!flags.followLink));
    });
}
