/**
 * Running and timing child processes for the bench. Every child runs in its own process
 * group so a timeout can end it and whatever it spawned (a pipeline) without touching
 * anything else.
 */
import { spawn } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';

/** Thrown when a command exits non-zero or runs past its timeout. */
export class CommandError extends Error {
  constructor(message, result) {
    super(message);
    this.result = result;
  }
}

/**
 * Run argv; resolves {stdout, stderr, seconds, code} when it exits 0, rejects with a
 * CommandError otherwise. Options: cwd, env, timeoutMs (default 5 minutes).
 */
export function run(argv, { cwd, env, timeoutMs = 300_000 } = {}) {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn(argv[0], argv.slice(1), { cwd, env: env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.setEncoding('utf8').on('data', (d) => { if (stdout.length < 1 << 24) stdout += d; });
    child.stderr.setEncoding('utf8').on('data', (d) => { if (stderr.length < 1 << 16) stderr += d; });
    const timer = setTimeout(() => {
      timedOut = true;
      try { process.kill(-child.pid, 'SIGKILL'); } catch { /* already gone */ }
    }, timeoutMs);
    child.on('error', (err) => { clearTimeout(timer); reject(new CommandError(`${argv[0]}: ${err.message}`, { stdout, stderr })); });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const result = { stdout, stderr, seconds, code };
      if (timedOut) reject(new CommandError(`timed out after ${timeoutMs / 1000} s: ${argv.join(' ')}`, result));
      else if (code !== 0) reject(new CommandError(`exit ${code ?? signal}: ${argv.join(' ')}\n${stderr.trim().slice(-2000)}`, result));
      else resolve(result);
    });
  });
}

/** Run a shell command line (pipelines, redirections) the same way as run(). */
export function sh(command, options) {
  return run(['sh', '-c', command], options);
}

/** Flush dirty pages and drop the page, dentry and inode caches (a cold run). */
export function dropCaches() {
  execFileSync('sync');
  writeFileSync('/proc/sys/vm/drop_caches', '3\n');
}

/** Median of a list of numbers (undefined when empty). */
export function median(values) {
  if (values.length === 0) return undefined;
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
