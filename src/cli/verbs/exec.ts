/** `layerfs exec [-i] [-t] [-u USER] [-w DIR] [-e K=V] NAME CMD…`: a process in a running container. */
import type { Command } from 'commander';
import { envFlag, execInContainer, findRunContainer } from '../../sandbox/index.js';
import { openStore } from './format.js';

const collect = (v: string, prev: string[]): string[] => [...prev, v];

export function register(program: Command): void {
  program.enablePositionalOptions();
  program
    .command('exec')
    .description('Run a command in a running container; its exit code is ours')
    .argument('<container>', 'container name or id')
    .argument('<command...>', 'command and arguments')
    .passThroughOptions()
    .option('-i, --interactive', 'stream stdin to the process')
    .option('-t, --tty', 'allocate a terminal')
    .option('-u, --user <user[:group]>', 'user (resolved in the container /etc/passwd)')
    .option('-w, --workdir <dir>', 'working directory')
    .option('-e, --env <KEY=VALUE>', 'extra environment variable (repeatable)', collect, [])
    .action(async (ref: string, args: string[], flags: { interactive?: boolean; tty?: boolean; user?: string; workdir?: string; env: string[] }, cmd: Command) => {
      const store = await openStore(cmd);
      const result = await execInContainer(store, await findRunContainer(store, ref), {
        args,
        tty: !!flags.tty,
        interactive: !!flags.interactive,
        ...(flags.user !== undefined ? { user: flags.user } : {}),
        ...(flags.workdir !== undefined ? { workdir: flags.workdir } : {}),
        env: flags.env.flatMap((e) => envFlag(e)),
      });
      if (result.failure) process.stderr.write(`layerfs: ${result.failure.message}\n`);
      process.exitCode = result.exitCode;
    });
}
