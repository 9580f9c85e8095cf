/**
 * layerfs-overlay's spare mount process (src/cli/overlay-spare.ts, opt-in by
 * LAYERFS_OVERLAY_SPARE=1): a mount leaves a spare, the next mount is served by it, and a
 * spare serves only a caller it can serve as a cold start would (same build, namespaces,
 * load-time environment), else the cold start does. Real mounts; the spares live under a
 * temporary XDG_RUNTIME_DIR, and every spare a test started is killed by pid after it.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, copyFile, mkdir, mkdtemp, readFile, readdir, readlink, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, inject, it } from 'vitest';
import { runtimeDir } from '../../src/core/user-dirs.js';
import { LAYERFS_OVERLAY, REPO, runOverlay } from '../helpers/cli.js';
import { forceUnmount, isMounted } from '../helpers/mounts.js';
import { tempDir } from '../helpers/temp.js';

const run = promisify(execFile);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe.skipIf(!inject('canMount'))('layerfs-overlay with a spare mount process', () => {
  let dir: string;
  let runtime: string;
  let spares: string;
  let env: NodeJS.ProcessEnv;
  const mounted: string[] = [];
  const extraDirs: string[] = [];

  beforeEach(async () => {
    dir = await tempDir();
    runtime = join(dir, 'run');
    await mkdir(runtime, { mode: 0o700 });
    spares = join(runtime, 'layerfs', 'spares');
    env = { ...process.env, XDG_RUNTIME_DIR: runtime, LAYERFS_OVERLAY_SPARE: '1', LAYERFS_OVERLAY_SPARE_DELAY_MS: '0' };
    await mkdir(join(dir, 'lower', 'd'), { recursive: true });
    await writeFile(join(dir, 'lower', 'd', 'f'), 'lower\n');
  });

  afterEach(async () => {
    for (const m of mounted.splice(0)) if (isMounted(m)) await run('umount', [m]).catch(() => forceUnmount(m));
    // Spares, and mount processes that became spares (or are on their way) as their mounts ended.
    for (const pid of await processesOf(runtime)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Gone already.
      }
    }
    for (const d of extraDirs.splice(0)) await rm(d, { recursive: true, force: true });
  });

  /** Mounts a fresh union of the lower as mount `name` with `program`; returns its mountpoint and the result. */
  async function mount(name: string, opts: { args?: string[]; env?: NodeJS.ProcessEnv; program?: string } = {}) {
    const m = join(dir, name);
    for (const d of ['upper', 'work', 'merged']) await mkdir(join(m, d), { recursive: true });
    const merged = join(m, 'merged');
    mounted.push(merged);
    const args = opts.args ?? ['-o', `lowerdir=${join(dir, 'lower')},upperdir=${join(m, 'upper')},workdir=${join(m, 'work')}`, merged];
    const r = await runOverlayAs(opts.program ?? LAYERFS_OVERLAY, args, opts.env ?? env);
    return { merged, upper: join(m, 'upper'), ...r };
  }

  it('off unless opted in: a mount leaves no spare', async () => {
    const r = await mount('a', { env: { ...env, LAYERFS_OVERLAY_SPARE: undefined } });
    expect(r.code, r.stderr).toBe(0);
    await sleep(500);
    expect(existsSync(spares)).toBe(false);
    expect(await processesOf(runtime)).toEqual([await servingPid(r.merged)]);
  });

  it('a first mount leaves a spare; the second is served by it, and leaves the next', async () => {
    const a = await mount('a');
    expect(a.code, a.stderr).toBe(0);
    const [spare] = await waitForSpares(spares, 1);
    const b = await mount('b');
    expect(b.code, b.stderr).toBe(0);
    expect(await servingPid(b.merged)).toBe(spare);
    expect(await servingPid(a.merged)).not.toBe(spare);
    // It serves the union: the lower's file, a write landing in its own upper.
    expect(await readFile(join(b.merged, 'd', 'f'), 'utf8')).toBe('lower\n');
    await writeFile(join(b.merged, 'd', 'g'), 'new\n');
    expect(await readFile(join(b.upper, 'd', 'g'), 'utf8')).toBe('new\n');
    // Its cwd was the caller's, not its directory (which is gone).
    expect(await readlink(`/proc/${spare}/cwd`)).toBe(process.cwd());
    expect(existsSync(join(spares, `s.${spare}`))).toBe(false);
    const [next] = await waitForSpares(spares, 1);
    expect(next).not.toBe(spare);
  });

  it('unless a spare is started after READY, a mount process waits as the spare once its mount ends, and serves the next', async () => {
    const recycling = { ...env, LAYERFS_OVERLAY_SPARE_DELAY_MS: undefined };
    const a = await mount('a', { env: recycling });
    expect(a.code, a.stderr).toBe(0);
    const server = await servingPid(a.merged);
    await sleep(300);
    expect(existsSync(spares) ? await readdir(spares) : []).toEqual([]); // none started while it serves
    await run('umount', [a.merged]);
    expect(await waitForSpares(spares, 1)).toEqual([server]);
    const fds = await openFiles(server);
    const b = await mount('b', { env: recycling });
    expect(b.code, b.stderr).toBe(0);
    expect(await servingPid(b.merged)).toBe(server);
    expect(await readFile(join(b.merged, 'd', 'f'), 'utf8')).toBe('lower\n');
    await writeFile(join(b.merged, 'd', 'g'), 'new\n');
    expect(await readFile(join(b.upper, 'd', 'g'), 'utf8')).toBe('new\n');
    expect(existsSync(join(a.upper, 'd', 'g'))).toBe(false);
    await run('umount', [b.merged]);
    expect(await waitForSpares(spares, 1)).toEqual([server]);
    // Nothing of either mount stays open in it (its /dev/fuse, the layers, the logs).
    expect(await openFiles(server)).toEqual(fds);
    // One waits: a second mount process whose mount ends leaves rather than waiting too.
    const [c, d] = [await mount('c', { env: recycling }), await mount('d', { env: recycling })];
    expect([c.code, d.code]).toEqual([0, 0]);
    const servers = [await servingPid(c.merged), await servingPid(d.merged)];
    expect(servers).toContain(server);
    await run('umount', [c.merged]);
    const [waiting] = await waitForSpares(spares, 1);
    await run('umount', [d.merged]);
    const other = servers.find((p) => p !== waiting)!;
    expect(await waitGone(other)).toBe(true);
    expect((await readdir(spares)).filter((n) => n.startsWith('s.'))).toEqual([`s.${waiting}`]);
  });

  it('a spare of another build, or one whose build changed, is not used', async () => {
    expect((await mount('a')).code).toBe(0);
    const [spare] = await waitForSpares(spares, 1);
    // Another build: the front end beside a copy of the bundle (dist/'s depth, so it finds dist/'s files).
    const other = await mkdtemp(join(REPO, 'dist', 'spare-test-'));
    extraDirs.push(other);
    await copyFile(join(REPO, 'dist', 'cli', 'overlay-main.bundle.cjs'), join(other, 'overlay-main.bundle.cjs'));
    await copyFile(LAYERFS_OVERLAY, join(other, 'layerfs-overlay'));
    await chmod(join(other, 'layerfs-overlay'), 0o755);
    const b = await mount('b', { program: join(other, 'layerfs-overlay'), env: { ...env, LAYERFS_OVERLAY_SPARE_DELAY_MS: '60000' } });
    expect(b.code, b.stderr).toBe(0);
    expect(await servingPid(b.merged)).not.toBe(spare);
    expect(existsSync(join(spares, `s.${spare}`))).toBe(true); // not claimed
    // The same file rebuilt in place (its mtime changed since the spare loaded it): claimed, refused, gone.
    const bundle = join(other, 'overlay-main.bundle.cjs');
    expect((await mount('c', { program: join(other, 'layerfs-overlay'), env: { ...env, LAYERFS_OVERLAY_SPARE_DELAY_MS: '0' } })).code).toBe(0);
    const mine = (await waitForSpares(spares, 2)).filter((p) => p !== spare);
    expect(mine).toHaveLength(1);
    await writeFile(bundle, await readFile(bundle));
    const d = await mount('d', { program: join(other, 'layerfs-overlay'), env: { ...env, LAYERFS_OVERLAY_SPARE_DELAY_MS: '60000' } });
    expect(d.code, d.stderr).toBe(0);
    expect(await servingPid(d.merged)).not.toBe(mine[0]);
    expect(await waitGone(mine[0]!)).toBe(true);
    expect(existsSync(join(spares, `s.${spare}`))).toBe(true);
  });

  it('a caller in another mount namespace, or with another load-time environment, is served cold', async () => {
    expect((await mount('a')).code).toBe(0);
    const [spare] = await waitForSpares(spares, 1);
    const m = join(dir, 'ns');
    for (const d of ['upper', 'work', 'merged']) await mkdir(join(m, d), { recursive: true });
    const script = `"$0" -o lowerdir=${join(dir, 'lower')},upperdir=${join(m, 'upper')},workdir=${join(m, 'work')} ${join(m, 'merged')} && cat ${join(m, 'merged', 'd', 'f')} && umount ${join(m, 'merged')}`;
    const r = await run('unshare', ['-m', '--propagation', 'private', 'sh', '-c', script, LAYERFS_OVERLAY], { env: { ...env, LAYERFS_NODE: process.execPath, LAYERFS_OVERLAY_SPARE_DELAY_MS: '60000' } });
    expect(r.stdout).toBe('lower\n');
    expect(existsSync(join(spares, `s.${spare}`))).toBe(true); // never claimed
    // LAYERFS_OVERLAY_XATTRS is read as the mount code loads: the spare refuses (and ends).
    const b = await mount('b', { env: { ...env, LAYERFS_OVERLAY_XATTRS: 'trusted', LAYERFS_OVERLAY_SPARE_DELAY_MS: '60000' } });
    expect(b.code, b.stderr).toBe(0);
    expect(await servingPid(b.merged)).not.toBe(spare);
    expect(await waitGone(spare!)).toBe(true);
    // Gone with its directory; what waits now is the spare the other namespace's mount left as it ended.
    expect((await readdir(spares)).filter((n) => n.endsWith(`.${spare}`))).toEqual([]);
    expect(await readFile(join(runtime, 'layerfs', 'spares.log'), 'utf8')).toContain(`spare ${spare} refused to mount for`);
  });

  it('two concurrent mounts both succeed, one of them served by the spare', async () => {
    expect((await mount('a')).code).toBe(0);
    const [spare] = await waitForSpares(spares, 1);
    const [b, c] = await Promise.all([mount('b'), mount('c')]);
    expect([b.code, c.code], b.stderr + c.stderr).toEqual([0, 0]);
    for (const x of [b, c]) expect(await readFile(join(x.merged, 'd', 'f'), 'utf8')).toBe('lower\n');
    expect([await servingPid(b.merged), await servingPid(c.merged)].filter((p) => p === spare)).toHaveLength(1);
  });

  it('a bad argument through a spare fails as the cold start does', async () => {
    const bad = ['-o', `lowerdir=${join(dir, 'nowhere')},upperdir=${join(dir, 'u')},workdir=${join(dir, 'w')}`, join(dir, 'merged-bad')];
    await mkdir(join(dir, 'merged-bad'));
    const cold = await runOverlayAs(LAYERFS_OVERLAY, bad, { ...env, LAYERFS_OVERLAY_SPARE: undefined });
    expect(cold.code).not.toBe(0);
    expect((await mount('a')).code).toBe(0);
    const [spare] = await waitForSpares(spares, 1);
    const warm = await runOverlayAs(LAYERFS_OVERLAY, bad, env);
    expect(await waitGone(spare!)).toBe(true); // it took the request: it was the one to fail
    expect({ code: warm.code, stderr: warm.stderr }).toEqual({ code: cold.code, stderr: cold.stderr });
    // An argument with a newline, from the caller's command line as it is.
    const nl = join(dir, 'new\nline');
    await mkdir(nl);
    expect((await mount('b')).code).toBe(0);
    const [next] = await waitForSpares(spares, 1);
    const odd = await runOverlayAs(LAYERFS_OVERLAY, ['-o', `lowerdir=${join(dir, 'lower')}`, nl], env);
    mounted.push(nl);
    expect(odd.code, odd.stderr).toBe(0);
    expect(await readFile(join(nl, 'd', 'f'), 'utf8')).toBe('lower\n');
    expect(await servingPid(nl)).toBe(next);
  });

  it('a killed spare leaves its directory, which the next mount passes over and removes', async () => {
    expect((await mount('a')).code).toBe(0);
    const [spare] = await waitForSpares(spares, 1);
    process.kill(spare!, 'SIGKILL');
    expect(await waitGone(spare!)).toBe(true);
    expect(existsSync(join(spares, `s.${spare}`))).toBe(true);
    const b = await mount('b');
    expect(b.code, b.stderr).toBe(0);
    expect(await servingPid(b.merged)).not.toBe(spare);
    // After its READY it removes the stale directory and leaves a spare of its own.
    for (let i = 0; i < 60 && existsSync(join(spares, `s.${spare}`)); i++) await sleep(50);
    expect(existsSync(join(spares, `s.${spare}`))).toBe(false);
    const [next] = await waitForSpares(spares, 1);
    expect(next).not.toBe(spare);
  });

  it('a spare ends after its idle timeout and removes its directory', async () => {
    expect((await mount('a', { env: { ...env, LAYERFS_OVERLAY_SPARE_IDLE: '1' } })).code).toBe(0);
    const [spare] = await waitForSpares(spares, 1);
    expect(await waitGone(spare!, 5000)).toBe(true);
    expect(await readdir(spares)).toEqual([]);
  });
});

