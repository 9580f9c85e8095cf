/**
 * An OCI runtime binary (runc, or crun which takes the same commands), with its state
 * kept in the store's runtime folder (`<root>/runtime/<name>` for root, under
 * $XDG_RUNTIME_DIR/layerfs for an ordinary user: core/user-dirs.ts) so it never mixes
 * with the host's own runc state. Its errors go to a JSON log file we read back: that is how a failed
 * start ("executable file not found") becomes one clear line and Docker's exit code.
 */
import { execFile } from 'node:child_process';
import { access, constants, readFile, stat } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';
import { LayerfsError } from '../core/errors.js';
import { storeRuntimeDir } from '../core/user-dirs.js';
import type { RuntimeName } from './run-options.js';

const run = promisify(execFile);

/** Finds `name` on PATH, as a shell would. */
async function which(name: string): Promise<string | undefined> {
  for (const d of (process.env.PATH ?? '').split(delimiter).filter(Boolean)) {
    const p = join(d, name);
    try {
      await access(p, constants.X_OK);
      if ((await stat(p)).isFile()) return p;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** How a container start failed, read from the runtime's log. */
export interface StartFailure {
  message: string;
  /** Docker's codes: 127 command not found, 126 not executable, 125 anything else. */
  exitCode: number;
}

/** One runtime binary and its state folder. */
export class OciRuntime {
  private constructor(
    readonly name: RuntimeName,
    readonly binary: string,
    readonly stateDir: string,
  ) {}

  /** Locates the runtime; a missing binary is a one-line error. */
  static async locate(name: RuntimeName, storeRoot: string): Promise<OciRuntime> {
    const binary = await which(name);
    if (!binary) {
      throw new LayerfsError('FAILED_PRECONDITION', `the OCI runtime ${name} is not installed (not found in PATH)`, { hint: `install it (apt-get install ${name}) or choose another with --runtime` });
    }
    return new OciRuntime(name, binary, join(storeRuntimeDir(storeRoot), name));
  }

  /** Global flags: our state root and a JSON error log. */
  globalArgs(logFile: string): string[] {
    return ['--root', this.stateDir, '--log', logFile, '--log-format', 'json'];
  }

  /** argv (after the binary) of a foreground `run` that writes the container's pid to `pidFile`. */
  runArgs(logFile: string, bundle: string, pidFile: string, id: string): string[] {
    return [...this.globalArgs(logFile), 'run', '--bundle', bundle, '--pid-file', pidFile, id];
  }

  /** argv of an `exec` into a running container of the process described by `processFile` (a spec `process` object). */
  execArgs(logFile: string, id: string, processFile: string): string[] {
    return [...this.globalArgs(logFile), 'exec', '--process', processFile, id];
  }

  /** Sends `signal` to the container's init (and so, as pid 1, ends the container on SIGKILL). */
  async kill(id: string, signal: string, logFile = '/dev/null'): Promise<boolean> {
    try {
      await run(this.binary, [...this.globalArgs(logFile), 'kill', id, signal]);
      return true;
    } catch {
      return false;
    }
  }

  /** Freezes (`pause`) or thaws (`resume`) every process of the container (cgroup freezer). */
  async freeze(id: string, frozen: boolean): Promise<void> {
    try {
      await run(this.binary, ['--root', this.stateDir, frozen ? 'pause' : 'resume', id]);
    } catch (err) {
      const e = err as { stderr?: string; message: string };
      throw new LayerfsError('RUNTIME', `cannot ${frozen ? 'pause' : 'resume'} container ${id.slice(0, 12)}: ${(e.stderr || e.message).trim()}`);
    }
  }

  /** Deletes the runtime's state of `id` (killing what is left); no error when it is already gone. */
  async delete(id: string, logFile = '/dev/null'): Promise<void> {
    await run(this.binary, [...this.globalArgs(logFile), 'delete', '--force', id]).catch(() => undefined);
  }

  /** The runtime's view of `id`: its status ("created", "running", "stopped") or undefined when it has no state. */
  async status(id: string): Promise<string | undefined> {
    try {
      const { stdout } = await run(this.binary, ['--root', this.stateDir, 'state', id]);
      return (JSON.parse(stdout) as { status?: string }).status;
    } catch {
      return undefined;
    }
  }

  /** The container's processes as `ps ARGS` shows them (the runtime runs ps and keeps the container's rows). */
  async ps(id: string, psArgs: string[]): Promise<string> {
    try {
      const { stdout } = await run(this.binary, ['--root', this.stateDir, 'ps', id, ...psArgs]);
      return stdout;
    } catch (err) {
      const e = err as { stderr?: string; message: string };
      throw new LayerfsError('RUNTIME', `${this.name} ps failed: ${(e.stderr || e.message).trim()}`);
    }
  }

  /** Container ids the runtime holds state for. */
  async list(): Promise<string[]> {
    try {
      const { stdout } = await run(this.binary, ['--root', this.stateDir, 'list', '--format', 'json']);
      const v = JSON.parse(stdout || 'null') as Array<{ id: string }> | null;
      return (v ?? []).map((c) => c.id);
    } catch {
      return [];
    }
  }
}

/** Reads the runtime's JSON log from byte `offset` and classifies a start failure, if one was logged. */
export async function startFailure(logFile: string, offset: number): Promise<StartFailure | undefined> {
  const text = (await readFile(logFile).catch(() => Buffer.alloc(0))).subarray(offset).toString('utf8');
  let message: string | undefined;
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    try {
      const e = JSON.parse(line) as { level?: string; msg?: string };
      if ((e.level === 'error' || e.level === 'fatal') && e.msg) message = e.msg;
    } catch {
      if (/error/i.test(line)) message = line.trim();
    }
  }
  if (!message) return undefined;
  // "runc run failed: unable to start container process: exec: "x": executable file not found in $PATH"
  const short = message.replace(/^(runc|crun) (run|exec|create|start) failed: /, '').replace(/^unable to start container process: /, '');
  if (/executable file not found|no such file or directory/i.test(short) && /exec/i.test(short)) return { message: short, exitCode: 127 };
  if (/permission denied/i.test(short) && /exec/i.test(short)) return { message: short, exitCode: 126 };
  return { message: short, exitCode: 125 };
}
