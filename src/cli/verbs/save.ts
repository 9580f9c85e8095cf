/** `layerfs save -o FILE IMAGE…`: write images as a docker-archive (Docker 25 layout). */
import type { Command } from 'commander';
import { LayerfsError } from '../../core/errors.js';
import { saveImages } from '../../store/index.js';
import { openStore } from './format.js';

/** Registers `save` on the program. */
export function register(program: Command): void {
  program
    .command('save')
    .description('Save images to a docker-archive tar (byte-identical layers)')
    .argument('<image...>', 'image names or ids')
    .option('-o, --output <file>', 'write to this file instead of stdout')
    .action(async (refs: string[], flags: { output?: string }, cmd: Command) => {
      if (!flags.output && process.stdout.isTTY) {
        throw new LayerfsError('INVALID_ARGUMENT', 'refusing to write an archive to a terminal', { hint: 'use -o FILE or redirect stdout' });
      }
      const store = await openStore(cmd);
      await saveImages(store, refs, flags.output ?? process.stdout);
    });
}
