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
// Deep on purpose (test/unit/module-boundaries.test.ts): podman starts this program for every
// container, and supervisor/'s front door would load the store and fuse/ (the FUSE addon) too.
import { launchUnionMount, mountProcessEntry } from '../supervisor/mount-launcher.js';
import { LayerfsError } from '../core/errors.js';
import { exitCodeFor, printError } from './exit-codes.js';
import { parseOverlayArgs } from './overlay-args.js';
import { overlayIndexCache, tidyOverlayIndexCaches } from './overlay-index-cache.js';
import { packageVersion } from './package-version.js';

const USAGE = `usage: layerfs-overlay [-f] -o lowerdir=L1:L2[,upperdir=U,workdir=W][,OPTION…] MOUNTPOINT
       layerfs-overlay --version
fuse-overlayfs's command line (containers-storage's mount_program, mount.fuse3 -t layerfs-overlay).
Options: lowerdir= (top first), upperdir=, workdir=, ro, volatile (or fsync=0), nodev/nosuid/dev/suid,
engine=layerfs|fuse-native, layerfs_index=FILE; fuse-overlayfs's others are accepted and ignored.
`;

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  // Probes: `podman info` runs the mount program with --version to report it.
  if (argv.includes('--version') || argv.includes('-V')) {
    process.stdout.write(`layerfs-overlay: version ${packageVersion()}\n`);
    return 0;
  }
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(USAGE);
    return 0;
  }
  const args = parseOverlayArgs(argv);
  for (const note of args.notes) process.stderr.write(`layerfs-overlay: ${note}\n`);
  // containers-storage names lowers by their `l/<short id>` symlinks: the union walks
  // the directories they point to (its index never follows a symlink, the root's either).
  const lowerDirs = await Promise.all(args.lowerDirs.map((d) => realDir(d, 'lowerdir')));
  // layerfs_index= names a cache the caller vouches for; else one stamped by the lowers' directories.
  const indexCache = args.indexCache ?? (await overlayIndexCache(lowerDirs));
  const config = {
    mountpoint: args.mountpoint,
    lowerDirs,
    ...(indexCache ? { indexCache } : {}),
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
  if (indexCache !== undefined && args.indexCache === undefined) await tidyOverlayIndexCaches(indexCache);
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
