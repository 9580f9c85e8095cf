/**
 * `layerfs snapshotter` under a real containerd (Debian's 1.6, its own root, state,
 * sockets and config in a temp dir; see helpers/containerd.ts): an image imported with
 * `ctr images import --snapshotter layerfs`, containers run with `ctr run --snapshotter
 * layerfs`, snapshots committed, viewed and removed with `ctr snapshots` — each step also
 * on containerd's own overlayfs snapshotter, the oracle (same exit codes, same output,
 * same trees). Restarts of the snapshotter and of containerd, a killed snapshotter, and
 * 20 containers started at once.
 */
import { execFileSync, execFile } from 'node:child_process';
import { readFile, readdir, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { REPO } from '../helpers/cli.js';
import { mountSpecs, startContainerdEnv, type ContainerdEnv } from '../helpers/containerd.js';
import { canonical, snapshot, tarDir } from '../helpers/images.js';
import { forceUnmount, listMounts } from '../helpers/mounts.js';
import { tempDir } from '../helpers/temp.js';

const exec = promisify(execFile);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function hasContainerd(): boolean {
  try {
    execFileSync('containerd', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const IMAGE = 'docker.io/library/sample:latest';
const SNAPSHOTTERS = ['layerfs', 'overlayfs'] as const;

interface BackendMeta {
  snapshots: Record<string, { id: string; kind: string; parent: string }>;
}

describe.skipIf(!inject('canMount') || !hasContainerd())('layerfs snapshotter under containerd', () => {
  let work: string;
  let env: ContainerdEnv;

  /** The snapshotter's own records (not containerd's view of them). */
  const backend = async (): Promise<BackendMeta> => JSON.parse(await readFile(join(env.storeRoot, 'snapshotter', 'metadata.json'), 'utf8')) as BackendMeta;
  const mountsUnder = (dir: string): string[] => listMounts().filter((m) => m.mountpoint.startsWith(dir + '/')).map((m) => m.mountpoint);
  const waitFor = async (what: string, cond: () => Promise<boolean>): Promise<void> => {
    for (let i = 0; i < 600; i++) {
      if (await cond()) return;
      await sleep(100);
    }
    throw new Error(`timed out waiting for ${what}`);
  };
  /** containerd's log lines and the mount-process log lines (/run/layerfs) about container `id`. */
  const whatWasLogged = async (id: string): Promise<string> => {
    const about = (text: string, re: RegExp) => text.split('\n').filter((l) => re.test(l));
    const lines = about(await readFile(join(env.work, 'containerd.log'), 'utf8').catch(() => ''), new RegExp(`(=|/)${id}(\\s|/|$)`)).slice(-30);
    for (const f of await readdir('/run/layerfs').catch(() => [])) {
      if (f.endsWith('.log')) lines.push(...about(await readFile(join('/run/layerfs', f), 'utf8').catch(() => ''), new RegExp(`${work}/.*/${id}/rootfs`)).map((l) => `${f}: ${l}`));
    }
    return lines.join('\n');
  };
  /** containerd removes a deleted snapshot from the backend in its garbage collection, shortly after. */
  const backendHasNoActive = async (): Promise<boolean> => Object.values((await backend()).snapshots).every((s) => s.kind === 'committed');
  const snapshotLines = async (snapshotter: string): Promise<string[]> =>
    (await env.ctrOk(['snapshots', '--snapshotter', snapshotter, 'ls'])).trim().split('\n').slice(1).map((l) => l.trim().split(/\s+/).join(' ')).sort();

  beforeAll(async () => {
    work = await tempDir('layerfs-ctd-');
    await exec(join(REPO, 'scripts', 'make-sample-image'), [join(work, 'oci')]);
    await tarDir(join(work, 'oci'), join(work, 'sample.tar'));
    env = await startContainerdEnv(work);
    await env.ctrOk(['images', 'import', '--base-name', 'docker.io/library/sample', '--snapshotter', 'layerfs', join(work, 'sample.tar')]);
  });

  afterAll(async () => {
    await env?.teardown();
  });

  it('imports the image as a chain of committed layerfs snapshots, one folder each', async () => {
    const meta = await backend();
    const committed = Object.values(meta.snapshots).filter((s) => s.kind === 'committed');
    expect(committed).toHaveLength(3);
    // A chain: one base, each other layer on the previous one.
    expect(committed.filter((s) => s.parent === '')).toHaveLength(1);
    for (const s of committed) expect((await readdir(join(env.storeRoot, 'snapshotter', 'snapshots', s.id, 'fs'))).length).toBeGreaterThan(0);
    expect(await backendHasNoActive()).toBe(true);
  });

  it('ctr run --rm writes, deletes and reads like on overlayfs: same output, same exit code, nothing left', async () => {
    const script = [
      'echo new > /app/new.txt',
      'rm /app/hello.txt',
      'echo appended >> /etc/motd',
      'mkdir -p /app/d/e && echo deep > /app/d/e/f',
      'rm -r /app/d/e',
      'cat /etc/motd /app/new.txt',
      'ls /app',
      'busybox find / -xdev | busybox sort',
      'busybox md5sum /bin/busybox /app/numbers.txt /app/config.ini',
      'busybox stat -c "%n %a %u:%g" /app/config.ini /tmp',
      'exit 7',
    ].join('; ');
    const results = [];
    for (const sn of SNAPSHOTTERS) results.push(await env.ctr(['run', '--rm', '--snapshotter', sn, IMAGE, `rm-${sn}`, 'sh', '-c', script]));
    const [lf, ov] = results;
    expect(ov!.code, ov!.stderr).toBe(7);
    expect(lf!.code, lf!.stderr).toBe(7);
    expect(lf!.stdout).toBe(ov!.stdout);
    expect(lf!.stdout).toContain('motd rewritten by the app layer: this copy shadows the base one.\nappended\nnew\n');
    expect(lf!.stdout).not.toContain('hello.txt');
    expect(lf!.stdout).toContain('/app/config.ini 644 1000:1000');
    expect(mountsUnder(work)).toEqual([]);
    await waitFor('containerd to remove the container snapshot from the backend', backendHasNoActive);
  });

  it('ctr snapshots: a container committed, viewed read-only, listed, labelled, measured and removed, as on overlayfs', async () => {
    const trees: Record<string, unknown> = {};
    for (const sn of SNAPSHOTTERS) {
      const s = ['snapshots', '--snapshotter', sn];
      const r = await env.ctr(['run', '--snapshotter', sn, IMAGE, `keep-${sn}`, 'sh', '-c', 'echo committed > /marker; rm /etc/motd; mkdir /app/new; exit 3']);
      expect(r.code, r.stderr).toBe(3);
      await env.ctrOk([...s, 'commit', `committed-${sn}`, `keep-${sn}`]);
      // Neither a commit nor a view made by ctr carries containerd's gc.root label, so the
      // garbage collector (started by any removal, ours or ctr run's) takes them while the
      // test still uses them: each is labelled a root the moment it exists, and every
      // removal waits for the end of the loop.
      await env.ctrOk([...s, 'label', `committed-${sn}`, 'containerd.io/gc.root=layerfs-test']);

      const mounts = JSON.parse(await env.ctrOk([...s, 'view', '--mounts', `view-${sn}`, `committed-${sn}`])) as Array<{ Type: string; Source: string; Options: string[] }>;
      await env.ctrOk([...s, 'label', `view-${sn}`, 'containerd.io/gc.root=layerfs-test']);
      if (sn === 'layerfs') expect(mounts[0]!.Type).toBe('fuse3.layerfs-overlay');
      const dir = join(work, `view-${sn}`);
      await mkdir(dir);
      await mountSpecs(dir, mounts, env.path);
      try {
        expect(await readFile(join(dir, 'marker'), 'utf8')).toBe('committed\n');
        await expect(readFile(join(dir, 'etc', 'motd'))).rejects.toThrow(/ENOENT/);
        await expect(writeFile(join(dir, 'x'), 'x')).rejects.toThrow(/EROFS/);
        trees[sn] = canonical(await snapshot(dir));
      } finally {
        await forceUnmount(dir);
      }

      const ls = await snapshotLines(sn);
      expect(ls.some((l) => l.startsWith(`committed-${sn} `) && l.endsWith(' Committed'))).toBe(true);
      expect(ls, ls.join('\n')).toContain(`view-${sn} committed-${sn} View`);
      await env.ctrOk([...s, 'label', `committed-${sn}`, 'layerfs.test/k=v']);
      const info = JSON.parse(await env.ctrOk([...s, 'info', `committed-${sn}`])) as { Kind: string; Labels: Record<string, string> };
      expect(info.Kind).toBe('Committed');
      expect(info.Labels['layerfs.test/k']).toBe('v');
      const usage = await env.ctrOk([...s, 'usage', `committed-${sn}`]);
      expect(usage).toMatch(new RegExp(`committed-${sn}\\s+\\d`));
      // A snapshot with a child stays.
      const busy = await env.ctr([...s, 'rm', `committed-${sn}`]);
      expect(busy.code).not.toBe(0);
      expect(busy.stderr).toMatch(/child/);
    }
    // Removals after the loop (see the labels above).
    for (const sn of SNAPSHOTTERS) {
      const s = ['snapshots', '--snapshotter', sn];
      await env.ctrOk([...s, 'rm', `view-${sn}`]);
      await env.ctrOk([...s, 'rm', `committed-${sn}`]);
      await env.ctrOk(['containers', 'rm', `keep-${sn}`]);
      expect((await snapshotLines(sn)).some((l) => l.includes(`-${sn} `))).toBe(false);
    }
    expect(trees.layerfs).toEqual(trees.overlayfs);
    await waitFor('the backend to drop the removed snapshots', backendHasNoActive);
  });

  it('keeps its state across a restart of the snapshotter and of containerd', async () => {
    const before = await snapshotLines('layerfs');
    await env.stopSnapshotter('SIGTERM');
    await env.startSnapshotter();
    expect(await snapshotLines('layerfs')).toEqual(before);
    await env.stopContainerd();
    await env.startContainerd();
    expect(await snapshotLines('layerfs')).toEqual(before);
    const r = await env.ctr(['run', '--rm', '--snapshotter', 'layerfs', IMAGE, 'after-restart', 'cat', '/app/config.ini']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('greeting=hello\n');
  });

  it('a killed snapshotter: running containers keep their rootfs, containerd returns errors (no hang), and a restart finds everything', async () => {
    await env.ctrOk(['run', '-d', '--snapshotter', 'layerfs', IMAGE, 'bg', 'sleep', '1000']);
    const committed = (await snapshotLines('layerfs')).filter((l) => l.endsWith('Committed'));
    await env.stopSnapshotter('SIGKILL');
    try {
      const failed = await env.ctr(['run', '--rm', '--snapshotter', 'layerfs', IMAGE, 'while-dead', 'true'], { timeoutMs: 90_000 });
      expect(failed.code).toBeGreaterThan(0); // an error, not our SIGKILL after a hang (-1)
      expect(failed.stderr).toMatch(/unavailable|connection|transport|no such file/i);
      // The FUSE mount belongs to the shim's mount, not to the snapshotter.
      const e = await env.ctr(['tasks', 'exec', '--exec-id', 'probe', 'bg', 'cat', '/app/config.ini']);
      expect(e.stdout).toBe('greeting=hello\n');
      // The rootfs honours setuid and device nodes, as on overlayfs (mount.fuse3 asks for suid,dev).
      const root = await env.ctr(['tasks', 'exec', '--exec-id', 'probe2', 'bg', 'busybox', 'grep', ' / / ', '/proc/self/mountinfo']);
      expect(root.stdout).toContain('fuse.layerfs');
      expect(root.stdout.split(' ')[5]!.split(',')).not.toContain('nosuid');
    } finally {
      await env.startSnapshotter();
    }
    const after = await snapshotLines('layerfs');
    for (const l of committed) expect(after).toContain(l);
    expect(after.some((l) => l.startsWith('bg ') && l.endsWith(' Active'))).toBe(true);
    await env.ctrOk(['tasks', 'kill', '-s', 'SIGKILL', 'bg']);
    await waitFor('bg to stop', async () => !(await env.ctrOk(['tasks', 'ls'])).includes('RUNNING'));
    await env.ctrOk(['tasks', 'rm', 'bg']);
    await env.ctrOk(['containers', 'rm', 'bg']);
    const r = await env.ctr(['run', '--rm', '--snapshotter', 'layerfs', IMAGE, 'after-kill', 'cat', '/etc/motd']);
    expect(r.code, r.stderr).toBe(0);
    await waitFor('no mount left', async () => mountsUnder(work).length === 0);
    await waitFor('the backend to drop the container snapshots', backendHasNoActive);
  });

  it('20 containers at once, 100 files each: all succeed, no mount or snapshot left', async () => {
    // Each container reports through a file in a bind-mounted folder, not its stdout:
    // ctr loses a short-lived task's output now and then under load (exit 0, nothing read;
    // seen here with 20 at once, and upstream: containerd#770, nerdctl#3877).
    const out = join(work, 'load-out');
    await mkdir(out);
    const script = 'i=0; while [ $i -lt 100 ]; do echo $i > /tmp/f$i; i=$((i+1)); done; ls /tmp | busybox wc -l > /out/$0';
    const runs = await Promise.all(
      Array.from({ length: 20 }, (_, n) =>
        env.ctr(['run', '--rm', '--snapshotter', 'layerfs', '--mount', `type=bind,src=${out},dst=/out,options=rbind:rw`, IMAGE, `load-${n}`, 'sh', '-c', script, `load-${n}`], { timeoutMs: 280_000 }),
      ),
    );
    for (const [n, r] of runs.entries()) {
      const count = await readFile(join(out, `load-${n}`), 'utf8').catch(() => '(no file)');
      // Under load the shim loses a mount helper's exit status (ECHILD), unmounts and mounts
      // again; a first mount process that then detached by path took the second mount with
      // it ("sh" not found, or ENOTCONN, at create: mount-ownership.test.ts). A failure
      // says what containerd and the container's mount processes logged about it.
      if (r.code !== 0 || count.trim() !== '100') expect.fail(`load-${n}: exit ${r.code}, count ${count.trim()}: ${r.stderr}${r.stdout}\n${await whatWasLogged(`load-${n}`)}`);
    }
    await waitFor('no mount left', async () => mountsUnder(work).length === 0);
    await waitFor('the backend to drop the 20 container snapshots', backendHasNoActive);
    // Remove drops the record first, then the folder: wait for both.
    const ids = new Set(Object.values((await backend()).snapshots).map((s) => s.id));
    await waitFor('every folder to belong to a snapshot', async () => (await readdir(join(env.storeRoot, 'snapshotter', 'snapshots'))).every((d) => ids.has(d)));
  }, 300_000);
});
