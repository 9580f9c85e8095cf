#!/usr/bin/env node
/**
 * `layerfs`: one subcommand per file under verbs/, each registering itself on the
 * program. Global options live here; exit codes and error printing in exit-codes.ts.
 */
import { Command, CommanderError } from 'commander';
import { exitCodeFor, printError } from './exit-codes.js';
import { registerVerbs } from './verbs/index.js';

export function buildProgram(): Command {
  const program = new Command('layerfs')
    .description('A union-filesystem runtime for container images, served over FUSE')
    .option('--root <dir>', 'store root (default: $LAYERFS_ROOT or /var/lib/layerfs)')
    .showHelpAfterError()
    .exitOverride();
  registerVerbs(program);
  return program;
}

async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2;
    printError(err);
    return exitCodeFor(err);
  }
}

process.exitCode = await main(process.argv);
