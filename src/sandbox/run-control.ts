/**
 * Acting on a running container from another command: `stop` (SIGTERM, then SIGKILL
 * after a grace period, then wait for the monitor's teardown) and `exec` (a new process
 * in the running container through `runtime exec`, which takes the container's own
 * process settings — env, cwd, user, capabilities, noNewPrivileges — as defaults).
 */
import type { Store } from '../store/index.js';
import { type ContainerRecord, Supervisor } from '../supervisor/index.js';
import { LayerfsError } from '../core/errors.js';
import { OciRuntime, startFailure, type StartFailure } from './oci-runtime.js';
import { isAlive, readRunState, runPaths, type RunState } from './run-state.js';
import { spawnRuntime } from './runtime-child.js';
import { resolveUserInRootfs } from './user-resolver.js';
import { randomBytes } from 'node:crypto';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { mergeEnv } from './image-process.js';
import type { RuntimeSpec, SpecProcess } from './runtime-spec-types.js';

/** A run container found by name or id, with its folder and state. */
export interface RunContainer {
  record: ContainerRecord;
  dir: string;
  state: RunState | undefined;
}

/** Finds a container by name or id (any container; `state` is undefined for plain mounts). */
export async function findRunContainer(store: Store, ref: string): Promise<RunContainer> {
  const { record, paths } = await new Supervisor(store).open(ref);
  const dir = paths.dir;
  return { record, dir, state: await readRunState(dir) };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Whether a run container's process is running (its monitor alive and the state says so). */
export async function isRunning(c: RunContainer): Promise<boolean> {
  return !!c.state && (c.state.status === 'running' || c.state.status === 'created') && (await isAlive(c.state.monitor));
}

async function ended(dir: string): Promise<boolean> {
  const s = await readRunState(dir).catch(() => undefined);
  return !s || s.status === 'exited' || !(await isAlive(s.monitor));
}

/** Stops a running container: SIGTERM, SIGKILL after `graceSeconds`, then waits for its teardown. */
export async function stopContainer(store: Store, c: RunContainer, graceSeconds: number): Promise<void> {
  if (!c.state || c.state.status === 'exited') return;
  const runtime = await OciRuntime.locate(c.state.runtime, store.paths.root);
  await runtime.kill(c.record.id, 'TERM');
  const deadline = Date.now() + graceSeconds * 1000;
  while (Date.now() < deadline && !(await ended(c.dir))) await sleep(50);
  if (!(await ended(c.dir))) await runtime.kill(c.record.id, 'KILL');
  const teardownDeadline = Date.now() + 60_000;
  while (!(await ended(c.dir))) {
    if (Date.now() > teardownDeadline) throw new LayerfsError('RUNTIME', `container ${c.record.name} did not stop within a minute of SIGKILL`);
    await sleep(50);
  }
}

/** Options of `exec`. */
export interface ExecOptions {
  args: string[];
  tty: boolean;
  interactive: boolean;
  user?: string;
  workdir?: string;
  env: string[];
}

/** Runs a process in a running container, attached to our stdio; resolves its exit code (or the start failure). */
export async function execInContainer(store: Store, c: RunContainer, o: ExecOptions): Promise<{ exitCode: number; failure?: StartFailure }> {
  if (!c.state || c.state.status !== 'running' || !(await isAlive(c.state.monitor))) {
    throw new LayerfsError('FAILED_PRECONDITION', `container ${c.record.name} is not running`);
  }
  if (o.workdir !== undefined && !o.workdir.startsWith('/')) throw new LayerfsError('INVALID_ARGUMENT', `the working directory ${JSON.stringify(o.workdir)} must be absolute`);
  if (o.tty && o.interactive && !process.stdin.isTTY) throw new LayerfsError('INVALID_ARGUMENT', 'the input device is not a TTY', { hint: 'drop -t when stdin is not a terminal' });
  const runtime = await OciRuntime.locate(c.state.runtime, store.paths.root);
  const p = runPaths(c.dir);
  const user = o.user !== undefined ? await resolveUserInRootfs(p.rootfs, o.user) : undefined;
  // The exec's errors go to a log of its own: in the container's runtime.log the monitor
  // would take them for the container's own start failure when it exits.
  const execLog = join(c.dir, `exec-${process.pid}-${randomBytes(4).toString('hex')}.log`);
  // The new process starts from the container's own (Docker defaults, env, cwd, user),
  // written as a process file so that a terminal gets its window size before the
  // process starts (runc's --tty alone resizes only after it runs).
  const spec = JSON.parse(await readFile(p.spec, 'utf8')) as RuntimeSpec;
  const proc: SpecProcess = {
    ...spec.process,
    args: o.args,
    terminal: o.tty,
    env: mergeEnv(spec.process.env, o.env),
    ...(o.workdir ? { cwd: o.workdir } : {}),
    ...(user ? { user: { uid: user.uid, gid: user.gid, ...(user.additionalGids.length ? { additionalGids: user.additionalGids } : {}) } } : {}),
  };
  delete proc.consoleSize;
  if (o.tty && process.stdout.columns) proc.consoleSize = { height: process.stdout.rows, width: process.stdout.columns };
  const processFile = execLog.replace(/\.log$/, '.json');
  await writeFile(processFile, JSON.stringify(proc));
  const args = runtime.execArgs(execLog, c.record.id, processFile);
  try {
    const child = await spawnRuntime(runtime.binary, args, { mode: 'attached', tty: o.tty, interactive: o.interactive }, { file: execLog, offset: 0 });
    const code = await child.exited;
    const failure = code !== 0 ? await startFailure(execLog, 0) : undefined;
    return failure ? { exitCode: failure.exitCode, failure } : { exitCode: code };
  } finally {
    await rm(processFile, { force: true });
    await rm(execLog, { force: true });
  }
}
