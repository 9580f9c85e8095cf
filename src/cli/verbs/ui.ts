/** `layerfs ui [--port N]`: the layer and copy-on-write web page, on 127.0.0.1 only. */
import type { Command } from 'commander';
import { recentBuilds } from '../../build/index.js';
import { Supervisor } from '../../supervisor/index.js';
import { startUiServer } from '../../ui/index.js';
import { openStore } from './format.js';

/** Registers `ui` on the program. */
export function register(program: Command): void {
  program
    .command('ui')
    .description('Serve a web page (127.0.0.1 only) drawing layer stacks, the merged tree by serving layer, live copy-on-write events and recent builds')
    .option('--port <n>', 'TCP port (0 picks a free one)', '7878')
    .action(async (flags: { port: string }, cmd: Command) => {
      const store = await openStore(cmd);
      const sup = new Supervisor(store);
      const { server, url } = await startUiServer({
        store,
        port: Number(flags.port),
        builds: () => recentBuilds(store),
        containers: async () =>
          (await sup.list()).map((c) => ({ name: c.name, image: c.image, imageRef: c.imageRef, state: c.state, mountpoint: c.mountpoint, upperDir: sup.handle(c).paths.upper })),
      });
      process.stdout.write(`layerfs ui: ${url}\n`);
      await new Promise<void>((resolve) => {
        const stop = (): void => {
          server.closeAllConnections();
          server.close(() => resolve());
        };
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
    });
}
