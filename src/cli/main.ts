#!/usr/bin/env node
/**
 * `layerfs`: one subcommand per file under verbs/, each registering itself on the
 * program. Global options live here; exit codes and error printing in exit-codes.ts.
 */
import { Command, CommanderError } from 'commander';
import { recoverRunsAndReport } from '../sandbox/recover-runs.js';
import { Supervisor } from '../supervisor/supervisor.js';
import { EXIT_USAGE, exitCodeFor, printError } from './exit-codes.js';
import { openStore } from './verbs/format.js';
import { registerVerbs } from './verbs/index.js';

export function buildProgram(): Command {
  const program = new Command('layerfs')
    .description('A union-filesystem runtime for container images, served over FUSE')
    .option('--root <dir>', 'store root (default: $LAYERFS_ROOT, else /var/lib/layerfs for root, $XDG_DATA_HOME/layerfs (~/.local/share/layerfs) for other users)')
    .showHelpAfterError()
    .exitOverride();
  registerVerbs(program);
  // Before any verb: a container whose monitor died is stopped and its runtime state
  // deleted; one whose mount process was killed has its dead mount cleared. Writable
  // layers stay, so no command trips over ENOTCONN or a stale runc container.
  program.hook('preAction', async (_program, action) => {
    const store = await openStore(action);
    await recoverRunsAndReport(store);
    const fixed = await new Supervisor(store).recover();
    for (const c of fixed) {
      process.stderr.write(`layerfs: container ${c.name}: its mount process had died; cleared the dead mount on ${c.mountpoint} (writable layer kept)\n`);
    }
  });
  return program;
}

async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : EXIT_USAGE;
    printError(err);
    return exitCodeFor(err);
  }
}

// `layerfs images | head` closes our stdout early: that is not an error.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw err;
});

process.exitCode = await main(process.argv);
