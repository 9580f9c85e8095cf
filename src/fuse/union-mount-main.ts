/**
 * The FUSE process: serves one union mount until it is unmounted or told to stop.
 *   node union-mount-main.js '<UnionMountConfig JSON>' [--ready-fd N]
 * Writes "READY" on the ready fd (default: stdout) once the kernel has initialised the
 * mount; SIGTERM, SIGINT and SIGHUP unmount cleanly and exit 0. This process never makes
 * a call on its own mountpoint (it would deadlock against itself).
 */
import { appendFileSync, closeSync, writeSync } from 'node:fs';
import { writeDamage } from '../store/index.js';
import { mountsAt } from '../sys/mount-table.js';
import { runBackingCallsInline, UnionFilesystem } from '../union/index.js';
import { serveWithEngine, type EngineMount } from '../engine/index.js';
import { chooseEngine } from './engine-choice.js';
import { serveFilesystem } from './fuse-server.js';
import { parseUnionMountConfig } from './union-mount-config.js';

function log(line: string): void {
  process.stderr.write(`${new Date().toISOString()} layerfs-mount[${process.pid}]: ${line}\n`);
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const readyIdx = args.indexOf('--ready-fd');
  const readyFd = readyIdx >= 0 ? Number(args[readyIdx + 1]) : 1;
  const config = parseUnionMountConfig(args[0] ?? '');

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
        writeDamage(config.damageFile, { ...d, at: new Date().toISOString() }).catch((err: unknown) => log(`cannot write ${config.damageFile}: ${(err as Error).message}`));
      }
    },
  });
  // Serving from here on: one JS thread waits on each backing call before it replies, so
  // the cheap ones skip the pool (union/backing-calls.ts). LAYERFS_INLINE_CALLS=0 keeps
  // the pool, for comparison.
  if (process.env.LAYERFS_INLINE_CALLS !== '0') runBackingCallsInline();
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

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log(`${signal}: unmounting ${config.mountpoint}`);
    mount.unmount().then(
      () => process.exit(0),
      (err: unknown) => {
        log(`unmount failed: ${(err as Error).message}`);
        process.exit(1);
      },
    );
  };
  for (const s of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(s, () => stop(s));
  // SIGUSR2 logs the requests the layerfs engine received (scripts/bench counts READ/WRITE).
  // Handled on every engine: SIGUSR2's default action ends the process, which would take
  // the mount (and every open file on it) down with it.
  const { requestCounts: counts, requestMicros: micros } = mount as Partial<EngineMount>;
  process.on('SIGUSR2', () => {
    if (!counts) return log('SIGUSR2: this engine keeps no request counts');
    log(`request counts ${JSON.stringify(Object.fromEntries(counts))}`);
    if (micros) log(`request micros ${JSON.stringify(Object.fromEntries(micros))}`);
  });

  // `umount` by someone else ends libfuse's loop but not this process: notice and exit,
  // so no server lingers without a mount.
  const ourDevices = new Set((await mountsAt(config.mountpoint)).map((m) => m.device));
  setInterval(() => {
    void mountsAt(config.mountpoint).then(async (now) => {
      if (stopping || now.some((m) => ourDevices.has(m.device))) return;
      stopping = true;
      log(`${config.mountpoint} was unmounted; exiting`);
      await filesystem.destroy?.();
      process.exit(0);
    });
  }, 1000).unref();

  // The log says what serves the mount before anyone is told it is ready.
  const origin = filesystem.view.index.origin;
  const indexNote = origin.loaded ? 'index from cache' : `index built${origin.reason ? ` (${origin.reason})` : ''}${origin.writeError ? `, not cached: ${origin.writeError}` : ''}`;
  log(`serving ${config.mountpoint} with ${engine} (${config.lowerDirs.length} lower, ${config.upperDir ? (config.volatile ? 'writable, volatile' : 'writable') : 'read-only'}, ${filesystem.view.index.size} lower paths, ${indexNote}${engine === 'layerfs' ? `, passthrough ${(mount as EngineMount).passthrough ? 'on' : 'off'}` : ''})`);
  writeSync(readyFd, 'READY\n');
  if (readyFd !== 1) closeSync(readyFd);
}

// The handlers answer every op themselves; anything that still escapes is logged, never
// allowed to end the process and leave a dead mountpoint behind.
process.on('uncaughtException', (err) => log(`uncaught: ${err.stack ?? err.message}`));
process.on('unhandledRejection', (err) => log(`unhandled rejection: ${(err as Error)?.stack ?? String(err)}`));

main().catch((err: unknown) => {
  log(`cannot mount: ${(err as Error).message}`);
  process.exit(1);
});
