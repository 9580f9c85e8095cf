/**
 * Every subcommand, in the order `layerfs --help` lists them. A verb's module (and all it
 * imports: the store, the sandbox, grpc…) is loaded only when that verb runs: start-up is
 * mostly Node resolving and compiling modules, so loading all ~40 verbs cost every command
 * 0.3 s of CPU. The others are stand-ins built from catalog.ts (name, aliases, help line),
 * which keep `layerfs --help`, `help VERB` and "unknown command" as they were.
 */
import { Command, Help } from 'commander';
import { VERB_CATALOG, type CatalogCommand, type CatalogModule } from './catalog.js';

interface VerbModule {
  register(program: Command): void;
}

/** Module name → loader; the order is the help's. catalog.ts is generated from these. */
export const VERB_MODULES: ReadonlyArray<readonly [string, () => Promise<VerbModule>]> = [
  ['load', () => import('./load.js')],
  ['import', () => import('./import.js')],
  ['pull', () => import('./pull.js')],
  ['push', () => import('./push.js')],
  ['login', () => import('./login.js')],
  ['images', () => import('./images.js')],
  ['inspect', () => import('./inspect.js')],
  ['history', () => import('./history.js')],
  ['tag', () => import('./tag.js')],
  ['rmi', () => import('./rmi.js')],
  ['save', () => import('./save.js')],
  ['prune', () => import('./prune.js')],
  ['system', () => import('./system.js')],
  ['check', () => import('./check.js')],
  ['mount', () => import('./mount.js')],
  ['umount', () => import('./umount.js')],
  ['ps', () => import('./ps.js')],
  ['rm', () => import('./rm.js')],
  ['run', () => import('./run.js')],
  ['start', () => import('./start.js')],
  ['stop', () => import('./stop.js')],
  ['restart', () => import('./restart.js')],
  ['kill', () => import('./kill.js')],
  ['wait', () => import('./wait.js')],
  ['exec', () => import('./exec.js')],
  ['logs', () => import('./logs.js')],
  ['top', () => import('./top.js')],
  ['rename', () => import('./rename.js')],
  ['cp', () => import('./cp.js')],
  ['export', () => import('./export.js')],
  ['build', () => import('./build.js')],
  ['builder', () => import('./builder.js')],
  ['diff', () => import('./diff.js')],
  ['commit', () => import('./commit.js')],
  ['layers', () => import('./layers.js')],
  ['explain', () => import('./explain.js')],
  ['events', () => import('./events.js')],
  ['ui', () => import('./ui.js')],
  ['snapshotter', () => import('./snapshotter.js')],
];

/**
 * The top-level verb a command line runs (`help VERB` counts as VERB), by name or alias,
 * skipping global options; undefined when it names none (then only stand-ins are needed).
 */
export function verbInArgs(args: readonly string[]): string | undefined {
  const words: string[] = [];
  for (let i = 0; i < args.length && words.length < 2; i++) {
    const a = args[i]!;
    if (a === '--root') i++;
    else if (!a.startsWith('-')) words.push(a);
    if (words[0] !== undefined && words[0] !== 'help') break;
  }
  const word = words[0] === 'help' ? words[1] : words[0];
  for (const m of VERB_CATALOG) {
    for (const c of m.commands) if (c.name === word || c.aliases.includes(word ?? '')) return c.name;
  }
  return undefined;
}

/** Help lines of the stand-ins (commander's own term needs the real arguments and options). */
const standInTerms = new WeakMap<Command, string>();

function addStandIn(program: Command, c: CatalogCommand): void {
  const cmd = program
    .command(c.name)
    .description(c.description)
    .aliases([...c.aliases])
    .action(() => {
      throw new Error(`internal: the module of verb ${c.name} was not loaded`);
    });
  standInTerms.set(cmd, c.term);
}

/**
 * Registers every verb on `program`: `verb`'s module for real ('all': every module), the
 * rest as stand-ins.
 */
export async function registerVerbs(program: Command, verb: string | 'all' | undefined): Promise<void> {
  // run and exec turn this on when they register (options before the image are theirs,
  // after it the command's); it is program-wide, so it must not depend on which verb loaded.
  program.enablePositionalOptions();
  program.configureHelp({
    subcommandTerm(this: Help, cmd: Command): string {
      return standInTerms.get(cmd) ?? Help.prototype.subcommandTerm.call(this, cmd);
    },
  });
  const catalog = new Map<string, CatalogModule>(VERB_CATALOG.map((m) => [m.module, m]));
  for (const [name, load] of VERB_MODULES) {
    const entry = catalog.get(name);
    if (verb === 'all' || !entry || entry.commands.some((c) => c.name === verb)) (await load()).register(program);
    else for (const c of entry.commands) addStandIn(program, c);
  }
}

/** What catalog.ts must hold: each module's top-level commands as the real modules register them. */
export async function verbCatalog(): Promise<CatalogModule[]> {
  const out: CatalogModule[] = [];
  for (const [name, load] of VERB_MODULES) {
    const program = new Command('layerfs').enablePositionalOptions();
    (await load()).register(program);
    const help = program.createHelp();
    out.push({
      module: name,
      commands: program.commands.map((cmd) => ({ name: cmd.name(), aliases: cmd.aliases(), term: help.subcommandTerm(cmd), description: cmd.description() })),
    });
  }
  return out;
}
