/** `layerfs commit NAME [IMAGE[:TAG]] [-m MSG] [-a AUTHOR] [-c 'CMD …']`: a container's changes become a new image. */
import type { Command } from 'commander';
import { Supervisor } from '../../supervisor/index.js';
import { commitContainer } from '../../commit/index.js';
import { openStore, printJson } from './format.js';

interface CommitFlags {
  message?: string;
  author?: string;
  change: string[];
  json?: boolean;
}

/** Registers `commit` on the program. */
export function register(program: Command): void {
  program
    .command('commit')
    .description("Create a new image from a container's writable layer (one new OCI layer on top of its image)")
    .argument('<container>', 'container name, id or mount point')
    .argument('[image]', 'name[:tag] for the new image (untagged when omitted)')
    .option('-m, --message <msg>', 'commit message (the history comment)')
    .option('-a, --author <author>', 'author, e.g. "Jane <jane@example.com>"')
    .option('-c, --change <instruction>', 'apply a Dockerfile instruction (CMD, ENTRYPOINT, ENV, WORKDIR, USER, EXPOSE, LABEL, VOLUME, STOPSIGNAL); repeatable', (v: string, all: string[]) => [...all, v], [] as string[])
    .option('--json', 'print the result as JSON')
    .action(async (ref: string, image: string | undefined, flags: CommitFlags, cmd: Command) => {
      const store = await openStore(cmd);
      const { record, paths } = await new Supervisor(store).open(ref);
      const result = await commitContainer(store, {
        image: record.image,
        upperDir: paths.upper,
        containerName: record.name,
        changes: flags.change,
        ...(image ? { reference: image } : {}),
        ...(flags.message ? { message: flags.message } : {}),
        ...(flags.author ? { author: flags.author } : {}),
      });
      if (flags.json) {
        printJson({ Id: result.id, RepoTags: result.names, DiffId: result.diffId, Blob: result.blob, BlobSize: result.blobSize, Layer: result.tar });
        return;
      }
      process.stdout.write(`${result.id}\n`);
    });
}
