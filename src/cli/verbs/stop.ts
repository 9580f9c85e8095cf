/** `layerfs stop [-t SECS] NAME…`: SIGTERM, then SIGKILL after the grace period; waits for teardown. */
import type { Command } from 'commander';
import { LayerfsError } from '../../core/errors.js';
import { findRunContainer, stopContainer } from '../../sandbox/index.js';
import { openStore } from './format.js';

/** `-t SECS` of stop and restart. */
export function parseGrace(v: string): number {
  const grace = Number(v);
  if (!Number.isFinite(grace) || grace < 0) throw new LayerfsError('INVALID_ARGUMENT', `invalid --time ${JSON.stringify(v)}: expected seconds`);
  return grace;
}

export function register(program: Command): void {
  program
    .command('stop')
    .description('Stop running containers (SIGTERM, then SIGKILL after the grace period)')
    .argument('<container...>', 'container names or ids')
    .option('-t, --time <seconds>', 'seconds to wait before SIGKILL', '10')
    .action(async (refs: string[], flags: { time: string }, cmd: Command) => {
      const grace = parseGrace(flags.time);
      const store = await openStore(cmd);
      for (const ref of refs) {
        await stopContainer(store, await findRunContainer(store, ref), grace);
        process.stdout.write(`${ref}\n`);
      }
    });
}
