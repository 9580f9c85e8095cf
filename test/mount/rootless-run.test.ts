/**
 * `layerfs run` as an ordinary user (issue 14): the runtime spec rootlessSpec() makes runs
 * under runc as the test users (real user namespaces: newuidmap/newgidmap with their
 * /etc/subuid ranges, or the single mapping without), and the limits an ordinary user
 * cannot have are refused before anything is created.
 */
import { execFile } from 'node:child_process';
import { chown, lstat, mkdir, symlink, writeFile, copyFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, inject, it } from 'vitest';
import { buildRuntimeSpec } from '../../src/sandbox/runtime-spec.js';
import { rootlessSpec } from '../../src/sandbox/rootless-spec.js';
import { podmanLayout } from '../../src/userns/id-map.js';
import { makeTar, writeOciLayout } from '../helpers/images.js';
import { layerfsAs, layerfsAsOk, testUser, userEnv, userTempDir, type TestUser } from '../helpers/rootless.js';

const exec = promisify(execFile);

/** A bundle whose rootfs is a static busybox, owned by `user` (uid 0 in the namespace). */
async function busyboxBundle(user: TestUser, dir: string, script: string, network: 'none' | 'host'): Promise<string> {
  const rootfs = join(dir, 'rootfs');
  for (const d of ['bin', 'etc', 'proc', 'sys', 'dev', 'tmp']) await mkdir(join(rootfs, d), { recursive: true });
  await copyFile('/bin/busybox', join(rootfs, 'bin', 'busybox'));
  for (const c of ['sh', 'id', 'cat', 'chown', 'touch', 'stat']) await symlink('busybox', join(rootfs, 'bin', c));
  for (const f of ['hosts', 'hostname', 'resolv.conf']) await writeFile(join(rootfs, 'etc', f), '');
  await exec('chown', ['-R', `${user.uid}:${user.gid}`, dir]);
  const etc = (f: string): string => join(rootfs, 'etc', f);
  const spec = buildRuntimeSpec({
    rootfs, readOnlyRootfs: false, args: ['/bin/sh', '-c', script], env: ['PATH=/bin'], cwd: '/',
    user: { uid: 0, gid: 0, additionalGids: [], home: '/' }, terminal: false,
    ...(network === 'none' ? { hostname: 'box' } : {}), network,
    etcFiles: { hosts: etc('hosts'), hostname: etc('hostname'), resolvConf: etc('resolv.conf') }, volumes: [],
  });
  const mapping = user.subuid !== undefined ? podmanLayout(user.uid, user.gid, { start: user.subuid, count: 65536 }, { start: user.subgid!, count: 65536 }) : undefined;
  await writeFile(join(dir, 'config.json'), JSON.stringify(rootlessSpec(spec, mapping, user.uid, user.gid)));
  await chown(join(dir, 'config.json'), user.uid, user.gid);
  return rootfs;
}

/** `runc run` as `user` in `bundle`; stdout, or the failure. */
async function runcAs(user: TestUser, bundle: string, id: string): Promise<{ code: number; out: string }> {
  const env = await userEnv(user, bundle);
  return exec('runc', ['--root', join(env.XDG_RUNTIME_DIR!, 'runc'), 'run', id], { cwd: bundle, env, uid: user.uid, gid: user.gid }).then(
    (r) => ({ code: 0, out: r.stdout }),
    (e: { code?: number; stdout?: string; stderr?: string }) => ({ code: e.code ?? 1, out: `${e.stdout ?? ''}${e.stderr ?? ''}` }),
  );
}

describe.skipIf(!inject('canMount'))('rootless runtime spec under runc', () => {
  it('with subordinate ids: container uid 0 is the user, uid 33 is subuid+32 on disk, network none and host', async () => {
    const u = testUser('layerfs-rootless');
    for (const network of ['none', 'host'] as const) {
      const bundle = await userTempDir(u);
      const rootfs = await busyboxBundle(u, bundle, 'id -u; cat /proc/self/uid_map; touch /tmp/f && chown 33:33 /tmp/f && echo chowned', network);
      const r = await runcAs(u, bundle, `rl-${network}`);
      expect(r.code, r.out).toBe(0);
      const lines = r.out.trim().split('\n').map((l) => l.trim().split(/\s+/).join(' '));
      expect(lines).toEqual(['0', `0 ${u.uid} 1`, `1 ${u.subuid} 65536`, 'chowned']);
      const st = await lstat(join(rootfs, 'tmp', 'f'));
      expect([st.uid, st.gid]).toEqual([u.subuid! + 32, u.subgid! + 32]);
    }
  });

  it('without subordinate ids: one mapping, and a chown to an unmapped uid fails inside', async () => {
    const u = testUser('layerfs-nosubid');
    const bundle = await userTempDir(u);
    await busyboxBundle(u, bundle, 'id -u; cat /proc/self/uid_map; touch /tmp/f; chown 33 /tmp/f || echo refused', 'none');
    const r = await runcAs(u, bundle, 'rl-single');
    expect(r.code, r.out).toBe(0);
    const lines = r.out.trim().split('\n').map((l) => l.trim().split(/\s+/).join(' '));
    expect(lines[0]).toBe('0');
    expect(lines[1]).toBe(`0 ${u.uid} 1`);
    expect(lines.at(-1)).toBe('refused');
  });
});

describe.skipIf(!inject('canMount'))('layerfs run as an ordinary user', () => {
  it('--memory and --pids-limit are refused with the reason, before any container exists', async () => {
    const u = testUser('layerfs-rootless');
    const work = await userTempDir(u);
    await writeOciLayout(join(work, 'image'), [{ tar: await makeTar([{ name: 'f', data: 'x' }]) }], { tag: 'latest' });
    const env = await userEnv(u, work);
    const root = join(work, 'store');
    await layerfsAsOk(u, env, ['--root', root, 'load', '-i', join(work, 'image'), '--name', 'img']);
    for (const flags of [['--memory', '64m'], ['--pids-limit', '10']]) {
      const r = await layerfsAs(u, env, ['--root', root, 'run', '--rm', ...flags, 'img', 'true']);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(new RegExp(`${flags[0]} cannot be applied as an ordinary user: resource limits need a cgroup of the user's own`));
    }
    expect(JSON.parse(await layerfsAsOk(u, env, ['--root', root, 'ps', '--json']))).toEqual([]);
  });
});
