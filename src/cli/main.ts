#!/usr/bin/env node
/**
 * `layerfs`: one subcommand per file under verbs/, each registering itself on the
 * program. Global options live here; exit codes and error printing in exit-codes.ts;
 * how each verb may open the store in store-use.ts.
 */
import { readdir } from 'node:fs/promises';
import { Command, CommanderError } from 'commander';
import { hasErrnoCode } from '../core/errors.js';
import { exitCodeFor, printError, usageExitCode } from './exit-codes.js';
import { openStore, storeUseOf } from './store-use.js';
import { packageVersion } from './package-version.js';
import { registerVerbs, verbInArgs } from './verbs/index.js';

/**
 * The program with every verb; only the module of the verb `args` (argv after the script)
 * runs is loaded, or every module with 'all'.
 */
export async function buildProgram(args: readonly string[] | 'all'): Promise<Command> {
  const program = new Command('layerfs')
    .description('A union-filesystem runtime for container images, served over FUSE')
    .version(`layerfs version ${packageVersion()}`, '-v, --version', 'print the version')
    .option('--root <dir>', 'store root (default: $LAYERFS_ROOT, else /var/lib/layerfs for root, $XDG_DATA_HOME/layerfs (~/.local/share/layerfs) for other users)')
    // A parse error is one line and a pointer to the verb's help (printed by main), as
    // docker does; the whole help after every typo buries the line that matters.
    .configureOutput({ outputError: () => undefined })
    .exitOverride();
  await registerVerbs(program, args === 'all' ? 'all' : verbInArgs(args));
  // Before any verb: a container whose monitor died is stopped and its runtime state
  // deleted; one whose mount process was killed has its dead mount cleared. Writable
  // layers stay, so no command trips over ENOTCONN or a stale runc container.
  program.hook('preAction', async (_program, action) => {
    if (storeUseOf(action) === 'none') return;
    const store = await openStore(action);
    if (!(await mayHoldContainers(store.paths.containersDir))) return;
    // Imported here, not at the top: --version and --help never need them, nor does a
    // store without containers (the sandbox and supervisor are a third of the program).
    const [{ recoverRunsAndReport }, { Supervisor }] = await Promise.all([import('../sandbox/index.js'), import('../supervisor/index.js')]);
    await recoverRunsAndReport(store);
    const fixed = await new Supervisor(store).recover();
    for (const c of fixed) {
      process.stderr.write(`layerfs: container ${c.name}: its mount process had died; cleared the dead mount on ${c.mountpoint} (writable layer kept)\n`);
    }
  });
  return program;
}

/**
 * Whether the containers folder has anything in it. Both recoveries start from its
 * entries (one folder per container), so an empty or missing folder has nothing to
 * recover; any other error is left to them to report.
 */
async function mayHoldContainers(dir: string): Promise<boolean> {
  try {
    return (await readdir(dir)).length > 0;
  } catch (err) {
    return !hasErrnoCode(err, 'ENOENT');
  }
}

/** The verb named on the command line (`system df` for nested ones), skipping global options. */
export function verbOf(program: Command, args: string[]): string | undefined {
  let cmd: Command = program;
  const names: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--root') {
      i++;
      continue;
    }
    if (a.startsWith('-')) continue;
    const sub = cmd.commands.find((c) => c.name() === a || c.aliases().includes(a));
    if (!sub) break;
    names.push(sub.name());
    cmd = sub;
    if (cmd.commands.length === 0) break;
  }
  return names.length ? names.join(' ') : undefined;
}

/** Commander's "error: unknown option '--x'" in docker's words, on one line. */
function parseErrorLine(err: CommanderError): string {
  const msg = err.message.replace(/^error: /, '').replace(/\s*\n\s*/g, ' ');
  if (err.code === 'commander.unknownOption') return msg.replace(/^unknown option '([^']*)'/, 'unknown flag: $1');
  return msg;
}

async function main(argv: string[]): Promise<number> {
  const program = await buildProgram(argv.slice(2));
  const verb = verbOf(program, argv.slice(2));
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.exitCode === 0) return 0;
      // `layerfs` alone prints the help (commander.help) and is a usage error.
      if (err.code !== 'commander.help' && err.code !== 'commander.executeSubCommandAsync') {
        process.stderr.write(`layerfs: ${parseErrorLine(err)}\nSee 'layerfs ${verb ? `${verb} ` : ''}--help'.\n`);
      }
      return usageExitCode(verb);
    }
    printError(err);
    return exitCodeFor(err, verb);
  }
}

// `layerfs images | head` closes our stdout early: that is not an error.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw err;
});

process.exitCode = await main(process.argv);
