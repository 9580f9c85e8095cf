/**
 * Shared output helpers for the verbs: Docker's human sizes and "x ago" times, column
 * tables, `--format` templates, and opening the store from the global `--root` option.
 */
import { compileTemplate } from '../go-template.js';
import { LayerfsError } from '../../core/errors.js';

export { openStore } from '../store-use.js';

/** Docker's size format: decimal units, 3 significant digits ("5.58MB", "0B"). */
export function humanSize(bytes: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];
  let v = bytes;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${Number(v.toPrecision(3))}${units[i]}`;
}

/** Docker's relative time ("3 days ago", "About an hour ago"). */
export function timeAgo(iso: string | undefined, now = Date.now()): string {
  if (!iso) return 'N/A';
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return 'N/A';
  const s = Math.max(0, (now - t) / 1000);
  const plural = (n: number, u: string): string => `${n} ${u}${n === 1 ? '' : 's'} ago`;
  if (s < 1) return 'Less than a second ago';
  if (s < 60) return plural(Math.floor(s), 'second');
  if (s < 3600) return Math.floor(s / 60) === 1 ? 'About a minute ago' : plural(Math.floor(s / 60), 'minute');
  if (s < 86400 * 2) return Math.floor(s / 3600) === 1 ? 'About an hour ago' : plural(Math.floor(s / 3600), 'hour');
  if (s < 86400 * 7 * 2) return plural(Math.floor(s / 86400), 'day');
  if (s < 86400 * 30 * 2) return plural(Math.floor(s / (86400 * 7)), 'week');
  if (s < 86400 * 365 * 2) return plural(Math.floor(s / (86400 * 30)), 'month');
  return plural(Math.floor(s / (86400 * 365)), 'year');
}

/** Left-aligned columns separated by at least three spaces, like Docker's tables. */
export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]! + 3))).join('').trimEnd();
  return [line(headers), ...rows.map(line)].join('\n') + '\n';
}

/** Prints a value as indented JSON. */
export function printJson(v: unknown): void {
  process.stdout.write(JSON.stringify(v, null, 2) + '\n');
}

/**
 * Prints `rows` with a docker-style `--format`: `json` (one JSON object per line), a Go
 * template per row, or `table TEMPLATE` (a header row made by rendering the template on
 * `headers`, columns split at tabs and aligned). `\t` and `\n` typed literally mean
 * tab and newline, as in docker.
 */
export function printFormatted(format: string, rows: object[], headers: Record<string, string>): void {
  if (format.trim() === 'json') {
    process.stdout.write(rows.map((r) => JSON.stringify(r) + '\n').join(''));
    return;
  }
  const isTable = /^table(\s|$)/.test(format);
  const body = (isTable ? format.slice(5) : format).trim().replaceAll('\\t', '\t').replaceAll('\\n', '\n');
  const tmpl = compileTemplate(body);
  if (!isTable) {
    process.stdout.write(rows.map((r) => tmpl.render(r) + '\n').join(''));
    return;
  }
  const lines = rows.map((r) => tmpl.render(r).split('\t'));
  const headerRow = compileTemplate(body.replace(/\{\{[^}]*?\.(\w+)[^}]*\}\}/g, (_m, f: string) => headers[f] ?? f.toUpperCase())).render({}).split('\t');
  process.stdout.write(table(headerRow, lines));
}

/** The hint line under an error printed without failing the command (empty when it has none). */
export function damageHint(err: unknown): string {
  const hint = err instanceof LayerfsError ? err.hint : undefined;
  return hint ? `  hint: ${hint}\n` : '';
}
