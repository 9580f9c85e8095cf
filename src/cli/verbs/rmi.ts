/** `layerfs rmi IMAGE…`: remove images, and the layers and blobs only they used. */
import type { Command } from 'commander';
import { keptWarning, removeImages } from '../../store/index.js';
import { openStore, printJson } from './format.js';

interface RmiFlags {
  force?: boolean;
  json?: boolean;
}

/** Registers `rmi` on the program. */
export function register(program: Command): void {
  program
    .command('rmi')
    .description('Remove images (refuses while a container uses one, unless --force)')
    .argument('<image...>', 'image names or ids')
    .option('-f, --force', 'remove an image with several tags; untag an image a container uses')
    .option('--json', 'JSON output')
    .action(async (refs: string[], flags: RmiFlags, cmd: Command) => {
      const store = await openStore(cmd);
      const r = await removeImages(store, refs, { force: !!flags.force });
      process.stderr.write(keptWarning(r));
      if (flags.json) {
        printJson({ Untagged: r.untagged, Deleted: r.deleted, SpaceReclaimed: r.reclaimed });
        return;
      }
      for (const t of r.untagged) process.stdout.write(`Untagged: ${t}\n`);
      for (const d of r.deleted) process.stdout.write(`Deleted: ${d}\n`);
    });
}
