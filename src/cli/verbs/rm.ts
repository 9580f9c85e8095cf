/** `layerfs rm [-f] NAME…`: delete containers and their writable layers. */
import type { Command } from 'commander';
import { LayerfsError } from '../../core/errors.js';
import { findRunContainer, isRunning, stopContainer } from '../../sandbox/index.js';
import { Supervisor } from '../../supervisor/index.js';
import { openStore } from './format.js';

export function register(program: Command): void {
  program
    .command('rm')
    .description('Remove containers and their writable layers')
    .argument('<container...>', 'container names or ids')
    .option('-f, --force', 'kill a running container, unmount a mounted one, then remove it')
    .action(async (refs: string[], flags: { force?: boolean }, cmd: Command) => {
      const store = await openStore(cmd);
      const supervisor = new Supervisor(store);
      for (const ref of refs) {
        const c = await findRunContainer(store, ref);
        if (await isRunning(c)) {
          if (!flags.force) {
            throw new LayerfsError('IN_USE', `container ${c.record.name} is running`, { hint: `stop it first (layerfs stop ${c.record.name}), or use rm --force` });
          }
          // As docker rm -f: SIGKILL, then the monitor's teardown, then the removal.
          await stopContainer(store, c, 0);
        }
        // A --rm container's teardown has removed it already.
        if (await supervisor.find(c.record.id)) await supervisor.remove(c.record.id, !!flags.force);
        process.stdout.write(`${c.record.name}\n`);
      }
    });
}
