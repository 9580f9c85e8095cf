/**
 * A run container's state, `<root>/containers/<id>/run.json`, next to the supervisor's
 * record: what was run, with which runtime, by which monitor process, and how it ended.
 *
 *   created ─▶ running ─▶ exited            (the monitor writes each step)
 *
 * The monitor is identified by pid *and* start time, so a recycled pid is never taken
 * for a live monitor. Written atomically (temp file + rename).
 */
import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { hasErrnoCode } from '../core/errors.js';
import type { RuntimeName } from './run-options.js';

export type RunStatus = 'created' | 'running' | 'exited';

/** A process, by pid and the kernel's start time (field 22 of /proc/PID/stat). */
export interface ProcessIdentity {
  pid: number;
  startTime: string;
}

/** What run.json holds. */
export interface RunState {
  status: RunStatus;
  runtime: RuntimeName;
  /** The container process's argv, for `ps`'s COMMAND. */
  command: string[];
  autoRemove: boolean;
  detached: boolean;
  /** The process that owns the container's life (the CLI in the foreground, else the detached monitor). */
  monitor: ProcessIdentity | null;
  /** The container's init pid on the host, while running. */
  containerPid: number | null;
  startedAt: string | null;
  finishedAt: string | null;
  exitCode: number | null;
  /** Why it ended, when not by itself (start failure, killed monitor, dead mount). */
  error: string | null;
}

export const RUN_STATE_FILE = 'run.json';

/** Files of a run container inside its folder. */
export function runPaths(containerDir: string) {
  return {
    state: join(containerDir, RUN_STATE_FILE),
    bundle: join(containerDir, 'bundle'),
    spec: join(containerDir, 'bundle', 'config.json'),
    rootfs: join(containerDir, 'merged'),
    pidFile: join(containerDir, 'container.pid'),
    runtimeLog: join(containerDir, 'runtime.log'),
    /** stdout and stderr of a detached container. */
    log: join(containerDir, 'container.log'),
    monitorLog: join(containerDir, 'monitor.log'),
  };
}

/** Reads run.json, or undefined when the container was never run (a plain `mount`). */
export async function readRunState(containerDir: string): Promise<RunState | undefined> {
  try {
    return JSON.parse(await readFile(runPaths(containerDir).state, 'utf8')) as RunState;
  } catch (err) {
    if (hasErrnoCode(err, 'ENOENT') || err instanceof SyntaxError) return undefined;
    throw err;
  }
}

/** Writes run.json atomically. */
export async function writeRunState(containerDir: string, state: RunState): Promise<void> {
  const file = runPaths(containerDir).state;
  const tmp = `${file}.tmp-${process.pid}`;
  await writeFile(tmp, JSON.stringify(state, null, 2) + '\n');
  await rename(tmp, file);
}

/** Reads, changes and writes run.json; no-op when the container folder is gone. */
export async function updateRunState(containerDir: string, change: Partial<RunState>): Promise<RunState | undefined> {
  const cur = await readRunState(containerDir).catch(() => undefined);
  if (!cur) return undefined;
  const next = { ...cur, ...change };
  await writeRunState(containerDir, next).catch((err: unknown) => {
    if (!hasErrnoCode(err, 'ENOENT')) throw err;
  });
  return next;
}

async function startTimeOf(pid: number): Promise<string | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields[0] is field 3 (state); start time is field 22.
    if (fields[0] === 'Z') return undefined;
    return fields[19];
  } catch {
    return undefined;
  }
}

/** This process's identity. */
export async function selfIdentity(): Promise<ProcessIdentity> {
  return { pid: process.pid, startTime: (await startTimeOf(process.pid)) ?? '' };
}

/** Whether the process is still alive and is the same one (not a recycled pid). */
export async function isAlive(p: ProcessIdentity | null): Promise<boolean> {
  if (!p) return false;
  const st = await startTimeOf(p.pid);
  return st !== undefined && st === p.startTime;
}

/** Docker's STATUS column: "Up 5 seconds", "Exited (3) 2 minutes ago", "Created". */
export function describeRun(state: RunState, ago: (iso: string) => string): string {
  if (state.status === 'running' && state.startedAt) return `Up ${ago(state.startedAt).replace(/ ago$/, '')}`;
  if (state.status === 'exited') return `Exited (${state.exitCode ?? -1}) ${state.finishedAt ? ago(state.finishedAt) : ''}`.trimEnd();
  return 'Created';
}
