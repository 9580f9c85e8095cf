/**
 * What the engine benchmarks (scripts/bench-engine-meta.mjs, bench-engine-lookup.mjs)
 * share: the systems asked for (plus "layerfs-before", another build, interleaved), the
 * mount process's CPU time, and the per-request µs it logs on SIGUSR2.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { makeSystems } from './systems.mjs';

/** The systems named in `names` (comma-separated) on `dist`; with `beforeDist`, that build's layerfs engine first, as "layerfs-before". */
export function selectSystems({ dist, logDir, names, beforeDist }) {
  const wanted = names.split(',');
  const systems = makeSystems({ distDir: dist, logDir }).filter((s) => wanted.includes(s.name));
  if (beforeDist) systems.unshift(beforeSystem(beforeDist, logDir));
  return systems;
}

/** The layerfs engine as built in `beforeDist` (a dist/ below the repo, so its addons
 * resolve), named "layerfs-before", logging under `logDir`/before. */
export function beforeSystem(beforeDist, logDir) {
  const beforeLogs = join(logDir, 'before');
  mkdirSync(beforeLogs);
  const before = makeSystems({ distDir: resolve(beforeDist), logDir: beforeLogs }).find((s) => s.name === 'layerfs');
  return { ...before, name: 'layerfs-before' };
}

/** [user, system] CPU seconds a process used so far, all threads: on a shared machine less
 * noisy than wall time, which other people's work stretches. */
export function cpuTimes(pid) {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return [Number(f[11]) / 100, Number(f[12]) / 100];
}

/** The last "request micros {…}" line the mount process logged (after requestCounts). */
export async function lastMicros(handle) {
  for (let i = 0; i < 20; i++) {
    const all = [...readFileSync(handle.log, 'utf8').matchAll(/request micros (\{.*\})/g)];
    if (all.length) return JSON.parse(all.at(-1)[1]);
    await new Promise((r) => setTimeout(r, 20));
  }
  return {};
}
