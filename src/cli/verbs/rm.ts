/** `layerfs rm [-f] NAME…`: delete containers and their writable layers. */
import type { Command } from 'commander';
import { Supervisor } from '../../supervisor/supervisor.js';
import { openStore } from './format.js';

export function register(program: Command): void {
  program
    .command('rm')
    .description('Remove containers and their writable layers')
    .argument('<container...>', 'container names or ids')
    .option('-f, --force', 'unmount a mounted container first')
    .action(async (refs: string[], flags: { force?: boolean }, cmd: Command) => {
      const supervisor = new Supervisor(await openStore(cmd));
      for (const ref of refs) {
        const record = await supervisor.remove(ref, !!flags.force);
        process.stdout.write(`${record.name}\n`);
      }
    });
}
