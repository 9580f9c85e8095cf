/** `layerfs load -i FILE|-`: load images from a docker-archive or an OCI layout. */
import type { Command } from 'commander';
import { layerShortId } from '../../core/digest.js';
import { parsePlatform, parseSize } from '../../image/index.js';
import { loadImages, type LoadEvent } from '../../store/index.js';
import { openStore, printJson } from './format.js';

interface LoadFlags {
  input: string;
  platform?: string;
  name?: string;
  maxLayerSize?: string;
  quiet?: boolean;
  json?: boolean;
}

/** Registers `load` on the program. */
export function register(program: Command): void {
  program
    .command('load')
    .description('Load images from a docker-archive (docker save) or an OCI layout (tar or directory)')
    .option('-i, --input <file>', "archive file, OCI layout directory, or '-' for stdin", '-')
    .option('--platform <os/arch[/variant]>', "platform to pick from a multi-platform index (default: this host's)")
    .option('--name <repository>', 'repository for OCI entries whose ref.name is only a tag (e.g. umoci\'s "latest")')
    .option('--max-layer-size <size>', 'refuse a layer that expands past this size (e.g. 20G)')
    .option('-q, --quiet', 'print only the loaded image ids')
    .option('--json', 'print the result as JSON')
    .action(async (flags: LoadFlags, cmd: Command) => {
      const store = await openStore(cmd);
      const quiet = flags.quiet || flags.json;
      const onEvent = (e: LoadEvent): void => {
        if (e.type === 'waiting') {
          process.stderr.write(`Waiting for the store lock (held by process ${e.pid ?? '?'})…\n`);
          return;
        }
        if (quiet) return;
        if (e.type === 'layer') process.stdout.write(`${layerShortId(e.diffId)}: ${e.status}\n`);
        else if (e.type === 'untagged') process.stdout.write(`The image ${e.name} already exists, renaming the old one with ID ${e.previous} to empty string\n`);
        else if (e.names.length) for (const n of e.names) process.stdout.write(`Loaded image: ${n}\n`);
        else process.stdout.write(`Loaded image ID: ${e.id}\n`);
      };
      const result = await loadImages(store, {
        input: flags.input,
        onEvent,
        ...(flags.platform ? { platform: parsePlatform(flags.platform) } : {}),
        ...(flags.name ? { repository: flags.name } : {}),
        ...(flags.maxLayerSize ? { limits: { maxLayerSize: parseSize(flags.maxLayerSize) } } : {}),
      });
      if (flags.json) printJson(result.images.map((i) => ({ Id: i.id, RepoTags: i.names })));
      else if (flags.quiet) for (const i of result.images) process.stdout.write(`${i.id}\n`);
    });
}
