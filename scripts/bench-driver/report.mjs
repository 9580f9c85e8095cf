/**
 * Turns the bench's samples into medians, ratios and a Markdown table (so it can be
 * pasted into native-notes/performance.md as it is).
 */
import { median } from './run.mjs';

const REF_FUSE = 'fuse-overlayfs';
const REF_KERNEL = 'kernel-overlay';

/** Medians per row and system, and each system's ratio to the two references. */
export function summarise(samples, systems) {
  const rows = [];
  for (const [row, bySystem] of Object.entries(samples)) {
    const medians = {};
    for (const s of systems) medians[s] = median(bySystem[s] ?? []);
    const ratios = {};
    for (const ref of [REF_FUSE, REF_KERNEL]) {
      if (!systems.includes(ref)) continue;
      for (const s of systems) {
        if (s === ref || medians[s] === undefined || !medians[ref]) continue;
        ratios[`${s}/${ref}`] = medians[s] / medians[ref];
      }
    }
    rows.push({ row, n: Math.max(...systems.map((s) => (bySystem[s] ?? []).length)), medians, ratios });
  }
  return rows;
}

const fmt = (v) => (v === undefined ? '–' : v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v >= 1 ? v.toFixed(2) : v.toFixed(3));
const short = { 'fuse-overlayfs': 'fo', 'kernel-overlay': 'kernel', 'unionfs-fuse': 'unionfs', layerfs: 'layerfs', 'layerfs-fuse-native': 'l-fn', 'layerfs-volatile': 'l-vol', 'kernel-overlay-volatile': 'k-vol' };

/** The summary as a Markdown table: medians (seconds; MiB for RSS) then ratios. */
export function markdownTable(rows, systems) {
  const ratioKeys = [...new Set(rows.flatMap((r) => Object.keys(r.ratios)))];
  const head = ['workload', 'n', ...systems.map((s) => `${s}`), ...ratioKeys.map((k) => k.split('/').map((p) => short[p] ?? p).join(' / '))];
  const lines = [`| ${head.join(' | ')} |`, `|${head.map((_, i) => (i === 0 ? ':--' : '--:')).join('|')}|`];
  for (const r of rows) {
    const ratio = (k) => (r.ratios[k] === undefined ? '–' : `${r.ratios[k].toFixed(2)}×`);
    lines.push(`| ${[r.row, r.n, ...systems.map((s) => fmt(r.medians[s])), ...ratioKeys.map(ratio)].join(' | ')} |`);
  }
  return lines.join('\n');
}
