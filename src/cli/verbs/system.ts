/** `layerfs system df [--format T] [--json]`: disk usage of images, layer caches, blobs, containers and the build cache. */
import type { Command } from 'commander';
import { buildCacheUsage } from '../../build/index.js';
import { diskReport, type DiskRow } from '../../store/index.js';
import { isLive, listContainerEntries } from '../container-rows.js';
import { humanSize, openStore, printFormatted, printJson, table } from './format.js';

const HEADERS = { Type: 'TYPE', TotalCount: 'TOTAL', Active: 'ACTIVE', Size: 'SIZE', Reclaimable: 'RECLAIMABLE' };

export function register(program: Command): void {
  const system = program.command('system').description('Store-wide commands (df)');
  system
    .command('df')
    .description('Show disk usage: images, layer caches, blobs, containers, build cache, and what is reclaimable')
    .option('--format <template>', "Go template per row ({{.Type}} {{.Size}} {{.Reclaimable}} …), 'table TEMPLATE' or 'json'")
    .option('--json', 'JSON output (sizes in bytes)')
    .action(async (flags: { format?: string; json?: boolean }, cmd: Command) => {
      const store = await openStore(cmd);
      const entries = await listContainerEntries(store, true);
      const rows = await diskReport(
        store,
        entries.map((e) => ({ id: e.record.id, image: e.record.image, live: isLive(e), upper: e.paths.upper })),
      );
      // The build cache's size is the layers its entries keep (store/ cannot see build/).
      const cache = await buildCacheUsage(store);
      const cacheRow: DiskRow = { Type: 'Build cache', TotalCount: cache.entries.length, Active: cache.entries.filter((e) => !e.dangling).length, Size: cache.size, Reclaimable: cache.reclaimable };
      rows.splice(rows.findIndex((r) => r.Type === 'Build cache'), 1, cacheRow);
      if (flags.json) return printJson(rows);
      const pct = (a: number, b: number): string => (b > 0 ? ` (${Math.round((a / b) * 100)}%)` : '');
      const shown = rows.map((r) => ({ ...r, Size: humanSize(r.Size), Reclaimable: `${humanSize(r.Reclaimable)}${pct(r.Reclaimable, r.Size)}` }));
      if (flags.format) return printFormatted(flags.format, shown, HEADERS);
      process.stdout.write(table(Object.values(HEADERS), shown.map((r) => [r.Type, String(r.TotalCount), String(r.Active), r.Size, r.Reclaimable])));
    });
}
