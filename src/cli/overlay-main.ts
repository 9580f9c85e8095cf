#!/usr/bin/env node
/**
 * `layerfs-overlay`: a drop-in for fuse-overlayfs (containers-storage's mount_program)
 * and, installed as /sbin/mount.fuse.layerfs, the helper behind
 * `mount -t fuse.layerfs layerfs DIR -o lowerdir=…`. Returns once the mount is ready;
 * `-f` serves in the foreground instead.
 */
import { spawn } from 'node:child_process';
import { mkdir, realpath } from 'node:fs/promises';
import { join } from 'node:path';
import { runtimeDir } from '../core/user-dirs.js';
import { launchUnionMount, mountProcessEntry } from '../supervisor/mount-launcher.js';
import { LayerfsError } from '../core/errors.js';
import { exitCodeFor, printError } from './exit-codes.js';
import { parseOverlayArgs } from './overlay-args.js';

async function main(): Promise<number> {
  const args = parseOverlayArgs(process.argv.slice(2));
  for (const note of args.notes) process.stderr.write(`layerfs-overlay: ${note}\n`);
  const config = {
    mountpoint: args.mountpoint,
    // containers-storage names lowers by their `l/<short id>` symlinks: the union walks
    // the directories they point to (its index never follows a symlink, the root's either).
    lowerDirs: await Promise.all(args.lowerDirs.map((d) => realDir(d, 'lowerdir'))),
    ...(args.indexCache ? { indexCache: args.indexCache } : {}),
    ...(args.upperDir && args.workDir && !args.readOnly ? { upperDir: args.upperDir, workDir: args.workDir } : {}),
    fsname: 'layerfs',
    // fuse-overlayfs reads `.wh.NAME` files as whiteouts in any layer; containers-storage
    // writes its layers that way when it has a mount program.
    aufsWhiteouts: true,
    volatile: args.volatile,
    ...(args.engine ? { engine: args.engine } : {}),
    extraOptions: args.fuseOptions,
  };
  if (args.foreground) {
    const child = spawn(process.execPath, [mountProcessEntry(), JSON.stringify(config)], { stdio: 'inherit' });
    return new Promise((resolve) => child.on('exit', (code) => resolve(code ?? 1)));
  }
  // /run/layerfs for root, $XDG_RUNTIME_DIR/layerfs for a rootless podman or buildah.
  const logDir = runtimeDir();
  await mkdir(logDir, { recursive: true, mode: 0o700 });
  const logFile = join(logDir, `overlay-${Buffer.from(args.mountpoint).toString('base64url').slice(-40)}.log`);
  await launchUnionMount(config, logFile);
  return 0;
}

/** The real path of an existing directory option, or a typed error naming it. */
async function realDir(dir: string, option: string): Promise<string> {
  try {
    return await realpath(dir);
  } catch (cause) {
    throw new LayerfsError('NOT_FOUND', `${option} ${dir} does not exist`, { cause });
  }
}

main().then(
  (code) => (process.exitCode = code),
  (err: unknown) => {
    printError(err);
    process.exitCode = exitCodeFor(err);
  },
);
