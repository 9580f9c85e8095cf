/** `layerfs mount [--name NAME] [--read-only] IMAGE DIR`: a container's merged view on DIR. */
import type { Command } from 'commander';
import { DEFAULT_ENGINE, ENGINES, parseEngine } from '../../fuse/index.js';
import { Supervisor } from '../../supervisor/index.js';
import { openStore } from './format.js';

export function register(program: Command): void {
  program
    .command('mount')
    .description('Mount IMAGE on DIR with a writable layer (a container); prints the container id')
    .argument('<image>', 'image name, tag or id')
    .argument('<dir>', 'an existing empty directory')
    .option('--name <name>', 'container name; an existing unmounted container of this name is mounted again with its writable layer')
    .option('--read-only', 'no writable layer: writes fail with EROFS')
    .option('--engine <engine>', `the FUSE engine serving the mount: ${ENGINES.join(' or ')} (default: LAYERFS_ENGINE, else ${DEFAULT_ENGINE})`)
    .action(async (image: string, dir: string, flags: { name?: string; readOnly?: boolean; engine?: string }, cmd: Command) => {
      const engine = flags.engine !== undefined ? parseEngine(flags.engine, '--engine') : undefined;
      const supervisor = new Supervisor(await openStore(cmd));
      const record = await supervisor.mount({
        imageRef: image,
        mountpoint: dir,
        ...(flags.name ? { name: flags.name } : {}),
        ...(flags.readOnly ? { readOnly: true } : {}),
        ...(engine ? { engine } : {}),
      });
      process.stdout.write(`${record.id}\n`);
    });
}
