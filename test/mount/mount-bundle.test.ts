/**
 * The mount process runs as a one-file CommonJS bundle (scripts/bundle-mount.mjs): what it
 * must keep of the unbundled build — no npm package or lazily loaded module on the start-up
 * path, the lazy imports still pointing at dist/ files and loading, `import.meta` meaning the
 * bundle's file — and the fallback to the unbundled entry.
 * Its launchers start it without NODE_EXTRA_CA_CERTS (node parses that file at every start).
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, inject, it } from 'vitest';
import { mountProcessEntry } from '../../src/fuse/mount-process.js';
import { launchUnionMount } from '../../src/supervisor/mount-launcher.js';
import { REPO, runOverlay } from '../helpers/cli.js';
import { forceUnmount, isMounted } from '../helpers/mounts.js';
import { processesMentioning } from '../helpers/processes.js';
import { tempDir } from '../helpers/temp.js';

const run = promisify(execFile);
const BUNDLES = [join(REPO, 'dist', 'fuse', 'union-mount-main.bundle.cjs'), join(REPO, 'dist', 'cli', 'overlay-main.bundle.cjs')];

describe('the mount-process bundle', () => {
  it('is what the supervisor starts', () => {
    expect(mountProcessEntry()).toBe(BUNDLES[0]);
  });

  it.each(BUNDLES)('%s loads only node built-ins before it runs; its lazy imports name dist/ modules', async (bundle) => {
    const text = await readFile(bundle, 'utf8');
    const required = [...text.matchAll(/\brequire\("([^"]+)"\)/g)].map((m) => m[1]!);
    expect(required.length).toBeGreaterThan(0);
    expect(required.filter((s) => !s.startsWith('node:'))).toEqual([]);
    expect(text).not.toMatch(/\bimport\.meta\b/);
    const lazy = [...text.matchAll(/\bimport\("([^"]+)"\)/g)].map((m) => m[1]!);
    expect(lazy).toContain('../store/index.js'); // the damage record's writer: ~60 ms of store/ kept off start-up
    for (const spec of lazy) expect(existsSync(resolve(dirname(bundle), spec)), spec).toBe(true);
  });

  it('a CommonJS bundle keeps its modules\' ES semantics: strict, import.meta its own file', async () => {
    // The directive must come first (after a shebang): esbuild's own comes after the banner.
    for (const bundle of BUNDLES) expect((await readFile(bundle, 'utf8')).replace(/^#!.*\n/, '').startsWith('"use strict";\n'), bundle).toBe(true);
    // overlay-main's --version finds package.json by `import.meta.dirname`.
    const { stdout } = await run(process.execPath, [BUNDLES[1]!, '--version']);
    expect(stdout).toBe(`layerfs-overlay: version ${JSON.parse(await readFile(join(REPO, 'package.json'), 'utf8')).version}\n`);
  });

  it('layerfs-overlay runs the unbundled entry where the build made no bundle', async () => {
    const dir = await tempDir();
    await copyFile(join(REPO, 'dist', 'cli', 'layerfs-overlay'), join(dir, 'layerfs-overlay'));
    await symlink(join(REPO, 'dist', 'cli', 'overlay-main.js'), join(dir, 'overlay-main.js'));
    const { stdout } = await run(join(dir, 'layerfs-overlay'), ['--version'], { env: { ...process.env, LAYERFS_NODE: process.execPath } });
    expect(stdout).toMatch(/^layerfs-overlay: version \d+\.\d+\.\d+/);
  });
});

/** The environment variables of process `pid`, by name. */
async function environOf(pid: number): Promise<Map<string, string>> {
  const text = await readFile(`/proc/${pid}/environ`, 'utf8');
  return new Map(text.split('\0').filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
}

/** The pid of the process whose command line mentions `text` (a test's own temp dir). */
async function processMentioning(text: string): Promise<number> {
  const [pid] = await processesMentioning(text);
  if (pid === undefined) throw new Error(`no process mentions ${text}`);
  return pid;
}

describe.skipIf(!inject('canMount'))("the mount process's environment", () => {
  const CA = '/etc/ssl/certs/ca-certificates.crt';
  let saved: string | undefined;
  let dir: string;
  beforeEach(async () => {
    saved = process.env.NODE_EXTRA_CA_CERTS;
    process.env.NODE_EXTRA_CA_CERTS = CA;
    process.env.LAYERFS_TEST_MARK = 'kept';
    dir = await tempDir();
    for (const d of ['lower', 'upper', 'work', 'merged']) await mkdir(join(dir, d));
    await writeFile(join(dir, 'lower', 'f'), 'f\n');
  });
  afterEach(async () => {
    if (saved === undefined) delete process.env.NODE_EXTRA_CA_CERTS;
    else process.env.NODE_EXTRA_CA_CERTS = saved;
    delete process.env.LAYERFS_TEST_MARK;
    const mnt = join(dir, 'merged');
    if (isMounted(mnt)) await run('umount', [mnt]).catch(() => forceUnmount(mnt));
  });

  it("the supervisor's launcher passes the caller's environment but NODE_EXTRA_CA_CERTS", async () => {
    const mnt = join(dir, 'merged');
    const { pid } = await launchUnionMount({ mountpoint: mnt, lowerDirs: [join(dir, 'lower')], upperDir: join(dir, 'upper'), workDir: join(dir, 'work') }, join(dir, 'mount.log'));
    expect(await readFile(join(mnt, 'f'), 'utf8')).toBe('f\n');
    const env = await environOf(pid);
    expect(env.get('LAYERFS_TEST_MARK')).toBe('kept');
    expect(env.has('NODE_EXTRA_CA_CERTS')).toBe(false);
  });

  it('layerfs-overlay starts its mount process without NODE_EXTRA_CA_CERTS', async () => {
    const r = await runOverlay(['-o', `lowerdir=${join(dir, 'lower')},upperdir=${join(dir, 'upper')},workdir=${join(dir, 'work')}`, join(dir, 'merged')]);
    expect(r.code, r.stderr).toBe(0);
    expect(await readFile(join(dir, 'merged', 'f'), 'utf8')).toBe('f\n');
    const env = await environOf(await processMentioning(join(dir, 'merged')));
    expect(env.get('LAYERFS_TEST_MARK')).toBe('kept');
    expect(env.has('NODE_EXTRA_CA_CERTS')).toBe(false);
  });
});
