/**
 * The mount process runs as a one-file bundle (scripts/bundle-mount.mjs): what it must keep
 * of the unbundled build — no npm package or lazily loaded module on the start-up path, the
 * lazy imports still pointing at dist/ files — and the fallback to the unbundled entry.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, readFile, symlink } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { mountProcessEntry } from '../../src/fuse/mount-process.js';
import { REPO } from '../helpers/cli.js';
import { tempDir } from '../helpers/temp.js';

const run = promisify(execFile);
const BUNDLES = [join(REPO, 'dist', 'fuse', 'union-mount-main.bundle.js'), join(REPO, 'dist', 'cli', 'overlay-main.bundle.js')];

describe('the mount-process bundle', () => {
  it('is what the supervisor starts', () => {
    expect(mountProcessEntry()).toBe(BUNDLES[0]);
  });

  it.each(BUNDLES)('%s loads only node built-ins before it runs; its lazy imports name dist/ modules', async (bundle) => {
    const text = await readFile(bundle, 'utf8');
    const staticImports = [...text.matchAll(/^import\s[^;]*?\sfrom\s+"([^"]+)"/gm)].map((m) => m[1]!);
    expect(staticImports.length).toBeGreaterThan(0);
    expect(staticImports.filter((s) => !s.startsWith('node:'))).toEqual([]);
    const lazy = [...text.matchAll(/\bimport\("([^"]+)"\)/g)].map((m) => m[1]!);
    expect(lazy).toContain('../store/index.js'); // the damage record's writer: ~60 ms of store/ kept off start-up
    for (const spec of lazy) expect(existsSync(resolve(dirname(bundle), spec)), spec).toBe(true);
  });

  it('layerfs-overlay runs the unbundled entry where the build made no bundle', async () => {
    const dir = await tempDir();
    await copyFile(join(REPO, 'dist', 'cli', 'layerfs-overlay'), join(dir, 'layerfs-overlay'));
    await symlink(join(REPO, 'dist', 'cli', 'overlay-main.js'), join(dir, 'overlay-main.js'));
    const { stdout } = await run(join(dir, 'layerfs-overlay'), ['--version'], { env: { ...process.env, LAYERFS_NODE: process.execPath } });
    expect(stdout).toMatch(/^layerfs-overlay: version \d+\.\d+\.\d+/);
  });
});
