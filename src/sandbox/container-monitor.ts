/**
 * The life of one run container, owned by one process (the CLI in the foreground, the
 * detached monitor with `-d`), like conmon: start the runtime, record the container's
 * state, watch its mount, and when the process ends tear down in order —
 *
 *   process gone ─▶ runtime state deleted ─▶ unmount ─▶ writable layer removed (--rm)
 *                                                     └▶ or kept, state "exited (code)"
 *
 * If the union mount process dies under a running container, the container is killed
 * (its root is gone) and torn down the same way.
 */
import { readFile, rm, stat } from 'node:fs/promises';
import { LayerfsError } from '../core/errors.js';
import { type ContainerRecord, isMountProcess, type Supervisor } from '../supervisor/index.js';
import { removeMountStubs } from './mount-stubs.js';
import { startFailure, type OciRuntime, type StartFailure } from './oci-runtime.js';
import { selfIdentity, runPaths, updateRunState } from './run-state.js';
import { spawnRuntime, type ChildIo } from './runtime-child.js';

/** What the monitor needs about its container. */
export interface MonitorContext {
  supervisor: Supervisor;
  record: ContainerRecord;
  dir: string;
  runtime: OciRuntime;
  autoRemove: boolean;
  io: ChildIo;
  /** Called once the container's process is running (the runtime wrote its pid). */
  onStarted?: (containerPid: number) => void;
}

/** How the container ended. */
export interface MonitorResult {
  exitCode: number;
  /** Set when the process never started (command not found…): report this, not the code alone. */
  failure?: StartFailure;
  /** Set when layerfs ended it (its mount died). */
  reason?: string;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Runs the container to its end and tears it down; never leaves it half torn down on a thrown error. */
export async function monitorContainer(ctx: MonitorContext): Promise<MonitorResult> {
  const p = runPaths(ctx.dir);
  const logOffset = (await stat(p.runtimeLog).catch(() => null))?.size ?? 0;
  await updateRunState(ctx.dir, { monitor: await selfIdentity() });
  // A signal that arrives during teardown must not cut it short.
  const hold = (): void => undefined;
  const held: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT'];
  for (const s of held) process.on(s, hold);
  let reason: string | undefined;
  let started = false;
  try {
    const child = await spawnRuntime(ctx.runtime.binary, ctx.runtime.runArgs(p.runtimeLog, p.bundle, p.pidFile, ctx.record.id), ctx.io, { file: p.runtimeLog, offset: logOffset, started: () => started });
    let done = false;
    const exited = child.exited.then((code) => {
      done = true;
      return code;
    });
    const watch = (async () => {
      let mountCheck = 0;
      while (!done) {
        if (!started) {
          const pidText = await readFile(p.pidFile, 'utf8').catch(() => '');
          const pid = Number(pidText.trim());
          if (pid > 0) {
            started = true;
            await updateRunState(ctx.dir, { status: 'running', containerPid: pid, startedAt: new Date().toISOString() });
            ctx.onStarted?.(pid);
          }
        }
        if (++mountCheck % 20 === 0 && !(await isMountProcess(ctx.record.pid))) {
          reason = 'its mount process died';
          await ctx.runtime.kill(ctx.record.id, 'KILL');
        }
        await sleep(started ? 25 : 10);
      }
    })();
    const code = await exited;
    await watch;
    const logged = code !== 0 ? await startFailure(p.runtimeLog, logOffset) : undefined;
    const failure = logged && (!started || logged.exitCode !== 125) ? logged : undefined;
    const result: MonitorResult = { exitCode: failure?.exitCode ?? code, ...(failure ? { failure } : {}), ...(reason ? { reason } : {}) };
    await teardown(ctx, result);
    return result;
  } catch (err) {
    await teardown(ctx, { exitCode: 125, reason: (err as Error).message }).catch(() => undefined);
    throw err;
  } finally {
    for (const s of held) process.off(s, hold);
  }
}

/**
 * Tears a container down in order; idempotent, so recovery can run it again after a
 * monitor was killed half way.
 */
export async function teardown(ctx: Pick<MonitorContext, 'supervisor' | 'record' | 'dir' | 'runtime' | 'autoRemove'>, result: MonitorResult): Promise<void> {
  const p = runPaths(ctx.dir);
  // 1. The process is gone (or is killed now: its init dying ends the pid namespace).
  await ctx.runtime.kill(ctx.record.id, 'KILL');
  // 2. The runtime's state.
  await ctx.runtime.delete(ctx.record.id);
  // 3. The mount.
  try {
    await ctx.supervisor.unmount(ctx.record.id);
  } catch (err) {
    if (!(err instanceof LayerfsError && (err.code === 'FAILED_PRECONDITION' || err.code === 'NOT_FOUND'))) throw err;
  }
  await rm(p.pidFile, { force: true });
  // 4. The writable layer, with --rm; otherwise the container stays, exited, without the
  // runtime's mount stubs (/etc/hosts, /proc…), which are no change of its own.
  if (ctx.autoRemove) {
    await ctx.supervisor.remove(ctx.record.id, true).catch((err: unknown) => {
      if (!(err instanceof LayerfsError && err.code === 'NOT_FOUND')) throw err;
    });
    return;
  }
  // Best effort: an image removed with `rmi --force` leaves no lower layers to compare with.
  const lowerDirs = await ctx.supervisor.store.layerDirs(ctx.record.image).catch(() => undefined);
  if (lowerDirs) await removeMountStubs(ctx.supervisor.handle(ctx.record).paths.upper, lowerDirs.reverse());
  await updateRunState(ctx.dir, {
    status: 'exited',
    exitCode: result.exitCode,
    finishedAt: new Date().toISOString(),
    containerPid: null,
    monitor: null,
    error: result.failure?.message ?? result.reason ?? null,
  });
}
