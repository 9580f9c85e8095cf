/** `layerfs restart [-t SECS] NAME…`: stop (SIGTERM, SIGKILL after the grace period), then start detached. */
import type { Command } from 'commander';
import { findRunContainer, stopContainer } from '../../sandbox/index.js';
import { openStore } from './format.js';
import { parseGrace } from './stop.js';
import { startDetached } from './start.js';

export function register(program: Command): void {
  program
    .command('restart')
    .description('Stop and start containers again (detached)')
    .argument('<container...>', 'container names or ids')
    .option('-t, --time <seconds>', 'seconds to wait before SIGKILL', '10')
    .action(async (refs: string[], flags: { time: string }, cmd: Command) => {
      const grace = parseGrace(flags.time);
      const store = await openStore(cmd);
      for (const ref of refs) {
        await stopContainer(store, await findRunContainer(store, ref), grace);
        const code = await startDetached(store, ref);
        if (code !== 0) {
          process.exitCode = code;
          return;
        }
        process.stdout.write(`${ref}\n`);
      }
    });
}
