#!/usr/bin/env node
/**
 * The node side of `layerfs-overlay`, a drop-in for fuse-overlayfs (containers-storage's
 * mount_program) and, as /sbin/mount.fuse.layerfs, the helper behind `mount -t
 * fuse.layerfs layerfs DIR -o lowerdir=…`. The program itself is the POSIX sh front end
 * `layerfs-overlay.sh` (installed as dist/cli/layerfs-overlay): podman waits for the mount
 * program to exit, and node cannot fork after mounting, so a node front end costs a second
 * node start-up per mount (~170 ms). The sh starts this file once, detached:
 *
 *   overlay-main.js --ready-fd N ARGV…   the mount process: parses fuse-overlayfs's argv,
 *       mounts and serves in itself. Until the mount is ready its stderr is the caller's, so
 *       notes and errors read as they always did; then stderr moves to the mount log and
 *       "READY" goes out on fd N. A failure writes "EXIT <code>" on fd N and ends the process
 *       (the sh exits with that code once fd N closes, i.e. once this process is gone).
 *   overlay-main.js --spare              a spare mount process (overlay-spare.ts): loads, waits
 *       to be claimed by the sh of a later mount, then serves that mount as --ready-fd does.
 *   overlay-main.js -f ARGV…             serves in the foreground (the sh passes -f/-d here)
 *   overlay-main.js --version | --help
 *   overlay-main.js ARGV…                (a wrapper from before the sh front end) runs the sh
 */
import { appendFileSync, closeSync, openSync, writeSync } from 'node:fs';
import { mkdir, realpath } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runtimeDir } from '../core/user-dirs.js';
import { LayerfsError } from '../core/errors.js';
import * as lazy from '../core/lazy-builtins.js';
import { mountLogLine, type UnionMountConfig, writeMountLog } from '../fuse/index.js';
import { MOUNT_PROGRAM_READS_AUFS } from '../overlay/index.js';
// Deep on purpose (test/unit/module-boundaries.test.ts): fuse/'s front door stays light.
// Types only here: serving is loaded by mountServer() (--version and argument errors need none of it).
import type { MountLog } from '../fuse/union-mount-serve.js';
import { errorText, exitCodeFor, printError } from './exit-codes.js';
import { parseOverlayArgs, type OverlayArgs } from './overlay-args.js';
import { overlayIndexCache, tidyOverlayIndexCaches } from './overlay-index-cache.js';
import { type Claim, recycle, replaceSpare, waitForClaim } from './overlay-spare.js';
import { packageVersion } from './package-version.js';

const USAGE = `usage: layerfs-overlay [-f] -o lowerdir=L1:L2[,upperdir=U,workdir=W][,OPTION…] MOUNTPOINT
       layerfs-overlay --version
fuse-overlayfs's command line (containers-storage's mount_program, mount.fuse3 -t layerfs-overlay).
Options: lowerdir= (top first), upperdir=, workdir=, ro, volatile (or fsync=0), nodev/nosuid/dev/suid,
engine=layerfs|fuse-native, layerfs_index=FILE; fuse-overlayfs's others are accepted and ignored.
`;

/** How long the caller waits for the mount before the mount process gives up (as the supervisor's launcher). */
const READY_TIMEOUT_MS = 60_000;

async function main(argv: string[]): Promise<number | undefined> {
  if (argv[0] === '--ready-fd') return serveDetached(Number(argv[1]), argv.slice(2));
  if (argv[0] === '--spare' && argv.length === 1) return serveAsSpare();
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
  if (!args.foreground) return throughFrontEnd(argv);
  for (const note of args.notes) process.stderr.write(`layerfs-overlay: ${note}\n`);
  const { serveUnionMount } = await mountServer();
  const log: MountLog = writeMountLog;
  logEscapesTo(log);
  const config = await overlayConfig(args);
  log(await serveUnionMount(config, log));
  process.stdout.write('READY\n');
  return undefined; // the mount keeps this process alive until it is unmounted
}

