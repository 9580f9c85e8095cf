/**
 * Crash recovery for run containers, run before the sandbox verbs: a container recorded
 * as created/running whose monitor process is gone (SIGKILL, OOM, a killed foreground
 * `run`) is stopped and torn down as its monitor would have — container killed, runtime
 * state deleted, mount cleared, marked exited (137) — and its writable layer is kept
 * unless it was started with --rm.
 */
import type { Store } from '../store/index.js';
import { Supervisor } from '../supervisor/index.js';
import { teardown } from './container-monitor.js';
import { OciRuntime } from './oci-runtime.js';
import { isAlive, readRunState } from './run-state.js';

/** Tears down orphaned run containers; returns one message per container it fixed. */
export async function recoverRuns(store: Store): Promise<string[]> {
  const supervisor = new Supervisor(store);
  const messages: string[] = [];
  for (const record of await supervisor.list()) {
    const dir = supervisor.handle(record).paths.dir;
    const state = await readRunState(dir).catch(() => undefined);
    // No monitor yet means `run` is still preparing it (or never got to start it).
    if (!state || state.status === 'exited' || !state.monitor) continue;
    if (await isAlive(state.monitor)) continue;
    const runtime = await OciRuntime.locate(state.runtime, store.paths.root);
    await teardown({ supervisor, record, dir, runtime, autoRemove: state.autoRemove }, { exitCode: 137, reason: 'its monitor process died' });
    messages.push(`container ${record.name}: its monitor process had died; stopped it, deleted its runtime state and cleared its mount (${state.autoRemove ? 'removed: --rm' : 'writable layer kept'})`);
  }
  return messages;
}

/** recoverRuns, printing what it fixed to stderr like the supervisor's own recovery. */
export async function recoverRunsAndReport(store: Store): Promise<void> {
  for (const m of await recoverRuns(store)) process.stderr.write(`layerfs: ${m}\n`);
}
