/**
 * The detached monitor of one `run -d` container (`node monitor-main.js ROOT ID`): owns
 * the container until it ends (see container-monitor.ts), reporting "STARTED" or
 * "FAILED <json>" on fd 3 to the `run` command that launched it.
 */
import { closeSync, writeSync } from 'node:fs';
import { Store } from '../store/index.js';
import { Supervisor } from '../supervisor/index.js';
import { monitorContainer } from './container-monitor.js';
import { OciRuntime } from './oci-runtime.js';
import { readRunState, runPaths } from './run-state.js';

let reported = false;
function report(line: string): void {
  if (reported) return;
  reported = true;
  try {
    writeSync(3, `${line}\n`);
    closeSync(3);
  } catch {
    // the launching command is gone; nothing to tell
  }
}

async function main(): Promise<number> {
  const [root, id] = process.argv.slice(2);
  if (!root || !id) throw new Error('usage: monitor-main ROOT ID');
  const store = await Store.open(root);
  const supervisor = new Supervisor(store);
  const { record, paths } = await supervisor.open(id);
  const dir = paths.dir;
  const state = await readRunState(dir);
  if (!state) throw new Error(`container ${id} has no run state`);
  const runtime = await OciRuntime.locate(state.runtime, store.paths.root);
  const result = await monitorContainer({
    supervisor,
    record,
    dir,
    runtime,
    autoRemove: state.autoRemove,
    io: { mode: 'logfile', file: runPaths(dir).log },
    onStarted: () => report('STARTED'),
  });
  report(result.failure ? `FAILED ${JSON.stringify(result.failure)}` : 'STARTED');
  process.stdout.write(`container ${record.name} exited with ${result.exitCode}${result.reason ? ` (${result.reason})` : ''}\n`);
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    report(`FAILED ${JSON.stringify({ message: err instanceof Error ? err.message : String(err), exitCode: 125 })}`);
    process.stderr.write(`monitor: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
