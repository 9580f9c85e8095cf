#!/usr/bin/env node
/**
 * Metadata-heavy comparison of the two FUSE engines of layerfs (issue 12): the layerfs
 * engine (src/engine/) against the patched fuse-native one, on a synthetic tree of small
 * files in two lower layers, mounted by the same mount process scripts/bench uses.
 * Workloads: cold `ls -lR`, warm `ls -lR`, `cat` of every file (cold, then warm: each
 * file's second open, as in a warm `tar`), warm `find`; systems interleaved per round, the
 * median of the rounds reported, plus the requests each layerfs-engine system received per
 * workload (SIGUSR2 counts: those that reached JS, and "GETXATTR in C"/"LISTXATTR in C",
 * answered by the native request loop).
 *
 *   sudo node scripts/bench-engine-meta.mjs [--files 20000] [--dirs 200] [--rounds 3]
 *                                            [--dist DIR] [--systems layerfs,layerfs-fuse-native]
 *                                            [--before-dist DIR]
 *
 * --before-dist adds "layerfs-before": the layerfs engine as built elsewhere (e.g. an
 * older commit's src/ compiled below .cache/, so the addons still resolve), interleaved.
 *
 * Needs root and a built dist/ (npm run build). The tree is cached under
 * .cache/bench-engine-meta/<files>x<dirs>/. Not a test: timings are only printed.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync, existsSync, renameSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { tmpdir, loadavg } from 'node:os';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { cpuTimes, lastMicros, selectSystems } from './bench-driver/engine-bench.mjs';
import { forceUnmount, layerfsIndexCache } from './bench-driver/systems.mjs';
import { dropCaches, median, sh } from './bench-driver/run.mjs';

const repo = resolve(import.meta.dirname, '..');
const { values: opts } = parseArgs({
  options: {
    files: { type: 'string', default: '20000' },
    dirs: { type: 'string', default: '200' },
    rounds: { type: 'string', default: '3' },
    dist: { type: 'string', default: join(repo, 'dist') },
    systems: { type: 'string', default: 'layerfs,layerfs-fuse-native' },
    'before-dist': { type: 'string' },
  },
});
const files = Number(opts.files);
const dirs = Number(opts.dirs);
const rounds = Number(opts.rounds);

/** Two lowers: the bottom holds every file, the top a tenth of them again (shadowing). */
function ensureTree() {
  const root = join(repo, '.cache', 'bench-engine-meta', `${files}x${dirs}`);
  const lowers = [join(root, 'top'), join(root, 'bottom')];
  if (existsSync(join(root, 'done'))) return lowers;
  rmSync(root, { recursive: true, force: true });
  const perDir = Math.ceil(files / dirs);
  for (let d = 0; d < dirs; d++) {
    const dir = join(lowers[1], `d${Math.floor(d / 20)}`, `dir${d}`);
    mkdirSync(dir, { recursive: true });
    for (let f = 0; f < perDir && d * perDir + f < files; f++) {
      writeFileSync(join(dir, `file-${f}.txt`), `file ${d}/${f}\n`.repeat(1 + (f % 8)));
      if (f % 10 === 0) {
        const top = join(lowers[0], `d${Math.floor(d / 20)}`, `dir${d}`);
        mkdirSync(top, { recursive: true });
        writeFileSync(join(top, `file-${f}.txt`), `top ${d}/${f}\n`);
      }
    }
  }
  writeFileSync(join(root, 'done'), '');
  return lowers;
}

const WORKLOADS = [
  { name: 'cold ls -lR', cold: true, cmd: (m) => `ls -lR ${m} > /dev/null` },
  { name: 'warm ls -lR', cold: false, cmd: (m) => `ls -lR ${m} > /dev/null` },
  { name: 'cat every file', cold: true, cmd: (m) => `find ${m} -type f -print0 | xargs -0 cat > /dev/null` },
  // Again with the kernel's inodes cached: every file's second open (as in a warm `tar`).
  { name: 'warm cat every file', cold: false, cmd: (m) => `find ${m} -type f -print0 | xargs -0 cat > /dev/null` },
  { name: 'warm find', cold: false, cmd: (m) => `find ${m} > /dev/null` },
];

const lowers = ensureTree();
const { LowerIndex } = await import(pathToFileURL(join(opts.dist, 'union', 'lower-index.js')).href);
await LowerIndex.ensureCache(lowers, layerfsIndexCache(lowers));
const logDir = mkdtempSync(join(tmpdir(), 'bench-engine-meta-log-'));
const systems = selectSystems({ dist: opts.dist, logDir, names: opts.systems, beforeDist: opts['before-dist'] });
const times = new Map(); // `${system}\t${workload}` → seconds[]
const cpus = new Map(); // the same → the mount process's CPU seconds[]
const counts = new Map(); // `${system}\t${workload}` → layerfs engine request counts (last round)
const micros = new Map(); // the same → µs per request type (arrival to reply)

