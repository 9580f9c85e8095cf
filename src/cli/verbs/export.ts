/**
 * `layerfs export [-o FILE] CONTAINER`: the container's merged root filesystem as one tar
 * (flattened: what the container sees, image and writable layer together), as `docker
 * export`; `layerfs import` turns it back into a one-layer image.
 */
import { spawn } from 'node:child_process';
import { open, rename, rm } from 'node:fs/promises';
import type { Command } from 'commander';
import { LayerfsError } from '../../core/errors.js';
import { withContainerRootfs } from '../container-rootfs.js';
import { openStore } from './format.js';

export function register(program: Command): void {
  program
    .command('export')
    .description("Write a container's merged root filesystem as a tar (to stdout, or -o FILE)")
    .argument('<container>', 'container name or id')
    .option('-o, --output <file>', 'write to this file instead of stdout')
    .action(async (ref: string, flags: { output?: string }, cmd: Command) => {
      if (!flags.output && process.stdout.isTTY) throw new LayerfsError('INVALID_ARGUMENT', 'usage: refusing to write a tar to a terminal', { hint: 'use -o FILE or redirect stdout' });
      const store = await openStore(cmd);
      const out = flags.output ? await open(`${flags.output}.tmp-${process.pid}`, 'wx') : undefined;
      try {
        await withContainerRootfs(store, ref, (rootfs) =>
          new Promise<void>((resolve, reject) => {
            // GNU tar: names relative to the root, numeric owners, symlinks stored as symlinks.
            const tar = spawn('tar', ['-C', rootfs, '-c', '-f', '-', '--numeric-owner', '--sort=name', '.'], { stdio: ['ignore', out ? out.fd : 'pipe', 'pipe'] });
            tar.stdout?.pipe(process.stdout);
            let err = '';
            tar.stderr?.on('data', (d: Buffer) => (err += d.toString()));
            tar.on('error', reject);
            tar.on('close', (code) => (code === 0 ? resolve() : reject(new LayerfsError('IO', `tar of the container's root failed: ${err.trim()}`))));
          }),
        );
        if (out && flags.output) {
          await out.close();
          await rename(`${flags.output}.tmp-${process.pid}`, flags.output);
        }
      } catch (err) {
        if (out && flags.output) {
          await out.close().catch(() => undefined);
          await rm(`${flags.output}.tmp-${process.pid}`, { force: true });
        }
        throw err;
      }
    });
}
