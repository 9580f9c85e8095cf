#!/usr/bin/env node
/**
 * Cold LOOKUP cost of the layerfs engine (issue 12): `stat` of every file of a two-layer
 * tree of small files and of as many missing names (the bench's stat-100k-hit/-miss on a
 * tree built in seconds), then `find` over the mount and the mount process's peak RSS.
 * Prints wall seconds, the mount process's CPU seconds (user + system, all threads) and,
 * for the layerfs engine, LOOKUP count and mean µs from arrival to reply (SIGUSR2).
 *
 *   sudo node scripts/bench-engine-lookup.mjs [--files 100000] [--dirs 250] [--rounds 3]
 *        [--systems layerfs,fuse-overlayfs] [--before-dist DIR] [--node-options '--cpu-prof …'] (flags for the mount process's node)
 *
 * --before-dist adds "layerfs-before" (another build of dist/, interleaved). The tree is
 * cached under .cache/bench-engine-lookup/<files>x<dirs>/. Not a test: numbers only.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { dropCaches, median, sh } from './bench-driver/run.mjs';
import { cpuTimes, lastMicros, selectSystems } from './bench-driver/engine-bench.mjs';
import { forceUnmount, layerfsIndexCache, peakRssMiB } from './bench-driver/systems.mjs';

const repo = resolve(import.meta.dirname, '..');
const { values: opts } = parseArgs({
  options: {
    files: { type: 'string', default: '100000' },
    dirs: { type: 'string', default: '250' },
    rounds: { type: 'string', default: '3' },
    dist: { type: 'string', default: join(repo, 'dist') },
    systems: { type: 'string', default: 'layerfs,fuse-overlayfs' },
    'before-dist': { type: 'string' },
    'node-options': { type: 'string' },
  },
});
const files = Number(opts.files);
const dirs = Number(opts.dirs);
const rounds = Number(opts.rounds);

/** Bottom layer: every file; top layer: every tenth again (shadowing), so dirs merge. */
function ensureTree() {
  const root = join(repo, '.cache', 'bench-engine-lookup', `${files}x${dirs}`);
  const lowers = [join(root, 'top'), join(root, 'bottom')];
  const lists = { hit: join(root, 'stat-hit.txt'), miss: join(root, 'stat-miss.txt') };
  if (existsSync(join(root, 'done'))) return { root, lowers, lists };
  rmSync(root, { recursive: true, force: true });
  const perDir = Math.ceil(files / dirs);
  const hit = [];
  const miss = [];
  for (let d = 0; d < dirs; d++) {
    const rel = join(`d${Math.floor(d / 20)}`, `dir${d}`);
    mkdirSync(join(lowers[1], rel), { recursive: true });
    for (let f = 0; f < perDir && d * perDir + f < files; f++) {
      writeFileSync(join(lowers[1], rel, `file-${f}.txt`), `file ${d}/${f}\n`);
      hit.push(join(rel, `file-${f}.txt`));
      miss.push(join(rel, `missing-${f}.txt`));
      if (f % 10 === 0) {
        mkdirSync(join(lowers[0], rel), { recursive: true });
        writeFileSync(join(lowers[0], rel, `file-${f}.txt`), `top ${d}/${f}\n`);
      }
    }
  }
  writeFileSync(lists.hit, hit.join('\n') + '\n');
  writeFileSync(lists.miss, miss.join('\n') + '\n');
  writeFileSync(join(root, 'done'), '');
  return { root, lowers, lists };
}

const { root, lowers, lists } = ensureTree();
const helper = join(root, 'benchhelper');
if (!existsSync(helper)) execFileSync('cc', ['-O2', '-o', helper, join(repo, 'scripts', 'bench-driver', 'benchhelper.c')]);
const { LowerIndex } = await import(pathToFileURL(join(opts.dist, 'union', 'lower-index.js')).href);
await LowerIndex.ensureCache(lowers, layerfsIndexCache(lowers));

const logDir = mkdtempSync(join(tmpdir(), 'bench-engine-lookup-log-'));
if (opts['node-options']) process.env.LAYERFS_BENCH_NODE_ARGS = opts['node-options'];
const systems = selectSystems({ dist: opts.dist, logDir, names: opts.systems, beforeDist: opts['before-dist'] });

