/** `layerfs wait NAME…`: block until containers stop; print each exit code (docker wait). */
import type { Command } from 'commander';
import { LayerfsError } from '../../core/errors.js';
import { findRunContainer, isAlive, readRunState } from '../../sandbox/index.js';
import { openStore } from './format.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export function register(program: Command): void {
  program
    .command('wait')
    .description('Wait until containers stop, then print their exit codes')
    .argument('<container...>', 'container names or ids')
    .action(async (refs: string[], _flags: unknown, cmd: Command) => {
      const store = await openStore(cmd);
      for (const ref of refs) {
        const c = await findRunContainer(store, ref);
        if (!c.state) throw new LayerfsError('FAILED_PRECONDITION', `container ${c.record.name} was never run (it is a mount): there is nothing to wait for`);
        let last = c.state;
        for (;;) {
          const s = await readRunState(c.dir).catch(() => undefined);
          // Gone: a --rm container's teardown removed it with its state.
          if (!s) throw new LayerfsError('NOT_FOUND', `container ${c.record.name} was removed (--rm) before its exit code could be read`);
          last = s;
          if (s.status === 'exited') break;
          // A dead monitor: the next command's recovery will mark it exited (137).
          if (!(await isAlive(s.monitor))) break;
          await sleep(100);
        }
        process.stdout.write(`${last.status === 'exited' ? (last.exitCode ?? -1) : 137}\n`);
      }
    });
}
