/** `layerfs ps`: containers with image, state and mount point. */
import type { Command } from 'commander';
import { describeRun, readRunState } from '../../sandbox/run-state.js';
import { readDamage } from '../../store/damage-record.js';
import { containerPaths } from '../../supervisor/container-record.js';
import { Supervisor } from '../../supervisor/supervisor.js';
import { openStore, printJson, table, timeAgo } from './format.js';

export function register(program: Command): void {
  program
    .command('ps')
    .description('List containers (CONTAINER ID IMAGE COMMAND CREATED STATUS MOUNTPOINT NAMES)')
    .option('-a, --all', 'accepted for docker compatibility: every container is always listed')
    .option('--json', 'print as JSON')
    .action(async (flags: { json?: boolean }, cmd: Command) => {
      const store = await openStore(cmd);
      const containers = await new Supervisor(store).list();
      // Containers made by `run` carry run.json (command, Up/Exited status) beside the record.
      const runs = await Promise.all(containers.map((c) => readRunState(containerPaths(store.paths.containersDir, c.id).dir).catch(() => undefined)));
      // A mount that found a layer file disagreeing with the index recorded it (damage.json).
      const damage = await Promise.all(containers.map((c) => readDamage(containerPaths(store.paths.containersDir, c.id).dir)));
      if (flags.json) return printJson(containers.map((c, i) => ({ ...c, ...(runs[i] ? { run: runs[i] } : {}), ...(damage[i] ? { damage: damage[i] } : {}) })));
      const rows = containers.map((c, i) => [
        c.id.slice(0, 12),
        damage[i] ? `${c.imageRef} (image damaged)` : c.imageRef,
        runs[i] ? JSON.stringify(runs[i].command.join(' ')).slice(0, 22) : '',
        timeAgo(c.created),
        runs[i] ? describeRun(runs[i], (t) => timeAgo(t)) : c.state === 'mounted' ? `Mounted${c.readOnly ? ' (read-only)' : ''}` : c.state === 'created' ? 'Created' : 'Unmounted',
        c.mountpoint && c.state === 'mounted' ? c.mountpoint : '',
        c.name,
      ]);
      process.stdout.write(table(['CONTAINER ID', 'IMAGE', 'COMMAND', 'CREATED', 'STATUS', 'MOUNTPOINT', 'NAMES'], rows));
    });
}
