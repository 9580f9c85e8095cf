/** `layerfs logs [-f] NAME`: what a detached container wrote to stdout and stderr. */
import { open } from 'node:fs/promises';
import type { Command } from 'commander';
import { LayerfsError } from '../../core/errors.js';
import { findRunContainer, isAlive, readRunState, runPaths } from '../../sandbox/index.js';
import { openStore } from './format.js';

export function register(program: Command): void {
  program
    .command('logs')
    .description('Print the output of a detached container (-f: follow until it exits)')
    .argument('<container>', 'container name or id')
    .option('-f, --follow', 'keep printing new output until the container exits')
    .action(async (ref: string, flags: { follow?: boolean }, cmd: Command) => {
      const store = await openStore(cmd);
      const c = await findRunContainer(store, ref);
      if (!c.state) throw new LayerfsError('FAILED_PRECONDITION', `container ${c.record.name} was never run (it is a mount)`);
      if (!c.state.detached) throw new LayerfsError('FAILED_PRECONDITION', `container ${c.record.name} ran in the foreground: its output went to the terminal`);
      const file = await open(runPaths(c.dir).log, 'r').catch(() => undefined);
      if (!file) return;
      let pos = 0;
      const buf = Buffer.alloc(64 * 1024);
      const drain = async (): Promise<void> => {
        for (;;) {
          const { bytesRead } = await file.read(buf, 0, buf.length, pos);
          if (bytesRead === 0) return;
          pos += bytesRead;
          await new Promise<void>((r) => (process.stdout.write(buf.subarray(0, bytesRead)) ? r() : process.stdout.once('drain', r)));
        }
      };
      try {
        await drain();
        while (flags.follow) {
          const s = await readRunState(c.dir).catch(() => undefined);
          const running = s && s.status !== 'exited' && (await isAlive(s.monitor));
          await drain();
          if (!running) break;
          await new Promise((r) => setTimeout(r, 100));
        }
      } finally {
        await file.close();
      }
    });
}
