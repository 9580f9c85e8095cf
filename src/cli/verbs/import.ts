/** `layerfs import FILE|- [REPOSITORY[:TAG]] [-c CHANGE]… [-m MSG]`: a root filesystem tarball becomes a one-layer image. */
import type { Command } from 'commander';
import { parseReference } from '../../image/index.js';
import { importTarball } from '../../store/index.js';
import { applyConfigChanges } from '../../commit/index.js';
import { openStore } from './format.js';

export function register(program: Command): void {
  program
    .command('import')
    .description('Create a one-layer image from a root filesystem tarball (plain, gzip or zstd), as layerfs export writes one')
    .argument('<file>', "tarball, or '-' for stdin")
    .argument('[reference]', 'REPOSITORY[:TAG] for the image (untagged when omitted)')
    .option('-c, --change <instruction>', 'apply a Dockerfile instruction (CMD, ENTRYPOINT, ENV, WORKDIR, USER, EXPOSE, LABEL, VOLUME, STOPSIGNAL); repeatable', (v: string, all: string[]) => [...all, v], [] as string[])
    .option('-m, --message <msg>', 'history comment')
    .action(async (file: string, reference: string | undefined, flags: { change: string[]; message?: string }, cmd: Command) => {
      const ref = reference ? parseReference(reference) : undefined;
      const config = flags.change.length ? applyConfigChanges(undefined, flags.change) : undefined;
      const store = await openStore(cmd);
      const id = await importTarball(store, { input: file, ref, config, ...(flags.message ? { message: flags.message } : {}) });
      process.stdout.write(`${id}\n`);
    });
}
