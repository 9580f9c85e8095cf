/**
 * Serving one union mount in this process, until it is unmounted or told to stop: what
 * both mount-process entries do — union-mount-main.ts (the supervisor's, a config in JSON)
 * and cli/overlay-main.ts (layerfs-overlay's, fuse-overlayfs's argv). Each entry says
 * READY its own way once serveUnionMount resolves. This process never makes a call on its
 * own mountpoint (it would deadlock against itself).
 */
import { appendFileSync } from 'node:fs';
import { readdir, readlink, realpath } from 'node:fs/promises';
import { mountsAt, topMountAt, type MountEntry } from '../sys/mount-table.js';
import { fixProcessUmask, runBackingCallsInline, UnionFilesystem } from '../union/index.js';
import { serveWithEngine, type EngineMount } from '../engine/index.js';
import { chooseEngine } from './engine-choice.js';
import { serveFilesystem } from './fuse-server.js';
import type { UnionMountConfig } from './union-mount-config.js';

/** Where the mount process's lines go; each entry decides (a log file, a pipe, the terminal), as mountLogLine(). */
export type MountLog = (line: string) => void;

export interface ServeUnionOptions {
  /**
   * Instead of ending the process once the kernel has ended the connection (its last
   * mount is gone) and the union is released: every listener and timer of this mount is
   * gone by then, so the process may serve another (layerfs-overlay's spare,
   * cli/overlay-spare.ts). Only the engine that tells when its connection ends calls it;
   * a stop by signal, or a mount gone from this namespace while a copy elsewhere may keep
   * the connection up, still ends the process.
   */
  onConnectionEnded?: () => void;
}

/**
 * Mounts `config` and serves it; resolves once the kernel has the mount, with the line
 * that says what serves it (for the log, before anyone is told it is ready). SIGTERM,
 * SIGINT and SIGHUP unmount cleanly and exit 0; an unmount by someone else ends the
 * process (or see onConnectionEnded). A failure after the mount was made unmounts it before
 * rejecting, so a failed start never leaves a dead mountpoint behind.
 */
