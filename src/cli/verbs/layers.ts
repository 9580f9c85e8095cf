/**
 * `layerfs layers IMAGE`: per layer its CREATED BY, size and files added / modified /
 * removed, then the image's wasted space and efficiency (dive's analysis, as text).
 * On a terminal it opens an interactive tree of each layer's changes (layer-tui.ts);
 * piped, or with --no-interactive, it prints text. `--layer N` lists one layer's files;
 * `--ci` checks thresholds and exits 1 on failure.
 */
import type { Command } from 'commander';
import { layerShortId } from '../../core/digest.js';
import { LayerfsError } from '../../core/errors.js';
import { analyzeImage, type ImageAnalysis, loadImageStack, parseByteSize } from '../../inspect/index.js';
import { runLayerTui } from '../../ui/index.js';
import { EXIT_FAILURE } from '../exit-codes.js';
import { humanSize, openStore, printJson, table } from './format.js';

interface LayersFlags {
  json?: boolean;
  layer?: string;
  ci?: boolean;
  lowestEfficiency: string;
  highestWastedBytes: string;
  trunc?: boolean;
  interactive?: boolean;
}

const latin1ToUtf8 = (p: string): string => Buffer.from(p, 'latin1').toString('utf8');

function printLayers(a: ImageAnalysis, full: boolean): void {
  const by = (c: string): string => (full || c.length <= 60 ? c : c.slice(0, 59) + '…');
  const rows = a.layers.map((r) => [
    String(r.layer.position),
    layerShortId(r.layer.diffId),
    humanSize(r.layer.size),
    String(r.added.length),
    String(r.modified.length),
    String(r.removed.length),
    by(r.layer.createdBy.replace(/\s+/g, ' ')),
  ]);
  process.stdout.write(table(['#', 'LAYER', 'SIZE', 'ADDED', 'MODIFIED', 'REMOVED', 'CREATED BY'], rows));
  process.stdout.write(`\nTotal image size: ${humanSize(a.totalBytes)}\n`);
  process.stdout.write(`Potential wasted space: ${humanSize(a.wastedBytes)}\n`);
  process.stdout.write(`Image efficiency score: ${(a.efficiency * 100).toFixed(1)} %\n`);
  if (a.wasted.length) {
    process.stdout.write('\nWasted space, largest first (bytes shipped in layers but never visible):\n');
    const top = full ? a.wasted : a.wasted.slice(0, 20);
    process.stdout.write(table(['COPIES', 'WASTED', 'PATH'], top.map((w) => [String(w.copies), humanSize(w.wastedBytes), latin1ToUtf8(w.path) + (w.deleted ? '  (deleted)' : '')])));
    if (top.length < a.wasted.length) process.stdout.write(`… and ${a.wasted.length - top.length} more (--no-trunc shows all)\n`);
  }
}

function printLayerFiles(a: ImageAnalysis, n: number): void {
  const r = a.layers[n];
  if (!r) throw new LayerfsError('INVALID_ARGUMENT', `--layer ${n}: the image has layers 0 to ${a.layers.length - 1}`);
  process.stdout.write(`Layer ${n} ${layerShortId(r.layer.diffId)}: ${r.layer.createdBy}\n`);
  const lines = [
    ...r.added.map((p) => ['A', p] as const),
    ...r.modified.map((p) => ['C', p] as const),
    ...r.removed.map((p) => ['D', p] as const),
  ].sort((x, y) => (x[1] < y[1] ? -1 : x[1] > y[1] ? 1 : 0));
  for (const [k, p] of lines) process.stdout.write(`${k} ${latin1ToUtf8(p)}\n`);
}

