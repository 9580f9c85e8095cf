/**
 * Paths of up to 4,095 bytes below the mount point (issue 12 point 9), against the
 * kernel's overlayfs. The writable layer's backing paths are the upper root plus that,
 * longer than PATH_MAX; the kernel's overlayfs has no such limit, and neither may
 * layerfs (src/union/backing-path.ts). The same script runs in bash with its working
 * directory in each mount (a vitest worker cannot chdir): it builds a chain of 200-byte
 * directory names under a lower directory, cd's into it component by component, and
 * does create, stat, write, read, rename, link, symlink, unlink and rmdir there and
 * through the whole 4,095-byte relative path; then reads, copies up and renames a
 * 4,095-byte path that a lower layer holds. Every answer (sizes, nlink, modes, errno
 * messages) is printed, and both transcripts must be identical, as must what a new mount
 * of the same layers shows afterwards, and the kernel's overlayfs over the writable layer
 * layerfs wrote.
 */
import { execFile } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, inject, it } from 'vitest';
import { applies, KNOWN_DIFFERENCES } from '../helpers/known-differences.js';
import { makeLayers, type LayerSpec } from '../helpers/layers.js';
import { mountKernelOverlay, unmountKernelOverlay } from '../helpers/oracle.js';
import { tempDir } from '../helpers/temp.js';
import { mountUnion } from '../helpers/union-mount.js';

const run = promisify(execFile);

const LOWER: LayerSpec[] = [{ 'low/file': 'lower data\n', 'low/sub/deep': 'deeper\n' }];

/**
 * The script. `P` is the relative path (from the mount root) of the deepest file:
 * exactly 4,095 bytes. Long names print as <name>, so the transcript stays readable.
 */
const SCRIPT = join(import.meta.dirname, '../helpers/long-paths.sh');

/** The output of SCRIPT `mode` with its working directory at `dir`. */
async function script(dir: string, mode: '' | 'make-lower' | 'check', env: NodeJS.ProcessEnv = {}): Promise<string> {
  const { stdout } = await run('bash', [SCRIPT, mode], { cwd: dir, env: { ...process.env, MNT: dir, LC_ALL: 'C', ...env }, maxBuffer: 1 << 24 });
  return stdout;
}

/** The test layers, the lower one with a 4,095-byte path (made by bash: Node cannot). */
async function layersWithDeepLower() {
  const layers = await makeLayers(LOWER);
  // Node's recursive rm gives up beyond PATH_MAX; coreutils' rm walks by descriptors.
  const cleanup = async (): Promise<void> => void (await run('rm', ['-rf', layers.root]));
  try {
    expect(await script(layers.lowers[0]!, 'make-lower')).toBe('');
  } catch (err) {
    await cleanup();
    throw err;
  }
  return { ...layers, cleanup };
}

/** The transcript, then what a remount shows, on the kernel's overlayfs. */
async function kernelTranscript(): Promise<[string, string]> {
  const layers = await layersWithDeepLower();
  const mnt = join(layers.root, 'kmnt');
  await mkdir(mnt);
  await mountKernelOverlay(layers.lowers, layers.upper, layers.work, mnt);
  try {
    return [await script(mnt, ''), await script(mnt, 'check')];
  } finally {
    await unmountKernelOverlay(mnt);
    await layers.cleanup();
  }
}

describe.skipIf(!inject('canMount'))('paths of up to 4,095 bytes below the mount point', () => {
  let kernel: Promise<[string, string]> | undefined;
  for (const engine of ['layerfs', 'fuse-native'] as const) {
    it(`are served as by the kernel's overlayfs (${engine} engine)`, async () => {
      kernel ??= kernelTranscript();
      const [want, wantAfter] = await kernel;
      // Not a comparison of two failures: the kernel does all of it.
      expect(want).toContain('path length 4095');
      expect(wantAfter).toMatch(/^cat rc=0 lower deep\nappended$/m);
      expect(want).toMatch(/^cat rc=0 hel$/m);
      expect(want.match(/^mkdir rc=0 $/gm)?.length).toBeGreaterThanOrEqual(21);
      const dir = await tempDir('layerfs-longpath-');
      const layers = await layersWithDeepLower();
      const config = { lowerDirs: layers.lowers, upperDir: layers.upper, workDir: layers.work };
      let m = await mountUnion(config, dir, { LAYERFS_ENGINE: engine });
      try {
        // Two stats of a hard link's other name (nlink) wait out the attribute cache where
        // that lag is a known difference of the engine, asserted by the oracle suite.
        const lag = applies(KNOWN_DIFFERENCES.hardLinkAttrLag, engine);
        expect(await script(m.mountpoint, '', lag ? { ATTR_SETTLE: '1.2' } : {})).toBe(want);
        // A new mount loads the deep writable layer and indexes the deep lower one again.
        await m.stop();
        m = await mountUnion(config, dir, { LAYERFS_ENGINE: engine });
        expect(await script(m.mountpoint, 'check')).toBe(wantAfter);
        // The kernel's overlayfs reads the deep writable layer layerfs wrote alike.
        await m.stop();
        const kmnt = join(layers.root, 'kmnt');
        await mkdir(kmnt);
        await mountKernelOverlay(layers.lowers, layers.upper, layers.work, kmnt);
        try {
          expect(await script(kmnt, 'check')).toBe(wantAfter);
        } finally {
          await unmountKernelOverlay(kmnt);
        }
      } finally {
        await m.stop();
        await layers.cleanup();
      }
    });
  }
});
