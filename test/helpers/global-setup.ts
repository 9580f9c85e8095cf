/**
 * Global setup of the `mount` project: checks that real mounts are possible here, builds
 * the small C probe used by binding tests, and at the very end fails the run if any
 * FUSE or overlay mount created during it is still in the mount table.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { forceUnmount, unionMounts } from './mounts.js';

const root = join(import.meta.dirname, '..', '..');
export const CACHE_DIR = join(root, 'node_modules', '.cache', 'layerfs-test');

declare module 'vitest' {
  export interface ProvidedContext {
    nativeProbes: string;
    canMount: boolean;
  }
}

export default function setup(project: TestProject) {
  const canMount = process.getuid?.() === 0 && existsSync('/dev/fuse');
  if (!canMount) {
    console.warn('\n*** layerfs: not root or no /dev/fuse: EVERY mount test is SKIPPED on this machine ***\n');
  }
  mkdirSync(CACHE_DIR, { recursive: true });
  const probes = join(CACHE_DIR, 'native-probes');
  const source = join(root, 'test', 'helpers', 'native-probes.c');
  if (!existsSync(probes) || statSync(probes).mtimeMs < statSync(source).mtimeMs) {
    execFileSync('gcc', ['-O2', '-pthread', '-o', probes, source]);
  }
  project.provide('nativeProbes', probes);
  project.provide('canMount', canMount);

  const before = new Set(unionMounts().map((m) => m.mountpoint));
  return async () => {
    const left = unionMounts().filter((m) => !before.has(m.mountpoint));
    for (const m of left) await forceUnmount(m.mountpoint);
    if (left.length > 0) throw new Error(`the test run left mounts behind: ${left.map((m) => m.mountpoint).join(', ')}`);
  };
}
