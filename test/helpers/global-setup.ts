/**
 * Global setup of the `mount` project: checks that real mounts are possible here, builds
 * the small C probe used by binding tests, and at the very end fails the run if any
 * FUSE or overlay mount created during it is still in the mount table.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { forceUnmount, unionMounts } from './mounts.js';

const root = join(import.meta.dirname, '..', '..');
export const CACHE_DIR = join(root, 'node_modules', '.cache', 'layerfs-test');

declare module 'vitest' {
  export interface ProvidedContext {
    nativeProbes: string;
    canMount: boolean;
    /** The folder holding every temporary directory of this run (TMPDIR of the workers). */
    runRoot: string;
  }
}

/** CI=true (or 1), as GitHub Actions, GitLab and .ci/run set it. */
export function isCi(): boolean {
  const v = (process.env.CI ?? '').toLowerCase();
  return v !== '' && v !== 'false' && v !== '0';
}

function mtimeOr0(file: string): number {
  return existsSync(file) ? statSync(file).mtimeMs : 0;
}

function newestSource(dir: string): number {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) newest = Math.max(newest, newestSource(p));
    else if (e.name.endsWith('.ts') || e.name.endsWith('.sh')) newest = Math.max(newest, statSync(p).mtimeMs);
  }
  return newest;
}

export default function setup(project: TestProject) {
  const canMount = process.getuid?.() === 0 && existsSync('/dev/fuse');
  if (!canMount) {
    // In CI a skipped mount test is a hollow pass (every describe.skipIf(!canMount) block
    // would report green without running): refuse the whole run instead.
    if (isCi()) throw new Error('CI=true but this machine cannot mount (needs root and /dev/fuse): the mount tests would be skipped');
    console.warn('\n*** layerfs: not root or no /dev/fuse: EVERY mount test is SKIPPED on this machine ***\n');
  }
  mkdirSync(CACHE_DIR, { recursive: true });
  // The ordinary users the rootless tests run layerfs as (idempotent).
  if (canMount) execFileSync(join(root, 'scripts', 'rootless-users'), { stdio: 'inherit' });
  // Mount processes and CLI tests run the compiled build (and layerfs-overlay.sh, copied by
  // mark-bins.mjs); make sure it is current.
  if (newestSource(join(root, 'src')) > mtimeOr0(join(root, 'dist', 'cli', 'main.js'))) {
    execFileSync(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(root, 'tsconfig.json')], { stdio: 'inherit' });
    execFileSync(process.execPath, [join(root, 'scripts', 'mark-bins.mjs')], { stdio: 'inherit' });
  }
  // The mount processes run the bundle of the build (scripts/bundle-mount.mjs): older than
  // tsc's last output (a `tsc` run by hand), it would serve yesterday's code.
  if (mtimeOr0(join(root, 'dist', 'fuse', 'union-mount-main.bundle.cjs')) < mtimeOr0(join(root, 'dist', 'cli', 'main.js'))) {
    execFileSync(process.execPath, [join(root, 'scripts', 'bundle-mount.mjs')], { stdio: 'inherit' });
  }
  const probes = join(CACHE_DIR, 'native-probes');
  const source = join(root, 'test', 'helpers', 'native-probes.c');
  if (!existsSync(probes) || statSync(probes).mtimeMs < statSync(source).mtimeMs) {
    execFileSync('gcc', ['-O2', '-pthread', '-o', probes, source]);
  }
  project.provide('nativeProbes', probes);
  project.provide('canMount', canMount);

  // Every temporary directory of this run (os.tmpdir() in the workers) lives under one
  // root, so the leftover-mount check sees this run's mounts only, never those of another
  // run on the same machine.
  const runRoot = mkdtempSync(join(tmpdir(), 'layerfs-run-'));
  chmodSync(runRoot, 0o755);
  process.env.TMPDIR = runRoot;
  project.provide('runRoot', runRoot);
  return async () => {
    const left = unionMounts().filter((m) => m.mountpoint.startsWith(runRoot + '/'));
    for (const m of left.reverse()) await forceUnmount(m.mountpoint);
    if (left.length > 0) throw new Error(`the test run left mounts behind: ${left.map((m) => m.mountpoint).join(', ')}`);
    rmSync(runRoot, { recursive: true, force: true });
  };
}
