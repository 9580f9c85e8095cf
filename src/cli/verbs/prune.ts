/** `layerfs prune`: delete layers and blobs that no image or container references. */
import type { Command } from 'commander';
import { keptWarning, pruneStore } from '../../store/index.js';
import { humanSize, openStore, printJson } from './format.js';

interface PruneFlags {
  dangling?: boolean;
  json?: boolean;
}

/** Registers `prune` on the program. */
export function register(program: Command): void {
  program
    .command('prune')
    .description('Delete unreferenced layers and blobs (and, with --dangling, untagged unused images)')
    .option('--dangling', 'also remove untagged images that no container uses')
    .option('--json', 'JSON output')
    .action(async (flags: PruneFlags, cmd: Command) => {
      const store = await openStore(cmd);
      const r = await pruneStore(store, { dangling: !!flags.dangling });
      process.stderr.write(keptWarning(r));
      if (flags.json) {
        printJson({ Deleted: r.deleted, SpaceReclaimed: r.reclaimed });
        return;
      }
      if (r.deleted.length) process.stdout.write(`Deleted:\n${r.deleted.map((d) => `  ${d}\n`).join('')}`);
      process.stdout.write(`Total reclaimed space: ${humanSize(r.reclaimed)}\n`);
    });
}
