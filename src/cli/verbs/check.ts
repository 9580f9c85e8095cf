/** `layerfs check [--repair] [--fast] [IMAGE…]`: verify the store; see store/store-check.ts. */
import type { Command } from 'commander';
import { checkStore } from '../../store/index.js';
import { indexCaches } from '../../union/index.js';
import { openStore, printJson } from './format.js';

interface CheckFlags {
  repair?: boolean;
  fast?: boolean;
  json?: boolean;
}

/** Registers `check` on the program. */
export function register(program: Command): void {
  program
    .command('check')
    .description('Verify image metadata, layer caches (against their blobs), index caches and container records')
    .argument('[image...]', 'only these images (default: the whole store)')
    .option('--repair', 'rebuild what can be rebuilt: layer caches and entries from their blobs, index caches, dead container folders')
    .option('--fast', 'compare each layer cache with its recorded size instead of with its blob')
    .option('--json', 'JSON output')
    .action(async (refs: string[], flags: CheckFlags, cmd: Command) => {
      const store = await openStore(cmd);
      // Under the lock: the full check extracts blobs into the store, and repairs change it.
      const problems = await store.withLock(async () => {
        const images = refs.length > 0 ? await Promise.all(refs.map((r) => store.resolveImage(r))) : undefined;
        return checkStore(store, {
          repair: !!flags.repair,
          fast: !!flags.fast,
          indexCaches,
          ...(images ? { images } : {}),
          ...(flags.json ? {} : { onProgress: (l: string) => process.stderr.write(`${l}\n`) }),
        });
      });
      const open = problems.filter((p) => !p.repaired);
      if (flags.json) printJson(problems);
      else {
        for (const p of problems) {
          process.stdout.write(`${p.repaired ? 'REPAIRED' : 'PROBLEM'} ${p.path}: ${p.problem}\n  ${p.repaired ? 'done' : 'fix'}: ${p.fix}\n`);
        }
        process.stdout.write(problems.length === 0 ? 'store is consistent\n' : `${open.length} problem(s) left, ${problems.length - open.length} repaired\n`);
      }
      if (open.length > 0) process.exitCode = 1;
    });
}
