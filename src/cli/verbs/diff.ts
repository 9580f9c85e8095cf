/** `layerfs diff NAME [--json]`: the container's changes (A/C/D), like `docker diff`. */
import type { Command } from 'commander';
import { Supervisor } from '../../supervisor/index.js';
import { containerDiff, formatChanges, openContainerView } from '../../inspect/index.js';
import { openStore, printJson } from './format.js';

/** Registers `diff` on the program. */
export function register(program: Command): void {
  program
    .command('diff')
    .description("Show the container's changes to its image: A added, C changed, D deleted (mounted or not)")
    .argument('<container>', 'container name, id or mount point')
    .option('--json', 'print as JSON: [{Path, Kind, Type, Why}]')
    .action(async (ref: string, flags: { json?: boolean }, cmd: Command) => {
      const store = await openStore(cmd);
      const { record, paths } = await new Supervisor(store).open(ref);
      const cv = await openContainerView(store, record.image, paths.upper);
      const changes = await containerDiff(cv);
      if (flags.json) {
        printJson(changes.map((c) => ({ Path: Buffer.from(c.path, 'latin1').toString('utf8'), Kind: c.kind, Type: c.type, Why: c.why })));
        return;
      }
      process.stdout.write(formatChanges(changes));
    });
}
