/**
 * The same layers under the layerfs engine and under the kernel's overlayfs, and the
 * requests that reached the engine's handlers (LAYERFS_TRACE_OPS: one line per request),
 * for the engine's own mount tests.
 */
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeLayers, type LayerSpec } from './layers.js';
import { mountKernelOverlay, unmountKernelOverlay } from './oracle.js';
import { tempDir } from './temp.js';
import { mountUnion } from './union-mount.js';

/** A union of `specs` served by the layerfs engine; `env` adds to the mount process's. */
export async function engineMount(specs: LayerSpec[], env: NodeJS.ProcessEnv = {}) {
  const dir = await tempDir('layerfs-engine-');
  const layers = await makeLayers(specs);
  const m = await mountUnion({ lowerDirs: layers.lowers, upperDir: layers.upper, workDir: layers.work }, dir, { LAYERFS_ENGINE: 'layerfs', ...env });
  return {
    layers,
    mnt: m.mountpoint,
    pid: m.pid,
    stderr: () => m.stderr(),
    async close() {
      await m.stop();
      await layers.cleanup();
    },
  };
}

/** The kernel's overlayfs over a copy of the same layers, for comparison. */
export async function kernelMount(specs: LayerSpec[]) {
  const layers = await makeLayers(specs);
  const mnt = join(layers.root, 'kmnt');
  await mkdir(mnt);
  await mountKernelOverlay(layers.lowers, layers.upper, layers.work, mnt);
  return {
    mnt,
    async close() {
      await unmountKernelOverlay(mnt);
      await layers.cleanup();
    },
  };
}

/** Requests of each kind in a LAYERFS_TRACE_OPS file. */
export async function traced(file: string): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  for (const line of (await readFile(file, 'latin1').catch(() => '')).split('\n')) {
    if (line === '') continue;
    const op = line.split(' ')[0]!;
    counts.set(op, (counts.get(op) ?? 0) + 1);
  }
  return counts;
}

/**
 * `probe` on the kernel's overlayfs of `specs`, then on the layerfs engine over a copy of
 * the same layers with LAYERFS_TRACE_OPS set (`trace` given only there, for counting the
 * requests that reach JS between its steps). Both mounts go, even when a probe fails.
 */
export async function againstKernel<T>(specs: LayerSpec[], probe: (mnt: string, trace?: string) => Promise<T>): Promise<{ want: T; got: T; trace: string }> {
  const trace = join(await tempDir('layerfs-engine-trace-'), 'ops');
  const k = await kernelMount(specs);
  try {
    const want = await probe(k.mnt);
    const m = await engineMount(specs, { LAYERFS_TRACE_OPS: trace });
    try {
      return { want, got: await probe(m.mnt, trace), trace };
    } finally {
      await m.close();
    }
  } finally {
    await k.close();
  }
}
