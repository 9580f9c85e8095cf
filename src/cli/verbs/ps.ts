/**
 * `layerfs ps [-a] [-q] [--filter K=V]… [--format T] [--no-trunc] [--json]`: containers,
 * as `docker ps`: without -a only live ones (running, or mounted by `mount`).
 */
import type { Command } from 'commander';
import { containerFilter, isLive, listContainerEntries } from '../container-rows.js';
import { openStore, printFormatted, printJson, table } from './format.js';

interface PsFlags {
  all?: boolean;
  quiet?: boolean;
  filter: string[];
  format?: string;
  trunc?: boolean;
  json?: boolean;
}

const HEADERS = {
  ID: 'CONTAINER ID', Image: 'IMAGE', Command: 'COMMAND', CreatedAt: 'CREATED AT', RunningFor: 'CREATED', Status: 'STATUS',
  State: 'STATE', Names: 'NAMES', Mountpoint: 'MOUNTPOINT', Labels: 'LABELS', Ports: 'PORTS',
};

export function register(program: Command): void {
  program
    .command('ps')
    .description('List containers (running and mounted ones; -a for all)')
    .option('-a, --all', 'all containers (default: running and mounted ones)')
    .option('-q, --quiet', 'only container ids')
    .option('-f, --filter <key=value>', 'filter: id, name, status (created|running|exited|mounted|unmounted), ancestor, exited (repeatable)', (v: string, all: string[]) => [...all, v], [] as string[])
    .option('--format <template>', "Go template per container ({{.ID}} {{.Names}} {{.Status}} …), 'table TEMPLATE' or 'json'")
    .option('--no-trunc', 'full ids and commands')
    .option('--json', 'print the full records as JSON')
    .action(async (flags: PsFlags, cmd: Command) => {
      const store = await openStore(cmd);
      const keep = containerFilter(flags.filter, (ref) => store.resolveImage(ref).catch(() => undefined));
      // Docker: a status or exited filter reaches stopped containers without -a.
      const all = flags.all || flags.filter.some((f) => /^(status|exited)=/.test(f));
      const entries = [];
      for (const e of await listContainerEntries(store, flags.trunc === false)) {
        if ((all || isLive(e)) && (await keep(e))) entries.push(e);
      }
      if (flags.json) return printJson(entries.map((e) => ({ ...e.record, ...(e.run ? { run: e.run } : {}), ...(e.damage ? { damage: e.damage } : {}) })));
      if (flags.quiet) return void process.stdout.write(entries.map((e) => `${e.row.ID}\n`).join(''));
      if (flags.format) return printFormatted(flags.format, entries.map((e) => e.row), HEADERS);
      const cols = ['ID', 'Image', 'Command', 'RunningFor', 'Status', 'Mountpoint', 'Names'] as const;
      process.stdout.write(table(cols.map((c) => HEADERS[c]), entries.map((e) => cols.map((c) => e.row[c]))));
    });
}
