/**
 * Runs an OCI runtime command (`run` or `exec`) as our child with the caller's stdio,
 * the way `docker run`/`docker exec` attach:
 *  - `-t`: the runtime gets our terminal and makes the pty itself (raw mode, window size,
 *    SIGWINCH), so it stays in our process group;
 *  - otherwise it gets its own session, and the signals a user sends us (SIGINT, SIGTERM,
 *    SIGHUP, SIGQUIT, SIGUSR1/2) are forwarded once (runc forwards them to the container);
 *    `-i` streams our stdin; stderr passes through a filter that keeps the runtime's own
 *    error lines out (they are read from its log and reported as one line instead).
 *  - detached: stdout and stderr go to a log file, stdin is /dev/null.
 */
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { closeSync, openSync, readSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { constants } from 'node:os';

/** How the runtime's stdio is wired. */
export type ChildIo = { mode: 'attached'; tty: boolean; interactive: boolean } | { mode: 'logfile'; file: string };

const FORWARDED: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2'];
const RUNTIME_NOISE = /^(time="[^"]*" level=\w+ msg=|\{"level":|((runc|crun) )?(run|exec|create|start) failed: |crun: )/;

/** The runtime's JSON log (`--log FILE`) from `offset`: the messages it logged this time. */
export interface RuntimeLog {
  file: string;
  offset: number;
  /**
   * Whether the container's process has started. Until then stderr can only be the
   * runtime's own, which may reach us before it is in the log (crun): it is held back and
   * filtered once the process starts or the runtime exits, when the log is complete.
   */
  started?: () => boolean;
}

/** Messages the runtime logged after `log.offset` (read now, synchronously: called per stderr chunk). */
function loggedMessages(log: RuntimeLog | undefined): Set<string> {
  const out = new Set<string>();
  if (!log) return out;
  let fd: number | undefined;
  try {
    fd = openSync(log.file, 'r');
    const buf = Buffer.alloc(64 * 1024);
    const n = readSync(fd, buf, 0, buf.length, log.offset);
    for (const line of buf.subarray(0, n).toString('utf8').split('\n')) {
      try {
        const msg = (JSON.parse(line) as { msg?: unknown }).msg;
        if (typeof msg === 'string') out.add(msg.trim());
      } catch {
        // not a JSON line (a partial write)
      }
    }
  } catch {
    // no log yet
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
  return out;
}

/**
 * Removes the runtime's own diagnostic lines from a stderr chunk: those of its known
 * shapes, and any line it also wrote to its log (crun prints its errors bare). They are
 * reported once, from the log, as `layerfs: …`.
 */
export function filterRuntimeNoise(chunk: string, log?: RuntimeLog): string {
  const lines = chunk.split('\n');
  const logged = lines.some((l) => l.trim() !== '') && log ? loggedMessages(log) : new Set<string>();
  const noise = (l: string): boolean => RUNTIME_NOISE.test(l) || (l.trim() !== '' && logged.has(l.trim()));
  if (!lines.some(noise)) return chunk;
  return lines.filter((l) => !noise(l)).join('\n');
}

/** A running runtime child; `exited` resolves to the exit code (128+N for a signal). */
export interface RuntimeChild {
  child: ChildProcess;
  exited: Promise<number>;
  /** Sends a signal to the runtime (which forwards it to the container). */
  signal(sig: NodeJS.Signals): void;
}

/** Spawns `binary args` wired per `io`; `log` is the runtime's `--log` file, whose lines are kept off our stderr. */
export async function spawnRuntime(binary: string, args: string[], io: ChildIo, log?: RuntimeLog): Promise<RuntimeChild> {
  let stdio: StdioOptions;
  let logHandle: Awaited<ReturnType<typeof open>> | undefined;
  if (io.mode === 'logfile') {
    logHandle = await open(io.file, 'a');
    stdio = ['ignore', logHandle.fd, logHandle.fd];
  } else if (io.tty) {
    // The container's stdio is the runtime's pty; the runtime's own stderr only carries
    // its diagnostics, which the filter below drops (they come back as one line).
    stdio = [io.interactive ? 'inherit' : 'ignore', 'inherit', 'pipe'];
  } else {
    stdio = [io.interactive ? 'pipe' : 'ignore', 'inherit', 'pipe'];
  }
  const attachedTty = io.mode === 'attached' && io.tty;
  const child = spawn(binary, args, { stdio, detached: !attachedTty });
  await logHandle?.close();

  if (io.mode === 'attached') {
    let held = '';
    const flush = (): void => {
      const out = filterRuntimeNoise(held, log);
      held = '';
      if (out) process.stderr.write(Buffer.from(out, 'latin1'));
    };
    const poll = setInterval(() => {
      if (held && log?.started?.()) flush();
    }, 20);
    child.stderr?.on('data', (d: Buffer) => {
      held += d.toString('latin1');
      if (!log?.started || log.started()) flush();
    });
    child.stderr?.on('close', () => {
      clearInterval(poll);
      if (held) flush();
    });
  }
  if (io.mode === 'attached' && !io.tty) {
    if (io.interactive && child.stdin) {
      process.stdin.pipe(child.stdin);
      child.stdin.on('error', () => undefined);
    }
  }
  const forward = (sig: NodeJS.Signals): void => {
    if (child.exitCode === null && child.signalCode === null) child.kill(sig);
  };
  // With a tty the runtime shares our terminal's signals already; only kill(1)-style
  // signals sent to us alone need forwarding, and those arrive here too.
  for (const sig of FORWARDED) process.on(sig, forward);

  const exited = new Promise<number>((resolve) => {
    child.on('close', (code, signal) => {
      for (const sig of FORWARDED) process.off(sig, forward);
      if (io.mode === 'attached' && io.interactive && !io.tty) {
        process.stdin.unpipe();
        process.stdin.destroy();
      }
      resolve(code ?? 128 + (signal ? (constants.signals[signal] ?? 0) : 0));
    });
    child.on('error', () => resolve(125));
  });
  return { child, exited, signal: forward };
}
