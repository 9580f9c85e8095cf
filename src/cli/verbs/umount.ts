/** `layerfs umount DIR|NAME`: unmount, keeping the writable layer. */
import type { Command } from 'commander';
import { Supervisor } from '../../supervisor/index.js';
import { openStore } from './format.js';

export function register(program: Command): void {
  program
    .command('umount')
    .alias('unmount')
    .description('Unmount a container (by mount point, name or id); its writable layer is kept')
    .argument('<target>', 'mount point, container name or id')
    .action(async (target: string, _flags: object, cmd: Command) => {
      const record = await new Supervisor(await openStore(cmd)).unmount(target);
      process.stdout.write(`${record.name}\n`);
    });
}
