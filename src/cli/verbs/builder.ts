/**
 * `layerfs builder prune [-a] [--filter until=DURATION] [--keep-storage SIZE] [-f]` and
 * `layerfs builder du`: the build cache's entries and what removing them frees
 * (src/build/cache-prune.ts), as `docker builder prune` and `docker buildx du` show them.
 */
import type { Command } from 'commander';
import { buildCacheUsage, parseUntil, pruneBuildCache } from '../../build/index.js';
import { LayerfsError } from '../../core/errors.js';
import { parseSize } from '../../image/index.js';
import { humanSize, openStore, printJson, table, timeAgo } from './format.js';

interface PruneFlags {
  all?: boolean;
  filter: string[];
  keepStorage?: string;
  force?: boolean;
  json?: boolean;
}

const collect = (v: string, prev: string[]): string[] => [...prev, v];

/** `--filter until=24h` (the one filter the layerfs cache has a field for). */
function untilOf(filters: string[]): number | undefined {
  let until: number | undefined;
  for (const f of filters) {
    const eq = f.indexOf('=');
    const key = f.slice(0, eq);
    if (eq <= 0 || (key !== 'until' && key !== 'unused-for')) throw new LayerfsError('INVALID_ARGUMENT', `invalid filter ${JSON.stringify(f)}: layerfs knows until=DURATION (e.g. until=24h)`);
    until = parseUntil(f.slice(eq + 1));
    if (until === undefined) throw new LayerfsError('INVALID_ARGUMENT', `invalid filter ${JSON.stringify(f)}: expected a duration such as 24h, 90m or 1h30m`);
  }
  return until;
}

/** Registers `builder` on the program. */
export function register(program: Command): void {
  const builder = program.command('builder').description('Manage the build cache (prune, du)');
  builder
    .command('prune')
    .description('Remove build cache: dangling entries (their result is no image\'s), or all with -a')
    .option('-a, --all', 'remove all build cache, not just dangling entries')
    .option('--filter <filter>', 'only entries last used before this long ago, e.g. until=24h (repeatable)', collect, [])
    .option('--keep-storage <size>', 'stop once the cache takes at most this much (e.g. 512M), least recently used first')
    .option('-f, --force', 'do not ask for confirmation')
    .option('--json', 'JSON output')
    .action(async (flags: PruneFlags, cmd: Command) => {
      const untilMs = untilOf(flags.filter);
      const keepStorage = flags.keepStorage !== undefined ? parseSize(flags.keepStorage) : undefined;
      if (!flags.force) {
        const what = flags.all ? 'all build cache' : 'all dangling build cache';
        if (!process.stdin.isTTY) throw new LayerfsError('INVALID_ARGUMENT', `this would remove ${what}`, { hint: 'confirm with -f (--force)' });
        process.stderr.write(`WARNING! This will remove ${what}.\nAre you sure you want to continue? [y/N] `);
        const answer = await new Promise<string>((resolve) => process.stdin.once('data', (d) => resolve(d.toString())));
        process.stdin.pause();
        if (!/^y(es)?$/i.test(answer.trim())) return;
      }
      const store = await openStore(cmd);
      const r = await pruneBuildCache(store, { all: !!flags.all, ...(untilMs !== undefined ? { untilMs } : {}), ...(keepStorage !== undefined ? { keepStorage } : {}) });
      for (const k of r.kept) process.stderr.write(`layerfs: kept: ${k}\n`);
      if (flags.json) {
        printJson({ CachesDeleted: r.deleted, ImagesDeleted: r.images, SpaceReclaimed: r.reclaimed });
        return;
      }
      if (r.deleted.length) process.stdout.write(`Deleted build cache objects:\n${r.deleted.map((k) => `${k.slice(7, 32)}\n`).join('')}\n`);
      process.stdout.write(`Total reclaimed space: ${humanSize(r.reclaimed)}\n`);
    });
  builder
    .command('du')
    .description('Show the build cache: each entry, the layer it made, and what a prune would free')
    .option('--json', 'JSON output')
    .action(async (flags: { json?: boolean }, cmd: Command) => {
      const store = await openStore(cmd);
      const u = await buildCacheUsage(store);
      const entries = [...u.entries].sort((a, b) => b.lastUsed - a.lastUsed);
      if (flags.json) {
        printJson({ Entries: entries.map((e) => ({ ID: e.key, Step: e.text, Size: e.size, Dangling: e.dangling, LastUsedAt: new Date(e.lastUsed).toISOString() })), Size: u.size, Reclaimable: u.reclaimable });
        return;
      }
      const rows = entries.map((e) => [e.key.slice(7, 32), e.dangling ? 'true' : 'false', humanSize(e.size), timeAgo(new Date(e.lastUsed).toISOString()), e.text.length > 60 ? `${e.text.slice(0, 57)}...` : e.text]);
      process.stdout.write(table(['ID', 'DANGLING', 'SIZE', 'LAST ACCESSED', 'STEP'], rows));
      process.stdout.write(`Shared:\t\t${humanSize(u.size - u.reclaimable)}\nPrivate:\t${humanSize(u.reclaimable)}\nReclaimable:\t${humanSize(u.reclaimable)}\nTotal:\t\t${humanSize(u.size)}\n`);
    });
}
