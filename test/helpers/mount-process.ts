/**
 * Starts a filesystem server in a child process and waits until its mount is live.
 * The serving process must never be the one making synchronous calls on the mount
 * (it would deadlock), so servers always run in a child. Every start is registered;
 * `stopAllMountProcesses()` (run by the mount guard after each file) ends them all,
 * also when a test failed or the child died.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { forceUnmount, mountDevices } from './mounts.js';

export interface MountProcess {
  readonly mountpoint: string;
  readonly child: ChildProcess;
  readonly pid: number;
  /** Everything the child wrote to stderr so far. */
  stderr(): string;
  /** SIGTERM, wait for a clean exit; abort and lazily unmount if that fails. */
  stop(): Promise<void>;
}

const running = new Set<MountProcess>();

export interface StartOptions {
  readyTimeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  /** A line on stdout that means "mounted" (default READY). */
  readyLine?: string;
}

export async function startMountProcess(
  command: string,
  args: string[],
  mountpoint: string,
  options: StartOptions = {},
): Promise<MountProcess> {
  // A mount already on this mountpoint is not ours to clean up, whatever happens.
  const preexisting = mountDevices(mountpoint);
  const ours = () => [...mountDevices(mountpoint)].some((d) => !preexisting.has(d));
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env: options.env ?? process.env });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = once(child, 'exit');

  const handle: MountProcess = {
    mountpoint,
    child,
    pid: child.pid ?? -1,
    stderr: () => err,
    async stop() {
      running.delete(handle);
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exited.catch(() => undefined);
        clearTimeout(timer);
      }
      if (ours()) await forceUnmount(mountpoint, preexisting);
    },
  };
  running.add(handle);

  const readyLine = options.readyLine ?? 'READY';
  const deadline = Date.now() + (options.readyTimeoutMs ?? 60_000);
  while (!(out.split('\n').includes(readyLine) && ours())) {
    if (child.exitCode !== null || child.signalCode !== null) {
      await handle.stop();
      throw new Error(`mount process exited (${child.exitCode ?? child.signalCode}) before ready:\n${err}${out}`);
    }
    if (Date.now() > deadline) {
      await handle.stop();
      throw new Error(`mount process not ready after ${options.readyTimeoutMs ?? 60_000} ms:\n${err}${out}`);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  return handle;
}

/** Stops every mount process this test file started and did not stop itself. */
export async function stopAllMountProcesses(): Promise<void> {
  await Promise.all([...running].map((m) => m.stop()));
}
