/** `layerfs mount [--name NAME] [--read-only] IMAGE DIR`: a container's merged view on DIR. */
import type { Command } from 'commander';
import { Supervisor } from '../../supervisor/supervisor.js';
import { openStore } from './format.js';

export function register(program: Command): void {
  program
    .command('mount')
    .description('Mount IMAGE on DIR with a writable layer (a container); prints the container id')
    .argument('<image>', 'image name, tag or id')
    .argument('<dir>', 'an existing empty directory')
    .option('--name <name>', 'container name; an existing unmounted container of this name is mounted again with its writable layer')
    .option('--read-only', 'no writable layer: writes fail with EROFS')
    .action(async (image: string, dir: string, flags: { name?: string; readOnly?: boolean }, cmd: Command) => {
      const supervisor = new Supervisor(await openStore(cmd));
      const record = await supervisor.mount({ imageRef: image, mountpoint: dir, ...(flags.name ? { name: flags.name } : {}), ...(flags.readOnly ? { readOnly: true } : {}) });
      process.stdout.write(`${record.id}\n`);
    });
}
