/**
 * The rules `run` applies before anything starts, as plain functions: Docker's
 * Entrypoint/Cmd/Env rules, users from the image's passwd/group, symlinks resolved inside
 * the rootfs, option parsing, the runtime spec's Docker defaults, and how runtime errors
 * become exit codes. No mount needed; kept beside the run tests they support.
 */
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { containerArgs, containerEnv, envFlag, imageRunConfig, mergeEnv } from '../../src/sandbox/image-process.js';
import { startFailure } from '../../src/sandbox/oci-runtime.js';
import { resolveInRootfs, readRootfsFile } from '../../src/sandbox/rootfs-path.js';
import { parseBytes, parseMemory, parseVolume } from '../../src/sandbox/run-options.js';
import { filterRuntimeNoise } from '../../src/sandbox/runtime-child.js';
import { buildRuntimeSpec, type SpecInput } from '../../src/sandbox/runtime-spec.js';
import { resolveUser } from '../../src/sandbox/user-resolver.js';
import { tempDir } from '../helpers/temp.js';

describe('Entrypoint, Cmd and Env (Docker rules)', () => {
  const image = imageRunConfig({ Entrypoint: ['/entry', '-x'], Cmd: ['serve'], Env: ['PATH=/opt/bin', 'A=1'] });

  it('combines Entrypoint and Cmd; args replace Cmd; --entrypoint drops Cmd; "" clears it', () => {
    expect(containerArgs(image, undefined, [])).toEqual(['/entry', '-x', 'serve']);
    expect(containerArgs(image, undefined, ['other', 'arg'])).toEqual(['/entry', '-x', 'other', 'arg']);
    expect(containerArgs(image, '/bin/sh', [])).toEqual(['/bin/sh']);
    expect(containerArgs(image, '/bin/sh', ['-c', 'x'])).toEqual(['/bin/sh', '-c', 'x']);
    expect(containerArgs(image, '', ['ls'])).toEqual(['ls']);
    expect(() => containerArgs(imageRunConfig({}), undefined, [])).toThrow(/no command specified/);
    expect(imageRunConfig({ Cmd: 'not-a-list' }).Cmd).toBeNull();
  });

  it('merges Env per key (later wins), adds PATH/HOSTNAME/HOME/TERM only when missing', () => {
    expect(mergeEnv(['A=1', 'B=2'], ['A=3'])).toEqual(['B=2', 'A=3']);
    expect(containerEnv(image, ['A=2'], { hostname: 'h', home: '/root', tty: true })).toEqual(['PATH=/opt/bin', 'A=2', 'HOSTNAME=h', 'HOME=/root', 'TERM=xterm']);
    expect(containerEnv(imageRunConfig({}), [], { home: '/', tty: false })).toEqual(['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'HOME=/']);
    expect(envFlag('K', { K: 'from-host' })).toEqual(['K=from-host']);
    expect(envFlag('K', {})).toEqual([]);
    expect(() => envFlag('=v')).toThrow(/invalid environment variable/);
  });
});

describe('users from the image passwd and group', () => {
  const passwd = 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/app:/bin/sh\n# comment\nbroken line\n';
  const group = 'root:x:0:\nwheel:x:10:app\napp:x:1000:\nstaff:x:50:other,app\n';

  it('resolves names and numbers like Docker', () => {
    expect(resolveUser('', passwd, group)).toEqual({ uid: 0, gid: 0, additionalGids: [], home: '/root' });
    expect(resolveUser('app', passwd, group)).toEqual({ uid: 1000, gid: 1000, additionalGids: [10, 50], home: '/app' });
    expect(resolveUser('1000', passwd, group).home).toBe('/app');
    expect(resolveUser('4242', passwd, group)).toEqual({ uid: 4242, gid: 0, additionalGids: [], home: '/' });
    expect(resolveUser('app:wheel', passwd, group).gid).toBe(10);
    expect(resolveUser('app:777', passwd, group).gid).toBe(777);
    expect(resolveUser('4242', undefined, undefined).uid).toBe(4242);
  });

  it('rejects unknown names with one line', () => {
    expect(() => resolveUser('ghost', passwd, group)).toThrow(/^unable to find user ghost: no matching entries in the image's \/etc\/passwd$/);
    expect(() => resolveUser('app:ghosts', passwd, group)).toThrow(/unable to find group ghosts/);
    expect(() => resolveUser('app', undefined, undefined)).toThrow(/unable to find user app/);
  });
});

describe('paths inside the rootfs', () => {
  it('follows the image symlinks against the rootfs, never the host', async () => {
    const root = await tempDir();
    await mkdir(join(root, 'etc'));
    await mkdir(join(root, 'real'));
    await writeFile(join(root, 'real', 'passwd'), 'inside\n');
    await symlink('/real/passwd', join(root, 'etc', 'passwd'));
    await symlink('../../../../../../etc/shadow', join(root, 'etc', 'escape'));
    await symlink('loop', join(root, 'loop'));
    expect(await resolveInRootfs(root, '/etc/passwd')).toBe(join(root, 'real', 'passwd'));
    expect(await readRootfsFile(root, '/etc/passwd')).toBe('inside\n');
    // `..` stops at the rootfs: this names <rootfs>/etc/shadow (absent), not the host's.
    expect(await resolveInRootfs(root, '/etc/escape')).toBe(join(root, 'etc', 'shadow'));
    expect(await readRootfsFile(root, '/etc/escape')).toBeUndefined();
    expect(await resolveInRootfs(root, '/a/b/../c')).toBe(join(root, 'a', 'c'));
    await expect(resolveInRootfs(root, '/loop/x')).rejects.toThrow(/too many levels/);
  });
});

describe('run options', () => {
  it('parses volumes, sizes and rejects bad ones', async () => {
    expect(await parseVolume('/tmp:/data:ro')).toEqual({ source: '/tmp', destination: '/data', readOnly: true });
    expect((await parseVolume('/tmp:/data')).readOnly).toBe(false);
    await expect(parseVolume('named:/data')).rejects.toThrow(/named volumes are not supported/);
    await expect(parseVolume('/tmp:/data:zz')).rejects.toThrow(/mode must be ro or rw/);
    expect(parseBytes('64m', 'x')).toBe(64 * 1024 * 1024);
    expect(parseBytes('1.5GB', 'x')).toBe(1.5 * 1024 ** 3);
    expect(parseBytes('4096', 'x')).toBe(4096);
    expect(() => parseMemory('1m')).toThrow(/minimum of 6MB/);
  });
});

describe('runtime spec', () => {
  const input: SpecInput = {
    rootfs: '/c/merged',
    readOnlyRootfs: false,
    args: ['sh'],
    env: ['PATH=/bin'],
    cwd: '/app',
    user: { uid: 1000, gid: 1000, additionalGids: [10], home: '/app' },
    terminal: false,
    hostname: 'abc',
    network: 'none',
    etcFiles: { hosts: '/c/hosts', hostname: '/c/hostname', resolvConf: '/c/resolv.conf' },
    volumes: [
      { source: '/h/b', destination: '/data/b', readOnly: false },
      { source: '/h/a', destination: '/data', readOnly: true },
    ],
    memory: 64 << 20,
    swapAccounting: true,
    pidsLimit: 100,
  };

  it('carries Docker defaults and this run’s options', () => {
    const s = buildRuntimeSpec(input);
    expect(s.process.noNewPrivileges).toBe(true);
    expect(s.process.capabilities.bounding).toHaveLength(14);
    expect(s.process.capabilities.inheritable).toEqual([]);
    expect(s.process.user).toEqual({ uid: 1000, gid: 1000, additionalGids: [10] });
    expect(s.linux.namespaces.map((n) => n.type).sort()).toEqual(['ipc', 'mount', 'network', 'pid', 'uts']);
    expect(s.linux.maskedPaths).toContain('/proc/kcore');
    expect(s.linux.readonlyPaths).toContain('/proc/sys');
    expect(s.linux.resources.memory).toEqual({ limit: 64 << 20, swap: 64 << 20 });
    expect(s.linux.resources.pids).toEqual({ limit: 100 });
    expect(s.mounts.map((m) => m.destination)).toEqual(['/proc', '/dev', '/dev/pts', '/sys', '/sys/fs/cgroup', '/dev/mqueue', '/dev/shm', '/etc/resolv.conf', '/etc/hostname', '/etc/hosts', '/data', '/data/b']);
    expect(s.mounts.find((m) => m.destination === '/data')!.options).toContain('ro');
    expect(s.hostname).toBe('abc');
    expect(s.root).toEqual({ path: '/c/merged', readonly: false });
    expect(s.linux.seccomp.defaultAction).toBe('SCMP_ACT_ALLOW');
    expect(s.linux.seccomp.syscalls[0]!.names).toEqual(expect.arrayContaining(['unshare', 'setns', 'mount', 'keyctl', 'open_by_handle_at', 'bpf']));
  });

  it('host network shares the network and UTS namespaces; --read-only makes root and /etc files ro', () => {
    const { hostname: _h, ...rest } = input;
    const s = buildRuntimeSpec({ ...rest, network: 'host', readOnlyRootfs: true });
    expect(s.linux.namespaces.map((n) => n.type).sort()).toEqual(['ipc', 'mount', 'pid']);
    expect(s.hostname).toBeUndefined();
    expect(s.root.readonly).toBe(true);
    expect(s.mounts.find((m) => m.destination === '/etc/hosts')!.options).toContain('ro');
  });
});

describe('runtime errors', () => {
  it('maps exec failures to Docker exit codes and keeps runtime noise out of stderr', async () => {
    const dir = await tempDir();
    const log = join(dir, 'log');
    const line = (msg: string): string => JSON.stringify({ level: 'error', msg, time: 'x' }) + '\n';
    await writeFile(log, line('old failure: exec: "x": permission denied') + line('runc run failed: unable to start container process: exec: "nope": executable file not found in $PATH'));
    const offset = Buffer.byteLength(line('old failure: exec: "x": permission denied'));
    expect(await startFailure(log, offset)).toEqual({ exitCode: 127, message: 'exec: "nope": executable file not found in $PATH' });
    expect((await startFailure(log, 0))!.exitCode).toBe(127);
    await writeFile(log, line('runc run failed: unable to start container process: exec: "/etc/motd": permission denied'));
    expect((await startFailure(log, 0))!.exitCode).toBe(126);
    await writeFile(log, line('runc run failed: cgroup: something else'));
    expect(await startFailure(log, 0)).toEqual({ exitCode: 125, message: 'cgroup: something else' });
    await writeFile(log, '');
    expect(await startFailure(log, 0)).toBeUndefined();
    expect(filterRuntimeNoise('out\nrunc run failed: boom\nmore')).toBe('out\nmore');
    expect(filterRuntimeNoise('$ ')).toBe('$ ');
  });
});