export async function serveUnionMount(config: UnionMountConfig, log: MountLog, options: ServeUnionOptions = {}): Promise<string> {
  const traceFile = process.env.LAYERFS_TRACE_OPS || undefined;
  let damageRecorded = false;
  const filesystem = await UnionFilesystem.open({
    lowerDirs: config.lowerDirs,
    upperDir: config.upperDir,
    workDir: config.workDir,
    indexCache: config.indexCache,
    volatile: config.volatile === true,
    aufsWhiteouts: config.aufsWhiteouts === true,
    // Once per damaged path: the layer and path to the mount log, the first one to damage.json.
    onDamage: (d) => {
      log(`damaged layer ${d.layer}: ${JSON.stringify(d.path)}: ${d.reason}; answering EIO (\`layerfs check --repair\` re-extracts the layer)`);
      if (config.damageFile !== undefined && !damageRecorded) {
        damageRecorded = true;
        // Loaded when first needed: store/'s front door is ~60 ms of every mount's start-up
        // (measured), and only the supervisor's mounts have a damage file at all.
        import('../store/index.js')
          .then(({ writeDamage }) => writeDamage(config.damageFile!, { ...d, at: new Date().toISOString() }))
          .catch((err: unknown) => log(`cannot write ${config.damageFile}: ${(err as Error).message}`));
      }
    },
  });
  // Serving from here on: one JS thread waits on each backing call before it replies, so
  // the cheap ones skip the pool (union/backing-calls.ts). LAYERFS_INLINE_CALLS=0 keeps
  // the pool, for comparison.
  if (process.env.LAYERFS_INLINE_CALLS !== '0') runBackingCallsInline();
  // Nothing in this process sets its umask from here on: the union reads it once.
  fixProcessUmask();
  // The mountpoint as the mount table shows it: resolved now, before the mount covers it
  // (resolving it afterwards would ask this process's own mount). A path through a
  // symlink (/var/run is one on Debian) never matches the table otherwise.
  const where = await realpath(config.mountpoint).catch(() => config.mountpoint);
  const engine = chooseEngine(config.engine);
  const serve = engine === 'layerfs' ? serveWithEngine : serveFilesystem;
  const mount = await serve(filesystem, config.mountpoint, {
    fsname: config.fsname ?? 'layerfs',
    extra: config.extraOptions ?? [],
    onUnexpectedError: (err, op) => log(`${op}: ${(err as Error)?.stack ?? String(err)}`),
    // LAYERFS_NATIVE_FAST_PATH=0 sends every op through JS (benchmarks compare both).
    nativeFastPath: process.env.LAYERFS_NATIVE_FAST_PATH !== '0',
    // LAYERFS_TRACE_OPS=FILE appends each request that reaches JS to FILE (a debugging
    // aid: it shows what the native fast path leaves to JS). Never a path on the mount.
    ...(traceFile !== undefined ? { traceOps: (op: string, path: string) => appendFileSync(traceFile, `${op} ${path}\n`, 'latin1') } : {}),
  });

  // Our mount, by device: the one on top at the mountpoint now. Once it is gone from there,
  // the path may hold another process's mount of it (containerd's shim unmounts a mount
  // whose helper it lost track of and mounts again), which is not ours to unmount.
  let ourDevice: string | undefined;
  try {
    ourDevice = (await topMountAt(where))?.device;
  } catch (err) {
    await mount.unmount().catch(() => undefined);
    throw err;
  }
  // A device number is freed with its superblock and handed to the next FUSE mount (a remount
  // of the same path gets the same one), so it names our mount only while our connection
  // lives: libfuse closes its /dev/fuse descriptor when the kernel ends the connection (the
  // fuse-native engine tells nobody else), and the layerfs engine closes its own on teardown.
  // (A descriptor not seen as /dev/fuse even now, say a device node elsewhere: no such check.)
  const checkConnection = await holdsFuseConnection();
  const connected = async () => !checkConnection || (await holdsFuseConnection());
  const ours = (m: MountEntry | undefined) => m !== undefined && m.device === ourDevice;
  const ourMountOnTop = async () => (await connected()) && ours(await topMountAt(where));

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    void ourMountOnTop().then(async (onTop) => {
      if (!onTop) {
        log(`${signal}: ${config.mountpoint} holds no mount of ours any more; exiting`);
        await filesystem.destroy?.();
        process.exit(0);
      }
      log(`${signal}: unmounting ${config.mountpoint}`);
      return mount.unmount();
    }).then(
      () => process.exit(0),
      (err: unknown) => {
        log(`unmount failed: ${(err as Error).message}`);
        process.exit(1);
      },
    );
  };
  const signals = ['SIGTERM', 'SIGINT', 'SIGHUP'] as const;
  const onSignal = (signal: NodeJS.Signals) => stop(signal);
  for (const s of signals) process.on(s, onSignal);
  // SIGUSR2 logs the requests the layerfs engine received (scripts/bench counts READ/WRITE).
  // Handled on every engine: SIGUSR2's default action ends the process, which would take
  // the mount (and every open file on it) down with it.
  // GETXATTR/LISTXATTR the native loop answered count as "GETXATTR in C" etc.
  const { requestCounts: counts, requestMicros: micros, nativeAnswers } = mount as Partial<EngineMount>;
  const onCountsAsked = () => {
    if (!counts) return log('SIGUSR2: this engine keeps no request counts');
    const inC = Object.entries(nativeAnswers?.() ?? {}).filter(([, n]) => n > 0).map(([op, n]) => [`${op} in C`, n]);
    log(`request counts ${JSON.stringify({ ...Object.fromEntries(counts), ...Object.fromEntries(inC) })}`);
    if (micros) log(`request micros ${JSON.stringify(Object.fromEntries(micros))}`);
    // Where the mount process's memory is (the node table is on the JS heap).
    const mb = (n: number) => Math.round(n / 2 ** 20);
    const m = process.memoryUsage();
    log(`memory MiB rss ${mb(m.rss)} heapUsed ${mb(m.heapUsed)} heapTotal ${mb(m.heapTotal)} external ${mb(m.external)}`);
  };
  process.on('SIGUSR2', onCountsAsked);

  // `umount` by someone else ends libfuse's loop but not this process: notice and exit,
  // so no server lingers without a mount. (The mount may also be gone from this namespace
  // while a copy in another keeps the connection up: then only the table tells.)
  const watch = setInterval(() => {
    void Promise.all([mountsAt(where), connected()]).then(async ([now, live]) => {
      if (stopping || (live && now.some(ours))) return;
      stopping = true;
      log(`${config.mountpoint} was unmounted; exiting`);
      await filesystem.destroy?.();
      process.exit(0);
    });
  }, 1000).unref();
  // The engine that tells when the kernel ended the connection: at once, not at the next tick.
  if (mount.ended !== undefined && options.onConnectionEnded !== undefined) {
    const onEnded = options.onConnectionEnded;
    void mount.ended.then(async () => {
      if (stopping) return;
      stopping = true;
      clearInterval(watch);
      for (const s of signals) process.off(s, onSignal);
      process.off('SIGUSR2', onCountsAsked);
      log(`${config.mountpoint} was unmounted`);
      await filesystem.destroy?.();
      onEnded();
    });
  }

  const origin = filesystem.view.index.origin;
  const indexNote = origin.loaded ? 'index from cache' : `index built${origin.reason ? ` (${origin.reason})` : ''}${origin.writeError ? `, not cached: ${origin.writeError}` : ''}`;
  return `serving ${config.mountpoint} with ${engine} (${config.lowerDirs.length} lower, ${config.upperDir ? (config.volatile ? 'writable, volatile' : 'writable') : 'read-only'}, ${filesystem.view.index.size} lower paths, ${indexNote}${engine === 'layerfs' ? `, passthrough ${(mount as EngineMount).passthrough ? 'on' : 'off'}` : ''})`;
}

/** Whether this process still holds a descriptor of /dev/fuse (the connection it serves). */
async function holdsFuseConnection(): Promise<boolean> {
  const fds = await readdir('/proc/self/fd').catch(() => [] as string[]);
  const targets = await Promise.all(fds.map((fd) => readlink(`/proc/self/fd/${fd}`).catch(() => '')));
  return targets.includes('/dev/fuse');
}