/** CPU seconds (user + system, all threads) the mount process used so far. */
const cpuSeconds = (pid) => cpuTimes(pid).reduce((a, b) => a + b, 0);
const diff = (after, before) => Object.fromEntries(Object.entries(after ?? {}).map(([k, v]) => [k, v - (before?.[k] ?? 0)]).filter(([, v]) => v > 0));

console.error(`tree: ${files} files in ${dirs} dirs, ${rounds} rounds, load ${loadavg()[0].toFixed(2)}`);
for (let r = 0; r < rounds; r++) {
  for (const sys of systems) {
    const base = mkdtempSync(join(tmpdir(), 'bench-engine-meta-'));
    const m = { lowers, upper: join(base, 'upper'), work: join(base, 'work'), mnt: join(base, 'mnt') };
    for (const d of [m.upper, m.work, m.mnt]) mkdirSync(d);
    let handle;
    try {
      handle = await sys.mount(m);
      for (const w of WORKLOADS) {
        if (w.cold) dropCaches();
        // Every layerfs-engine system (layerfs, layerfs-before) counts; fuse-native cannot.
        const before = await sys.requestCounts?.(handle);
        const microsBefore = before ? await lastMicros(handle) : undefined;
        const cpu0 = cpuSeconds(handle.pid);
        const res = await sh(w.cmd(m.mnt), { timeoutMs: 600_000 });
        const cpu = cpuSeconds(handle.pid) - cpu0;
        const key = `${sys.name}\t${w.name}`;
        times.set(key, [...(times.get(key) ?? []), res.seconds]);
        cpus.set(key, [...(cpus.get(key) ?? []), cpu]);
        if (before) {
          const after = await sys.requestCounts(handle);
          counts.set(key, diff(after, before));
          await new Promise((r) => setTimeout(r, 50));
          micros.set(key, diff(await lastMicros(handle), microsBefore));
        }
        console.error(`round ${r + 1} ${sys.name} ${w.name}: ${res.seconds.toFixed(3)} s, server CPU ${cpu.toFixed(2)} s, load ${loadavg()[0].toFixed(1)}`);
      }
    } finally {
      if (handle) await sys.unmount(handle).catch(async () => forceUnmount(m.mnt, handle.pid));
      rmSync(base, { recursive: true, force: true });
    }
  }
}

// Requests per layerfs-engine system ("GETXATTR in C": answered by the native loop, not JS).
const counted = systems.filter((s) => WORKLOADS.some((w) => counts.has(`${s.name}\t${w.name}`)));
const lines = ['wall s (mount process CPU s), median of the rounds', '', `| workload | ${systems.map((s) => s.name).join(' | ')} | ${counted.map((s) => `${s.name} requests`).join(' | ')} |`, `|---|${systems.map(() => '---|').join('')}${counted.map(() => '---|').join('')}`];
for (const w of WORKLOADS) {
  // wall seconds (server CPU seconds), medians over the rounds
  const cells = systems.map((s) => {
    const k = `${s.name}\t${w.name}`;
    return `${median(times.get(k) ?? [])?.toFixed(2) ?? '–'} (${median(cpus.get(k) ?? [])?.toFixed(2) ?? '–'})`;
  });
  // requests, and the mean µs from arrival to reply of each type
  const reqs = counted.map((s) => {
    const c = counts.get(`${s.name}\t${w.name}`) ?? {};
    const us = micros.get(`${s.name}\t${w.name}`) ?? {};
    return Object.entries(c).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}${us[k] ? ` (${Math.round(us[k] / v)} µs)` : ''}`).join(', ');
  });
  lines.push(`| ${w.name} | ${cells.join(' | ')} | ${reqs.join(' | ')} |`);
}
const table = lines.join('\n');
console.log(table);
const out = join(repo, 'bench-results', `engine-meta-${new Date().toISOString().replace(/[:.]/g, '-')}.md`);
mkdirSync(join(repo, 'bench-results'), { recursive: true });
writeFileSync(out + '.tmp', `${files} files, ${dirs} dirs, ${rounds} rounds (median), load at start ${loadavg()[0].toFixed(2)}\n\n${table}\n`);
renameSync(out + '.tmp', out);
console.error(`mount logs in ${logDir}`);
