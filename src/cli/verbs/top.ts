/** `layerfs top NAME [PS-OPTIONS]`: the processes of a running container, as ps shows them (default -ef). */
import type { Command } from 'commander';
import { LayerfsError } from '../../core/errors.js';
import { findRunContainer, isRunning, OciRuntime } from '../../sandbox/index.js';
import { openStore } from './format.js';

export function register(program: Command): void {
  program
    .command('top')
    .description('Show the processes of a running container (ps -ef, or the ps options given)')
    .argument('<container>', 'container name or id')
    .argument('[ps-options...]', 'options for ps (default -ef)')
    .passThroughOptions()
    .action(async (ref: string, psArgs: string[], _flags: unknown, cmd: Command) => {
      const store = await openStore(cmd);
      const c = await findRunContainer(store, ref);
      if (!(await isRunning(c)) || !c.state) throw new LayerfsError('FAILED_PRECONDITION', `container ${c.record.name} is not running`);
      const runtime = await OciRuntime.locate(c.state.runtime, store.paths.root);
      process.stdout.write(await runtime.ps(c.record.id, psArgs.length ? psArgs : ['-ef']));
    });
}
