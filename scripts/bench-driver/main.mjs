/**
 * scripts/bench's driver (scripts/bench builds the helper and picks the layerfs build): builds the cached fixture, then for each round, each workload
 * group and each system in turn (A B C A B C …) mounts the same layers with a fresh
 * upper and work dir, runs the group's steps, records times, the mount-to-ready time and
 * the FUSE process's peak RSS, and always unmounts. Prints a Markdown table of medians and
 * ratios and writes the whole record as JSON under bench-results/.
 *
 *   node scripts/bench-driver/main.mjs --helper BIN --dist DIR [--quick] [--only a,b] [--rounds N]
 *                               [--systems a,b] [--label TEXT]
 */
import { execFileSync } from 'node:child_process';
import { cpus, loadavg, release, tmpdir, totalmem } from 'node:os';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync, renameSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ensureFixture } from './fixture.mjs';
import { makeSystems, peakRssMiB, forceUnmount, layerfsIndexCache } from './systems.mjs';
import { beforeSystem, cpuTimes } from './engine-bench.mjs';
import { workloadGroups } from './workloads.mjs';
import { markdownTable, summarise } from './report.mjs';
import { dropCaches, median, run, sh } from './run.mjs';

const repo = resolve(import.meta.dirname, '..', '..');
const log = (line) => process.stderr.write(`bench: ${line}\n`);

function parseArgs(argv) {
  const o = { quick: false, only: undefined, rounds: undefined, systems: undefined, helper: undefined, dist: join(repo, 'dist'), label: '' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--quick') o.quick = true;
    else if (a === '--only') o.only = value().split(',').filter(Boolean);
    else if (a === '--rounds') o.rounds = Number(value());
    else if (a === '--systems') o.systems = value().split(',').filter(Boolean);
    else if (a === '--helper') o.helper = value();
    else if (a === '--dist') o.dist = resolve(value());
    else if (a === '--before-dist') o.beforeDist = resolve(value());
    else if (a === '--cpu') o.cpu = true;
    else if (a === '--label') o.label = value();
    else throw new Error(`unknown argument ${a} (try --quick, --only WORKLOAD,…, --rounds N, --systems NAME,…)`);
  }
  o.rounds ??= o.quick ? 1 : 3;
  if (!o.helper) throw new Error('--helper is required (scripts/bench builds it)');
  return o;
}

/** user + system CPU seconds of server `pid` so far; undefined without one (the kernel's
 * overlayfs has no server) or once it is gone. */
