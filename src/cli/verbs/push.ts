/** `layerfs push IMAGE [REGISTRY/]REPO[:TAG]`: upload a stored image to a registry. */
import type { Command } from 'commander';
import { LayerfsError } from '../../core/errors.js';
import { parseSize } from '../../image/index.js';
import { parseCompression, type PushEvent, pushImage } from '../../registry/index.js';
import { openStore } from './format.js';
import { clientOptions, connectionOptions } from './registry-options.js';

interface PushFlags {
  chunkSize?: string;
  jobs: string;
  insecure?: boolean;
  tlsCa?: string;
  timeout?: string;
  quiet?: boolean;
  compress: string;
}

/** Registers `push` on the program. */
export function register(program: Command): void {
  connectionOptions(
    program
      .command('push')
      .description('Upload a stored image to a registry (compressed layers as stored: same blobs, same manifest digest)')
      .argument('<image>', 'stored image: name[:tag], id, or name@digest')
      .argument('[destination]', '[REGISTRY/]REPO[:TAG] (default: the image name)')
      .option('--chunk-size <size>', 'upload blobs larger than this in chunks of this size (default 16M)')
      .option('-j, --jobs <n>', 'blobs uploaded in parallel', '3')
      .option('--compress <gzip|zstd|none>', 'compress layers stored as uncompressed tar (the manifest then names the compressed blobs)', 'gzip')
      .option('-q, --quiet', 'print only the manifest digest'),
  ).action(async (image: string, destination: string | undefined, flags: PushFlags, cmd: Command) => {
    const jobs = Number(flags.jobs);
    if (!Number.isInteger(jobs) || jobs < 1 || jobs > 64) throw new LayerfsError('INVALID_ARGUMENT', `invalid --jobs ${JSON.stringify(flags.jobs)}: expected 1…64`);
    const compress = parseCompression(flags.compress);
    const store = await openStore(cmd);
    const onEvent = (e: PushEvent): void => {
      if (flags.quiet) return;
      if (e.type === 'start') process.stdout.write(`The push refers to repository [${e.repository}]\n`);
      else if (e.type === 'layer') process.stdout.write(`${e.id}: ${e.status}\n`);
      else process.stdout.write(`${e.tag}: digest: ${e.digest} size: ${e.size}\n`);
    };
    const digest = await pushImage(store, image, destination ?? image, {
      ...(await clientOptions(flags)),
      jobs,
      compress,
      onEvent,
      ...(flags.chunkSize ? { chunkSize: Math.max(1, parseSize(flags.chunkSize)) } : {}),
    });
    if (flags.quiet) process.stdout.write(`${digest}\n`);
  });
}
