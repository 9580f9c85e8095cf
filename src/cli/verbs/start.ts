/**
 * `layerfs start [-a] NAME…`: run exited containers again (same writable layer, same
 * command). Detached by default, as docker start; with -a (one container) attached, and
 * the container's exit code is ours (125/126/127 when it cannot start).
 */
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { LayerfsError } from '../../core/errors.js';
import { findRunContainer, isRunning, launchMonitor, monitorContainer, prepareStart, runPaths, type RuntimeSpec } from '../../sandbox/index.js';
import type { Store } from '../../store/index.js';
import { openStore } from './format.js';

/** Starts one container detached; resolves the exit code to report (0, or why it could not start). */
export async function startDetached(store: Store, ref: string): Promise<number> {
  const c = await findRunContainer(store, ref);
  if (await isRunning(c)) return 0;
  const failure = await launchMonitor(await prepareStart(store, c, true));
  if (failure) {
    process.stderr.write(`layerfs: ${failure.message}\n`);
    return failure.exitCode;
  }
  return 0;
}

export function register(program: Command): void {
  program
    .command('start')
    .description('Start exited containers again (same writable layer and command); -a attaches')
    .argument('<container...>', 'container names or ids')
    .option('-a, --attach', "attach to the container's output; its exit code is ours")
    .option('-i, --interactive', "attach stdin too (with -a)")
    .action(async (refs: string[], flags: { attach?: boolean; interactive?: boolean }, cmd: Command) => {
      const store = await openStore(cmd);
      if (flags.attach) {
        if (refs.length !== 1) throw new LayerfsError('INVALID_ARGUMENT', 'usage: start -a takes one container');
        const c = await findRunContainer(store, refs[0]!);
        const prepared = await prepareStart(store, c, false);
        const spec = JSON.parse(await readFile(runPaths(c.dir).spec, 'utf8')) as RuntimeSpec;
        const tty = spec.process.terminal;
        const result = await monitorContainer({
          ...prepared,
          autoRemove: prepared.state.autoRemove,
          io: { mode: 'attached', tty, interactive: !!flags.interactive },
        });
        if (result.failure) process.stderr.write(`layerfs: ${result.failure.message}\n`);
        else if (result.reason) process.stderr.write(`layerfs: container ${c.record.name} was stopped: ${result.reason}\n`);
        process.exitCode = result.exitCode;
        return;
      }
      for (const ref of refs) {
        const code = await startDetached(store, ref);
        if (code !== 0) {
          process.exitCode = code;
          return;
        }
        process.stdout.write(`${ref}\n`);
      }
    });
}
