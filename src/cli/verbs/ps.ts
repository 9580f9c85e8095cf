/** `layerfs ps`: containers with image, state and mount point. */
import type { Command } from 'commander';
import { Supervisor } from '../../supervisor/supervisor.js';
import { openStore, printJson, table, timeAgo } from './format.js';

export function register(program: Command): void {
  program
    .command('ps')
    .description('List containers (CONTAINER ID IMAGE CREATED STATUS MOUNTPOINT NAMES)')
    .option('-a, --all', 'accepted for docker compatibility: every container is always listed')
    .option('--json', 'print as JSON')
    .action(async (flags: { json?: boolean }, cmd: Command) => {
      const containers = await new Supervisor(await openStore(cmd)).list();
      if (flags.json) return printJson(containers);
      const rows = containers.map((c) => [
        c.id.slice(0, 12),
        c.imageRef,
        timeAgo(c.created),
        c.state === 'mounted' ? `Mounted${c.readOnly ? ' (read-only)' : ''}` : c.state === 'created' ? 'Created' : 'Unmounted',
        c.mountpoint && c.state === 'mounted' ? c.mountpoint : '',
        c.name,
      ]);
      process.stdout.write(table(['CONTAINER ID', 'IMAGE', 'CREATED', 'STATUS', 'MOUNTPOINT', 'NAMES'], rows));
    });
}
