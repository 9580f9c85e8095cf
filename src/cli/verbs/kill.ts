/** `layerfs kill [-s SIGNAL] NAME…`: send a signal to running containers (default SIGKILL, as docker kill). */
import { constants } from 'node:os';
import type { Command } from 'commander';
import { LayerfsError } from '../../core/errors.js';
import { findRunContainer, isRunning, OciRuntime } from '../../sandbox/index.js';
import { openStore } from './format.js';

/** "KILL", "SIGKILL", "sigterm" or "9" → the runtime's signal name ("KILL"). */
export function parseSignal(v: string): string {
  const signals = constants.signals as Record<string, number>;
  if (/^\d+$/.test(v)) {
    const name = Object.keys(signals).find((k) => signals[k] === Number(v));
    if (name) return name.slice(3);
  } else {
    const name = v.toUpperCase().replace(/^SIG/, '');
    if (`SIG${name}` in signals) return name;
  }
  throw new LayerfsError('INVALID_ARGUMENT', `invalid --signal ${JSON.stringify(v)}: expected a signal name (TERM, SIGHUP…) or number`);
}

export function register(program: Command): void {
  program
    .command('kill')
    .description('Send a signal to running containers (default KILL)')
    .argument('<container...>', 'container names or ids')
    .option('-s, --signal <signal>', 'signal name or number', 'KILL')
    .action(async (refs: string[], flags: { signal: string }, cmd: Command) => {
      const signal = parseSignal(flags.signal);
      const store = await openStore(cmd);
      for (const ref of refs) {
        const c = await findRunContainer(store, ref);
        if (!(await isRunning(c)) || !c.state) throw new LayerfsError('FAILED_PRECONDITION', `container ${c.record.name} is not running`);
        const runtime = await OciRuntime.locate(c.state.runtime, store.paths.root);
        if (!(await runtime.kill(c.record.id, signal))) throw new LayerfsError('RUNTIME', `cannot send SIG${signal} to container ${c.record.name}: it is not running`);
        process.stdout.write(`${ref}\n`);
      }
    });
}