/** The mount process the sh front end started: see the file's comment for what it says where. */
function serveDetached(readyFd: number, argv: string[]): Promise<undefined> {
  // fd 2 is the caller's stderr until the mount is ready, written synchronously; process.stderr
  // is never touched before it (a stream made now would keep the caller's pipe or tty).
  const caller: Claim = {
    argv,
    note: (text) => writeSync(2, text),
    tell: (word) => writeSync(readyFd, `${word}\n`),
    done: () => closeSync(readyFd),
  };
  return serveMount(caller, mountServer());
}

/** A spare (overlay-spare.ts): loads the mount code, waits to be claimed, then serves as serveDetached. */
async function serveAsSpare(): Promise<undefined> {
  const server = mountServer();
  return serveMount(await waitForClaim(() => server), server);
}

/** Mounts for `caller`, telling it READY (the mount serves on in this process) or EXIT <code> (and exits). */
async function serveMount(caller: Claim, server: ReturnType<typeof mountServer>): Promise<undefined> {
  let toCaller = true;
  let errFd = 2;
  const toStderr = (text: string) => {
    try {
      if (toCaller) caller.note(text);
      else writeSync(errFd, text);
    } catch {
      // The caller went away: nothing to tell.
    }
  };
  const tell = (word: string) => {
    try {
      caller.tell(word);
    } catch {
      // The front end went away (killed): the exit code has nobody to go to.
    }
  };
  const log: MountLog = (line) => toStderr(mountLogLine(line));
  logEscapesTo(log);
  let logFile: string | undefined;
  const fail = (err: unknown): never => {
    const code = exitCodeFor(err);
    toStderr(errorText(err));
    if (logFile !== undefined) {
      try {
        appendFileSync(logFile, mountLogLine((err as Error).message)); // "cannot mount MOUNTPOINT: …"
      } catch {
        // No log to keep it in; the caller has it.
      }
    }
    tell(`EXIT ${code}`);
    process.exit(code);
  };
  const timer = setTimeout(() => fail(new LayerfsError('MOUNT_FAILED', `the mount process did not become ready in ${READY_TIMEOUT_MS / 1000} s`)), READY_TIMEOUT_MS);
  let cancelSpare = () => {};
  try {
    const args = parseOverlayArgs(caller.argv);
    for (const note of args.notes) toStderr(`layerfs-overlay: ${note}\n`);
    const config = await overlayConfig(args);
    logFile = await overlayLogFile(args.mountpoint);
    let serving: string;
    try {
      serving = await (await server).serveUnionMount(config, log, {
        onConnectionEnded: () => {
          cancelSpare();
          void afterMount(server);
        },
      });
    } catch (err) {
      throw new LayerfsError('MOUNT_FAILED', `cannot mount ${args.mountpoint}: ${(err as Error).message}`, {
        cause: err,
        hint: (err instanceof LayerfsError && err.hint) || `the mount's log: ${logFile}`,
      });
    }
    errFd = stderrTo(logFile);
    toCaller = false;
    clearTimeout(timer);
    log(caller.origin ? `${serving}; by ${caller.origin}` : serving);
    tell('READY');
    caller.done();
    cancelSpare = replaceSpare();
    // After READY, off the caller's clock: a cache of the same lower set made stale, the least recently used.
    if (config.indexCache !== undefined && args.indexCache === undefined) await tidyOverlayIndexCaches(config.indexCache).catch(() => undefined);
  } catch (err) {
    fail(err);
  }
  return undefined;
}

/**
 * Once this process's mount has ended: the spare for the next mount of an opted-in caller
 * (overlay-spare.ts, recycle), its fd 2 away from the ended mount's log; else the end.
 */
async function afterMount(server: ReturnType<typeof mountServer>): Promise<void> {
  if (!recycle()) process.exit(0);
  stderrTo('/dev/null');
  await serveMount(await waitForClaim(() => server), server);
}

/** What serves the mount: the union, the engine, FUSE (~100 ms of loading), only once there is a mount to serve. */
function mountServer(): Promise<typeof import('../fuse/union-mount-serve.js')> {
  return import('../fuse/union-mount-serve.js');
}

