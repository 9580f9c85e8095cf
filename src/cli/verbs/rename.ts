/** `layerfs rename OLD NEW`: a container's new name (its id, mount and writable layer stay). */
import type { Command } from 'commander';
import { checkName } from '../../sandbox/index.js';
import { Supervisor } from '../../supervisor/index.js';
import { openStore } from './format.js';

export function register(program: Command): void {
  program
    .command('rename')
    .description('Rename a container')
    .argument('<container>', 'container name or id')
    .argument('<new-name>', 'new name')
    .action(async (ref: string, name: string, _flags: unknown, cmd: Command) => {
      await new Supervisor(await openStore(cmd)).rename(ref, checkName(name));
    });
}