function serverCpuSeconds(pid) {
  if (!pid) return undefined;
  try {
    const [user, system] = cpuTimes(pid);
    return user + system;
  } catch {
    return undefined;
  }
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (process.getuid?.() !== 0) throw new Error('the bench mounts overlayfs and drops caches: run it as root');
  const fixture = await ensureFixture(join(repo, '.cache', 'bench'), log);
  log(`fixture: ${fixture.meta.mergedEntries} entries in the merged view, ${fixture.meta.whiteouts} whiteouts`);
  const tmp = mkdtempSync(join(tmpdir(), 'layerfs-bench-'));
  const systems = makeSystems({ distDir: opts.dist, logDir: tmp }).filter((s) => s.available() && (opts.systems ? opts.systems.includes(s.name) : !s.optIn));
  if (opts.beforeDist) systems.unshift(beforeSystem(opts.beforeDist, tmp));
  const names = systems.map((s) => s.name);
  if (names.some((n) => n.startsWith('layerfs'))) {
    // As the supervisor does before an image's first mount: every timed mount loads it.
    const lowers = [...fixture.layers].reverse();
    const { LowerIndex } = await import(pathToFileURL(join(opts.dist, 'union', 'lower-index.js')).href);
    const r = await LowerIndex.ensureCache(lowers, layerfsIndexCache(lowers));
    log(`layerfs lower index: ${r.built ? `built (${r.reason})` : 'cached'}`);
  }
  // A name selects a group, a step, or the steps it prefixes (`find` → find-cold, find-warm).
  const wanted = (...ns) => !opts.only || ns.some((x) => opts.only.some((o) => x === o || x.startsWith(`${o}-`)));
  const groups = workloadGroups({ helper: opts.helper, lists: fixture.lists, quick: opts.quick, meta: fixture.meta })
    .filter((g) => !(opts.quick && g.big))
    .map((g) => ({ ...g, steps: g.steps.filter((s) => !(opts.quick && s.big) && wanted(g.name, s.name)) }))
    .filter((g) => g.steps.length > 0);
  const cpRef = !opts.quick && wanted('copy-up', 'copy-up-1g', 'cp-reflink-1g');

  const samples = {};
  const add = (row, system, v) => ((samples[row] ??= {})[system] ??= []).push(v);
  const failures = [];
  const complaints = [];
  const active = new Map();
  let interrupted = false;
  const cleanup = async () => {
    for (const [mnt, h] of active) await forceUnmount(mnt, h.pid);
    rmSync(tmp, { recursive: true, force: true });
  };
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(sig, () => {
      if (interrupted) return;
      interrupted = true;
      log(`${sig}: unmounting and cleaning up`);
      void cleanup().finally(() => process.exit(130));
    });
  }

  const started = Date.now();
  const loadBefore = loadavg();
  try {
    for (let round = 1; round <= opts.rounds && !interrupted; round++) {
      const rss = {};
      // Each round starts with the next system: the first to read the fixture after the
      // write group has evicted it from the host's page cache (this is a VM) pays for the
      // host's disk, which a fixed order charged to layerfs in every round (seq-read-1g-cold
      // 1.4 s in the full run, 0.22 s in the rounds where another system read first).
      const order = systems.map((_, i) => systems[(i + round - 1) % systems.length]);
      for (const g of groups) {
        for (const system of order) {
          if (interrupted) break;
          const dir = join(tmp, `r${round}-${g.name}-${system.name}`);
          const m = { lowers: [...fixture.layers].reverse(), upper: join(dir, 'upper'), work: join(dir, 'work'), mnt: join(dir, 'mnt') };
          for (const d of [m.upper, m.work, m.mnt]) mkdirSync(d, { recursive: true });
          let handle;
          try {
            handle = await system.mount(m);
          } catch (err) {
            failures.push({ round, system: system.name, step: 'mount', error: err.message });
            log(`round ${round} ${system.name}: mount failed: ${err.message}`);
            continue;
          }
          active.set(m.mnt, handle);
          add('mount-to-ready', system.name, handle.readySeconds);
          try {
            if (g.before) await sh(g.before, { cwd: m.mnt });
            for (const step of g.steps) {
              if (step.drop) dropCaches();
              // Passthrough shows as READ/WRITE requests that never reach the engine.
              const countsBefore = step.countRequests && system.requestCounts ? await system.requestCounts(handle) : undefined;
              const cpuBefore = opts.cpu ? serverCpuSeconds(handle.pid) : undefined;
              let r;
              try {
                r = await sh(step.cmd, { cwd: m.mnt, timeoutMs: step.timeoutMs ?? 300_000 });
              } catch (err) {
                failures.push({ round, system: system.name, step: step.name, command: `cd ${m.mnt} && ${step.cmd}`, error: err.message });
                log(`round ${round} ${step.name} ${system.name}: FAILED: ${err.message.split('\n')[0]}`);
                throw err;
              }
              add(step.name, system.name, r.seconds);
              // The server's CPU (all its threads) is steadier than the wall on a busy VM.
              const cpuAfter = cpuBefore !== undefined ? serverCpuSeconds(handle.pid) : undefined;
              if (cpuAfter !== undefined) add(`${step.name} server CPU`, system.name, cpuAfter - cpuBefore);
              if (countsBefore) {
                const after = await system.requestCounts(handle);
                const io = (c) => (c?.read ?? 0) + (c?.write ?? 0);
                if (after) add(`${step.name} READ+WRITE requests`, system.name, io(after) - io(countsBefore));
              }
              const complaint = step.check?.(r.stdout);
              if (step.after) await sh(step.after, { cwd: m.mnt });
              if (complaint) complaints.push({ round, system: system.name, step: step.name, complaint });
              log(`round ${round} ${step.name.padEnd(22)} ${system.name.padEnd(15)} ${r.seconds.toFixed(3)} s${complaint ? `  WRONG: ${complaint}` : ''}`);
            }
            if (g.after) await sh(g.after, { cwd: m.mnt });
          } catch {
            // recorded above; the mount may be broken, so go on with the next system
          } finally {
            const peak = peakRssMiB(handle.pid);
            if (peak !== undefined) rss[system.name] = Math.max(rss[system.name] ?? 0, peak);
            try {
              await system.unmount(handle);
            } catch (err) {
              failures.push({ round, system: system.name, step: `unmount after ${g.name}`, error: err.message });
              log(`round ${round} ${system.name}: unmount failed: ${err.message}`);
            }
            active.delete(m.mnt);
            rmSync(dir, { recursive: true, force: true });
          }
        }
      }
      for (const [s, v] of Object.entries(rss)) add('peak-rss-MiB', s, v);
      if (cpRef && !interrupted) {
        const copy = join(tmp, 'cp-reflink.bin');
        dropCaches();
        const r = await run(['cp', '--reflink=auto', join(fixture.layers[0], 'bench', 'big.bin'), copy]);
        rmSync(copy);
        add('cp-reflink-1g', 'reference', r.seconds);
        log(`round ${round} cp --reflink=auto 1 GiB (same fs)   ${r.seconds.toFixed(3)} s`);
      }
    }
  } finally {
    await cleanup();
  }

  const rows = summarise(Object.fromEntries(Object.entries(samples).filter(([k]) => k !== 'cp-reflink-1g')), names);
  const table = markdownTable(rows, names);
  const cp = samples['cp-reflink-1g']?.reference;
  const cpRow = rows.find((r) => r.row === 'copy-up-1g');
  const cpMedian = cp ? median(cp) : undefined;
  const lines = [table];
  if (cpMedian !== undefined) {
    const vs = names.map((s) => (cpRow?.medians[s] !== undefined ? `${s} ${(cpRow.medians[s] / cpMedian).toFixed(2)}×` : undefined)).filter(Boolean);
    lines.push('', `copy-up reference: \`cp --reflink=auto\` of the 1 GiB file on the same filesystem: ${cpMedian.toFixed(3)} s median; copy-up-1g / cp: ${vs.join(', ')}`);
  }
  const load = (l) => l.map((x) => x.toFixed(1)).join(' ');
  lines.push('', `Seconds (peak-rss in MiB, max VmHWM of the FUSE process per round), medians of n rounds; ratios < 1 mean faster than the reference. ${cpus().length} CPUs, kernel ${release()}, load average ${load(loadBefore)} before, ${load(loadavg())} after.`);
  if (complaints.length) lines.push('', `WRONG RESULTS (${complaints.length}):`, ...complaints.map((c) => `- round ${c.round} ${c.system} ${c.step}: ${c.complaint}`));
  if (failures.length) lines.push('', `FAILURES (${failures.length}):`, ...failures.map((f) => `- round ${f.round} ${f.system} ${f.step}: ${f.error.split('\n')[0]}${f.command ? `\n  command: ${f.command}` : ''}`));
  const text = lines.join('\n');
  process.stdout.write(`${text}\n`);

  const git = (...a) => { try { return execFileSync('git', a, { cwd: repo, encoding: 'utf8' }).trim(); } catch { return undefined; } };
  const record = {
    date: new Date().toISOString(),
    label: opts.label,
    seconds: (Date.now() - started) / 1000,
    machine: { nproc: cpus().length, cpu: cpus()[0]?.model, kernel: release(), memGiB: +(totalmem() / 2 ** 30).toFixed(1), loadavgBefore: loadBefore, loadavgAfter: loadavg() },
    git: { rev: git('rev-parse', 'HEAD'), dirtySrc: Boolean(git('status', '--porcelain', 'src')) },
    options: { ...opts, helper: undefined },
    fixture: fixture.meta,
    systems: names,
    samples,
    summary: rows,
    cpReflinkMedian: cpMedian,
    complaints,
    failures,
    table: text,
  };
  const outDir = join(repo, 'bench-results');
  mkdirSync(outDir, { recursive: true });
  const file = join(outDir, `bench-${record.date.replace(/[:.]/g, '-')}${opts.quick ? '-quick' : ''}.json`);
  writeFileSync(`${file}.tmp`, JSON.stringify(record, null, 2));
  renameSync(`${file}.tmp`, file);
  log(`done in ${record.seconds.toFixed(0)} s; JSON: ${file}`);
  if (failures.length || complaints.length) process.exitCode = 1;
}

main().catch((err) => {
  log(err.stack ?? String(err));
  process.exit(2);
});