/** The union mount for fuse-overlayfs's arguments: lowers by their real paths, the index cache to use. */
async function overlayConfig(args: OverlayArgs): Promise<UnionMountConfig> {
  // containers-storage names lowers by their `l/<short id>` symlinks: the union walks
  // the directories they point to (its index never follows a symlink, the root's either).
  const lowerDirs = await Promise.all(args.lowerDirs.map((d) => realDir(d, 'lowerdir')));
  // layerfs_index= names a cache the caller vouches for; else one stamped by the lowers' directories.
  const indexCache = args.indexCache ?? (await overlayIndexCache(lowerDirs));
  return {
    mountpoint: args.mountpoint,
    lowerDirs,
    ...(indexCache ? { indexCache } : {}),
    ...(args.upperDir && args.workDir && !args.readOnly ? { upperDir: args.upperDir, workDir: args.workDir } : {}),
    fsname: 'layerfs',
    // fuse-overlayfs reads `.wh.NAME` files as whiteouts in any layer; containers-storage
    // writes its layers that way when it has a mount program.
    aufsWhiteouts: MOUNT_PROGRAM_READS_AUFS,
    volatile: args.volatile,
    ...(args.engine ? { engine: args.engine } : {}),
    extraOptions: args.fuseOptions,
  };
}

/** The mount's log: /run/layerfs for root, $XDG_RUNTIME_DIR/layerfs for a rootless podman or buildah. */
async function overlayLogFile(mountpoint: string): Promise<string> {
  const logDir = runtimeDir();
  await mkdir(logDir, { recursive: true, mode: 0o700 });
  return join(logDir, `overlay-${Buffer.from(mountpoint).toString('base64url').slice(-40)}.log`);
}

/**
 * Points fd 2 at `file` (appending), so the mount process no longer holds the caller's
 * stderr (podman reads its mount program's output to the end); returns the log's fd. Node
 * has no dup2: closing fd 2 makes it the lowest free number (fds 0 and 1 are /dev/null from
 * the front end), which the next open takes. Nothing else opens files meanwhile: the JS
 * thread is here, and the mount's index and mount-table reads have been awaited. Were it
 * another number, the log would still get this process's own lines, and the mount served.
 */
function stderrTo(file: string): number {
  closeSync(2);
  return openSync(file, 'a');
}

/**
 * Anything that escapes the handlers is logged to the mount's log (the latest mount's, in a
 * process that serves one after another), never allowed to end the process and leave a
 * dead mountpoint.
 */
let escapesLog: MountLog | undefined;
function logEscapesTo(log: MountLog): void {
  if (escapesLog === undefined) {
    process.on('uncaughtException', (err) => escapesLog!(`uncaught: ${err.stack ?? err.message}`));
    process.on('unhandledRejection', (err) => escapesLog!(`unhandled rejection: ${(err as Error)?.stack ?? String(err)}`));
  }
  escapesLog = log;
}

/** The real path of an existing directory option, or a typed error naming it. */
async function realDir(dir: string, option: string): Promise<string> {
  try {
    return await realpath(dir);
  } catch (cause) {
    throw new LayerfsError('NOT_FOUND', `${option} ${dir} does not exist`, { cause });
  }
}

/** `node overlay-main.js ARGV` without -f (a wrapper installed before the sh front end): the one way in is the sh. */
function throughFrontEnd(argv: string[]): number {
  const frontEnd = join(dirname(fileURLToPath(import.meta.url)), 'layerfs-overlay');
  const r = lazy.childProcess().spawnSync(frontEnd, argv, { stdio: 'inherit', env: { ...process.env, LAYERFS_NODE: process.execPath } });
  if (r.error) throw new LayerfsError('FAILED_PRECONDITION', `cannot run ${frontEnd}: ${r.error.message}`, { hint: 'run `npm run build`' });
  return r.status ?? 1;
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code !== undefined) process.exitCode = code;
  },
  (err: unknown) => {
    printError(err);
    process.exitCode = exitCodeFor(err);
  },
);