const WORKLOADS = [
  { name: 'stat-hit', drop: true, cmd: (m) => `cd ${m} && ${helper} stat ${lists.hit}`, expect: `found ${files} missing 0` },
  { name: 'stat-miss', drop: true, cmd: (m) => `cd ${m} && ${helper} stat ${lists.miss}`, expect: `found 0 missing ${files}` },
  { name: 'find', drop: false, cmd: (m) => `find ${m} | wc -l` },
];
const results = new Map(); // `${system}\t${metric}` → values[]
const add = (k, v) => results.set(k, [...(results.get(k) ?? []), v]);

console.error(`tree: ${files} files in ${dirs} dirs, ${rounds} rounds, load ${loadavg()[0].toFixed(2)}, logs ${logDir}`);
for (let r = 0; r < rounds; r++) {
  for (const sys of systems) {
    const base = mkdtempSync(join(tmpdir(), 'bench-engine-lookup-'));
    const m = { lowers, upper: join(base, 'upper'), work: join(base, 'work'), mnt: join(base, 'mnt') };
    for (const d of [m.upper, m.work, m.mnt]) mkdirSync(d);
    let handle;
    try {
      handle = await sys.mount(m);
      for (const w of WORKLOADS) {
        if (w.drop) dropCaches();
        const layerfs = sys.name.startsWith('layerfs');
        const c0 = layerfs ? await sys.requestCounts(handle) : undefined;
        const u0 = c0 ? await lastMicros(handle) : undefined;
        const t0 = handle.pid ? cpuTimes(handle.pid) : [NaN, NaN];
        const res = await sh(w.cmd(m.mnt), { timeoutMs: 600_000 });
        const t1 = handle.pid ? cpuTimes(handle.pid) : [NaN, NaN];
        const [usr, sys_] = [t1[0] - t0[0], t1[1] - t0[1]];
        const cpu = usr + sys_;
        if (w.expect && !res.stdout.includes(w.expect)) throw new Error(`${sys.name} ${w.name}: ${res.stdout.trim()} (expected ${w.expect})`);
        add(`${sys.name}\t${w.name} wall`, res.seconds);
        add(`${sys.name}\t${w.name} cpu`, cpu);
        add(`${sys.name}\t${w.name} cpu user`, usr);
        add(`${sys.name}\t${w.name} cpu sys`, sys_);
        let extra = '';
        if (c0) {
          const c1 = await sys.requestCounts(handle);
          await new Promise((res) => setTimeout(res, 50));
          const u1 = await lastMicros(handle);
          const n = (c1.lookup ?? 0) - (c0.lookup ?? 0);
          const us = (u1.lookup ?? 0) - (u0.lookup ?? 0);
          if (n > 0) {
            add(`${sys.name}\t${w.name} lookups`, n);
            add(`${sys.name}\t${w.name} µs/lookup (arrival→reply)`, us / n);
            add(`${sys.name}\t${w.name} cpu µs/lookup`, (cpu * 1e6) / n);
            extra = `, ${n} lookups, ${(us / n).toFixed(1)} µs each in JS, ${((cpu * 1e6) / n).toFixed(1)} µs CPU each`;
          }
        }
        console.error(`round ${r + 1} ${sys.name} ${w.name}: ${res.seconds.toFixed(3)} s, server CPU ${cpu.toFixed(2)} s (user ${usr.toFixed(2)}, sys ${sys_.toFixed(2)})${extra}, load ${loadavg()[0].toFixed(1)}`);
      }
      const rss = peakRssMiB(handle.pid);
      if (rss !== undefined) add(`${sys.name}\tpeak RSS MiB`, rss);
      console.error(`round ${r + 1} ${sys.name} peak RSS ${rss?.toFixed(1)} MiB`);
    } finally {
      if (handle) await sys.unmount(handle).catch(async () => forceUnmount(m.mnt, handle.pid));
      rmSync(base, { recursive: true, force: true });
    }
  }
}
const lines = ['| system | metric | median | rounds |', '|---|---|---|---|'];
for (const [k, v] of results) {
  const [s, metric] = k.split('\t');
  lines.push(`| ${s} | ${metric} | ${median(v).toFixed(metric.includes('µs') ? 1 : 3)} | ${v.map((x) => x.toFixed(2)).join(' / ')} |`);
}
console.log(lines.join('\n'));