function runOverlayAs(program: string, args: string[], env: NodeJS.ProcessEnv) {
  if (program === LAYERFS_OVERLAY) return runOverlay(args, { env });
  return new Promise<{ code: number; stderr: string }>((resolve) => {
    execFile(program, args, { env: { ...env, LAYERFS_NODE: process.execPath } }, (err, _stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stderr });
    });
  });
}

/** The pids of every mount process and spare whose XDG_RUNTIME_DIR is `runtime` (waiting or serving). */
async function processesOf(runtime: string): Promise<number[]> {
  const pids: number[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const cmd = await readFile(`/proc/${name}/cmdline`, 'utf8').catch(() => '');
    if (!cmd.includes('overlay-main.bundle.cjs\0')) continue;
    const environ = await readFile(`/proc/${name}/environ`, 'utf8').catch(() => '');
    if (environ.split('\0').includes(`XDG_RUNTIME_DIR=${runtime}`)) pids.push(Number(name));
  }
  return pids;
}

/** The pids of the spares waiting in `spares` (their `s.PID` directories), once there are `n`. */
async function waitForSpares(spares: string, n: number): Promise<number[]> {
  for (let i = 0; i < 100; i++) {
    const names = existsSync(spares) ? (await readdir(spares)).filter((s) => s.startsWith('s.')) : [];
    if (names.length >= n) return names.map((s) => Number(s.slice(2)));
    await sleep(100);
  }
  throw new Error(`no ${n} spare(s) in ${spares}`);
}

/** What `pid` has open, sorted (libuv may make an eventfd again under another number). */
async function openFiles(pid: number): Promise<string[]> {
  const fds = await readdir(`/proc/${pid}/fd`);
  return (await Promise.all(fds.map((fd) => readlink(`/proc/${pid}/fd/${fd}`).catch(() => '?')))).sort();
}

async function waitGone(pid: number, ms = 3000): Promise<boolean> {
  for (let t = 0; t < ms; t += 50) {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
    if (stat === undefined || stat.split(') ')[1]?.startsWith('Z')) return true; // gone, or a zombie not yet reaped
    await sleep(50);
  }
  return false;
}

/** The pid that says it serves `mountpoint`, from the mount's log (its last "serving" line). */
async function servingPid(mountpoint: string): Promise<number> {
  const log = join(runtimeDir(), `overlay-${Buffer.from(mountpoint).toString('base64url').slice(-40)}.log`);
  const text = await readFile(log, 'utf8');
  const at = text.lastIndexOf(`]: serving ${mountpoint} `);
  const m = /\[(\d+)$/.exec(text.slice(0, at));
  if (at < 0 || !m) throw new Error(`no serving line in ${log}`);
  return Number(m[1]);
}