/** The --ci thresholds, checked before the analysis runs (a typo must not cost a whole analysis). */
function ciThresholds(flags: LayersFlags): { lowest: number; highest: number } {
  const lowest = Number(flags.lowestEfficiency);
  if (!(lowest >= 0 && lowest <= 1)) throw new LayerfsError('INVALID_ARGUMENT', `invalid --lowest-efficiency ${flags.lowestEfficiency}: expected a ratio between 0 and 1`);
  try {
    return { lowest, highest: parseByteSize(flags.highestWastedBytes) };
  } catch (err) {
    throw new LayerfsError('INVALID_ARGUMENT', `invalid --highest-wasted-bytes: ${(err as Error).message}`);
  }
}

function ciCheck(a: ImageAnalysis, { lowest, highest }: { lowest: number; highest: number }): boolean {
  const checks = [
    { name: 'lowestEfficiency', ok: a.efficiency >= lowest, detail: `efficiency ${a.efficiency.toFixed(4)} (threshold ${lowest})` },
    { name: 'highestWastedBytes', ok: a.wastedBytes <= highest, detail: `wasted ${a.wastedBytes} bytes (threshold ${highest})` },
  ];
  for (const c of checks) process.stdout.write(`  ${c.ok ? 'PASS' : 'FAIL'}: ${c.name}: ${c.detail}\n`);
  const ok = checks.every((c) => c.ok);
  process.stdout.write(ok ? 'Result: PASS\n' : 'Result: FAIL\n');
  return ok;
}

/** Registers `layers` on the program. */
export function register(program: Command): void {
  program
    .command('layers')
    .description("Explore an image's layers: files added/modified/removed per layer, wasted space, efficiency (like dive)")
    .argument('<image>', 'image name or id')
    .option('--json', 'print the analysis as JSON (every layer with its file lists)')
    .option('--layer <n>', "list one layer's added (A), modified (C) and removed (D) files; 0 = bottom")
    .option('--no-trunc', "don't truncate CREATED BY or the wasted-space list")
    .option('--no-interactive', 'print text even on a terminal')
    .option('--ci', 'check the thresholds and exit 1 when one is crossed')
    .option('--lowest-efficiency <ratio>', 'with --ci: fail below this efficiency', '0.9')
    .option('--highest-wasted-bytes <size>', 'with --ci: fail above this much wasted space (20MB, 1GiB…)', '20MB')
    .action(async (ref: string, flags: LayersFlags, cmd: Command) => {
      const thresholds = ciThresholds(flags);
      const store = await openStore(cmd);
      const a = await analyzeImage(await loadImageStack(store, await store.resolveImage(ref)));
      if (flags.json) {
        printJson({
          image: ref,
          totalBytes: a.totalBytes,
          wastedBytes: a.wastedBytes,
          efficiency: a.efficiency,
          layers: a.layers.map((r) => ({
            position: r.layer.position,
            chainId: r.layer.chainId,
            diffId: r.layer.diffId,
            createdBy: r.layer.createdBy,
            size: r.layer.size,
            addedDirs: r.addedDirs,
            bytesWritten: r.bytesWritten,
            bytesWasted: r.bytesWasted,
            added: r.added.map(latin1ToUtf8),
            modified: r.modified.map(latin1ToUtf8),
            removed: r.removed.map(latin1ToUtf8),
          })),
          wasted: a.wasted.map((w) => ({ ...w, path: latin1ToUtf8(w.path) })),
        });
      } else if (flags.interactive !== false && !flags.ci && flags.layer === undefined && process.stdin.isTTY && process.stdout.isTTY) {
        await runLayerTui(a, process.stdin, process.stdout);
      } else if (flags.layer !== undefined) {
        printLayerFiles(a, Number(flags.layer));
      } else {
        printLayers(a, flags.trunc === false);
      }
      if (flags.ci && !flags.json) {
        process.stdout.write('\nCI checks:\n');
        if (!ciCheck(a, thresholds)) process.exitCode = EXIT_FAILURE;
      } else if (flags.ci && !ciCheck(a, thresholds)) process.exitCode = EXIT_FAILURE;
    });
}
