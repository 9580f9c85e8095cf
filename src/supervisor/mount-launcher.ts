/**
 * Starts a detached FUSE process for a union mount and waits until the kernel has
 * initialised the mount. Readiness comes over a pipe on fd 3 (closed by the child after
 * "READY"); the child's own output goes to a log file, so it never writes to a terminal
 * that has gone away.
 */
import { spawn } from 'node:child_process';
import { open } from 'node:fs/promises';
import { LayerfsError } from '../core/errors.js';
import { MOUNT_PROCESS_NODE_FLAGS, mountProcessEntry, mountProcessEnv, type UnionMountConfig } from '../fuse/index.js';

export interface LaunchedMount {
  pid: number;
}

export async function launchUnionMount(config: UnionMountConfig, logFile: string, timeoutMs = 60_000): Promise<LaunchedMount> {
  const log = await open(logFile, 'a');
  try {
    const child = spawn(process.execPath, [...MOUNT_PROCESS_NODE_FLAGS, mountProcessEntry(), JSON.stringify(config), '--ready-fd', '3'], {
      detached: true,
      env: mountProcessEnv(),
      stdio: ['ignore', log.fd, log.fd, 'pipe'],
    });
    const ready = child.stdio[3] as NodeJS.ReadableStream;
    let said = '';
    const outcome = await new Promise<'ready' | 'exited' | 'timeout'>((resolve) => {
      const timer = setTimeout(() => resolve('timeout'), timeoutMs);
      ready.on('data', (d: Buffer) => {
        said += d.toString();
        if (said.includes('READY')) {
          clearTimeout(timer);
          resolve('ready');
        }
      });
      child.on('exit', () => {
        clearTimeout(timer);
        resolve('exited');
      });
    });
    if (outcome !== 'ready') {
      if (outcome === 'timeout') child.kill('SIGKILL');
      const { readFile } = await import('node:fs/promises');
      const tail = (await readFile(logFile, 'utf8').catch(() => '')).trim().split('\n').slice(-3).join('\n');
      throw new LayerfsError('MOUNT_FAILED', `the mount process ${outcome === 'timeout' ? 'did not become ready' : 'exited'}: ${tail}`, {
        hint: `full log: ${logFile}`,
      });
    }
    (ready as unknown as { destroy(): void }).destroy();
    child.unref();
    return { pid: child.pid! };
  } finally {
    await log.close();
  }
}
