/** `layerfs tag SOURCE TARGET`: give an image another name. */
import type { Command } from 'commander';
import { parseReference } from '../../image/index.js';
import { openStore } from './format.js';

/** Registers `tag` on the program. */
export function register(program: Command): void {
  program
    .command('tag')
    .description('Create a tag TARGET that refers to SOURCE')
    .argument('<source>', 'image name or id')
    .argument('<target>', 'new name[:tag]')
    .action(async (source: string, target: string, _flags: unknown, cmd: Command) => {
      const store = await openStore(cmd);
      const ref = parseReference(target);
      await store.withLock(async () => {
        const id = await store.resolveImage(source);
        await store.tags.set(ref, id);
      });
    });
}
