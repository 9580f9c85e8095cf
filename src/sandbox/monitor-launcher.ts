/**
 * Starts the detached monitor of a `run -d` container and waits until the container's
 * process runs (or fails to start). The monitor says "STARTED" or "FAILED <json>" on a
 * pipe at fd 3, then closes it; its own output goes to `monitor.log` in the container folder.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { open, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LayerfsError } from '../core/errors.js';
import type { StartFailure } from './oci-runtime.js';
import type { PreparedRun } from './prepare-run.js';
import { runPaths } from './run-state.js';

/** The compiled monitor entry (also when this module runs from src/ under tests). */
export function monitorEntry(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  for (const p of [join(here, 'monitor-main.js'), join(here, '..', '..', 'dist', 'sandbox', 'monitor-main.js')]) {
    if (existsSync(p)) return p;
  }
  throw new LayerfsError('FAILED_PRECONDITION', 'the container monitor is not built', { hint: 'run `npm run build`' });
}

/** Launches the monitor; resolves undefined once the process runs, or the start failure. */
export async function launchMonitor(prepared: PreparedRun, timeoutMs = 60_000): Promise<StartFailure | undefined> {
  const p = runPaths(prepared.dir);
  const log = await open(p.monitorLog, 'a');
  try {
    const child = spawn(process.execPath, [monitorEntry(), prepared.storeRoot, prepared.record.id], {
      detached: true,
      cwd: '/',
      stdio: ['ignore', log.fd, log.fd, 'pipe'],
    });
    const pipe = child.stdio[3] as NodeJS.ReadableStream;
    let said = '';
    const outcome = await new Promise<string>((resolve) => {
      const timer = setTimeout(() => resolve('timeout'), timeoutMs);
      pipe.on('data', (d: Buffer) => (said += d.toString()));
      pipe.on('end', () => {
        clearTimeout(timer);
        resolve(said);
      });
      child.on('exit', () => setTimeout(() => resolve(said || 'exited'), 100));
    });
    (pipe as unknown as { destroy(): void }).destroy();
    child.unref();
    if (outcome.startsWith('STARTED')) return undefined;
    if (outcome.startsWith('FAILED ')) return JSON.parse(outcome.slice(7)) as StartFailure;
    const tail = (await readFile(p.monitorLog, 'utf8').catch(() => '')).trim().split('\n').slice(-3).join('\n');
    throw new LayerfsError('RUNTIME', `the container monitor ${outcome === 'timeout' ? 'did not report a start' : 'exited'}: ${tail}`, { hint: `full log: ${p.monitorLog}` });
  } finally {
    await log.close();
  }
}
