/**
 * `layerfs run` through runc on the sample image (static busybox), as a user runs it:
 * what the process sees, where its writes land, isolation between containers, users,
 * read-only roots, limits, networks, exit codes, signals, detached containers with
 * stop/exec/logs, recovery after SIGKILL, and bad input leaving nothing behind.
 */
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lstat, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { LAYERFS, cli, cliOk, REPO, runNode } from '../helpers/cli.js';
import { isMounted, unionMounts } from '../helpers/mounts.js';
import { treeHashes } from '../helpers/sample-image.js';
import { tempDir } from '../helpers/temp.js';

const exec = promisify(execFile);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A process's state letter from /proc/PID/stat (R, S, Z, …), or 'gone' when there is no such process. */
async function processState(pid: number): Promise<string> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  if (stat === undefined) return 'gone';
  // The command name in parentheses may hold spaces or ')': the state follows the last ')'.
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0]!;
}


interface PsEntry {
  id: string;
  name: string;
  pid: number | null;
  state: string;
  mountpoint: string | null;
  run?: { status: string; exitCode: number | null; monitor: { pid: number } | null; containerPid: number | null };
}

describe.skipIf(!inject('canMount'))('layerfs run', () => {
  let root: string;
  let work: string;

  const ps = async (): Promise<PsEntry[]> => JSON.parse(await cliOk(root, ['ps', '-a', '--json'])) as PsEntry[];
  const entry = async (name: string): Promise<PsEntry | undefined> => (await ps()).find((c) => c.name === name);
  const runtimeIds = async (): Promise<string[]> => {
    const { stdout } = await exec('runc', ['--root', join(root, 'runtime', 'runc'), 'list', '-q']);
    return stdout.split('\n').filter(Boolean);
  };
  const containerDirs = async (): Promise<string[]> => readdir(join(root, 'containers')).catch(() => []);
  const waitFor = async (what: string, cond: () => Promise<boolean>): Promise<void> => {
    for (let i = 0; i < 600; i++) {
      if (await cond()) return;
      await sleep(50);
    }
    throw new Error(`timed out waiting for ${what}`);
  };
  /** Nothing of any container remains: no folder, no mount under the store, no runc state. */
  const expectNothingLeft = async (): Promise<void> => {
    expect(await containerDirs()).toEqual([]);
    expect(unionMounts().filter((m) => m.mountpoint.startsWith(root))).toEqual([]);
    expect(await runtimeIds()).toEqual([]);
  };

  beforeAll(async () => {
    work = await tempDir();
    root = join(work, 'store');
    await exec(join(REPO, 'scripts', 'make-sample-image'), [join(work, 'oci')]);
    await cliOk(root, ['load', '-i', join(work, 'oci'), '--name', 'sample']);
  });

  afterAll(async () => {
    for (const c of await ps().catch(() => [])) {
      await cli(root, ['stop', '-t', '0', c.name]);
      await cli(root, ['rm', '-f', c.name]);
    }
  });

  it('runs on the merged rootfs only, with the image config, and --rm leaves nothing behind', async () => {
    const r = await cli(root, ['run', '--rm', 'sample', 'sh', '-c', 'ls /; cat /etc/motd; pwd; echo "$PATH|$HOME|$HOSTNAME"; cat /etc/hostname; ls /dev; exit 3']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(3);
    const lines = r.stdout.split('\n');
    // Only the image's own top-level folders plus what the runtime mounts: no host /usr, /home, /work.
    expect(lines.slice(0, 8)).toEqual(['app', 'bin', 'dev', 'etc', 'proc', 'root', 'sys', 'tmp']);
    expect(r.stdout).toMatch(/motd rewritten by the app layer/);
    expect(lines).toContain('/app'); // WorkingDir
    const [path, home, host] = lines.find((l) => l.includes('|'))!.split('|');
    expect(path).toBe('/bin'); // the image's Env
    expect(home).toBe('/root');
    expect(host).toMatch(/^[0-9a-f]{12}$/);
    expect(lines).toContain(host);
    for (const dev of ['null', 'zero', 'full', 'random', 'urandom', 'tty', 'ptmx', 'pts', 'shm', 'mqueue']) expect(lines).toContain(dev);
    await expectNothingLeft();
  });

  it('exit codes: a missing command is 127 with one clear line, a non-executable 126', async () => {
    const missing = await cli(root, ['run', '--rm', 'sample', 'no-such-command']);
    expect(missing.code).toBe(127);
    expect(missing.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^layerfs: .*"no-such-command": executable file not found/)]);
    const notExec = await cli(root, ['run', '--rm', 'sample', '/etc/motd']);
    expect(notExec.code).toBe(126);
    expect(notExec.stderr).toMatch(/permission denied/);
    await expectNothingLeft();
  });

  it('writes land in its own writable layer and the image layer caches hash the same', async () => {
    const before = await treeHashes(join(root, 'layers'));
    const r = await cli(root, ['run', '--name', 'w1', 'sample', 'sh', '-c', 'echo data > /root/new.txt && rm /app/hello.txt && echo more >> /etc/motd']);
    expect(r.code).toBe(0);
    const c = (await entry('w1'))!;
    expect(c.run?.status).toBe('exited');
    expect(c.run?.exitCode).toBe(0);
    expect(c.state).toBe('unmounted');
    expect(isMounted(join(root, 'containers', c.id, 'merged'))).toBe(false);
    const upper = join(root, 'containers', c.id, 'upper');
    expect(await readFile(join(upper, 'root', 'new.txt'), 'utf8')).toBe('data\n');
    expect(await readFile(join(upper, 'etc', 'motd'), 'utf8')).toMatch(/app layer[\s\S]*more\n$/);
    const wh = await lstat(join(upper, 'app', 'hello.txt'));
    expect(wh.isCharacterDevice() && wh.rdev === 0).toBe(true);
    expect(await treeHashes(join(root, 'layers'))).toEqual(before);
    expect((await cliOk(root, ['ps', '-a'])).split('\n').find((l) => l.endsWith(' w1'))).toMatch(/Exited \(0\)/);
    // A new container of the same image starts from the image, not from w1's layer.
    const fresh = await cli(root, ['run', '--rm', 'sample', 'sh', '-c', 'cat /app/hello.txt; ls /root']);
    expect(fresh.stdout).toBe('hello from the app layer\n');
    await cliOk(root, ['rm', 'w1']);
    await expectNothingLeft();
  });

  it('two detached containers of one image do not see each other’s writes; exec, logs and stop', async () => {
    for (const n of ['a', 'b']) {
      const id = (await cliOk(root, ['run', '-d', '--name', n, 'sample', 'sh', '-c', `echo ${n} > /tmp/mine; echo started ${n}; while true; do sleep 1; done`])).trim();
      expect(id).toMatch(/^[0-9a-f]{64}$/);
    }
    try {
      for (const n of ['a', 'b']) {
        await waitFor(`${n}'s log`, async () => (await cli(root, ['logs', n])).stdout.includes(`started ${n}`));
        expect((await cli(root, ['exec', n, 'cat', '/tmp/mine'])).stdout).toBe(`${n}\n`);
        const other = n === 'a' ? 'b' : 'a';
        expect((await cli(root, ['exec', n, 'sh', '-c', `grep -rl "^${other}$" /tmp /root /app || echo none`])).stdout).toBe('none\n');
      }
      expect((await cli(root, ['exec', 'a', 'sh', '-c', 'exit 7'])).code).toBe(7);
      expect((await cliOk(root, ['ps', '-a'])).split('\n').find((l) => l.endsWith(' a'))).toMatch(/Up /);
      const pidsA = (await cli(root, ['exec', 'a', 'ls', '/proc'])).stdout.split('\n').filter((x) => /^\d+$/.test(x));
      expect(pidsA).toContain('1'); // its own pid namespace
      expect(pidsA.length).toBeLessThan(10);
    } finally {
      expect((await cli(root, ['stop', '-t', '1', 'a', 'b'])).code).toBe(0);
    }
    for (const n of ['a', 'b']) {
      const c = (await entry(n))!;
      expect(c.run?.status).toBe('exited');
      expect(c.run?.exitCode).toBe(137); // sh as pid 1 ignores SIGTERM: killed after the grace period
      expect(await readFile(join(root, 'containers', c.id, 'upper', 'tmp', 'mine'), 'utf8')).toBe(`${n}\n`);
    }
    await cliOk(root, ['rm', 'a', 'b']);
    await expectNothingLeft();
  });

  it('logs -f follows a detached container to its end; -d --rm removes it after', async () => {
    // The container ends only once `logs -f` has shown its first lines (it waits for /go,
    // made through exec then): a --rm container that ended before `logs -f` started would
    // be gone already, as in Docker, and removal no longer waits behind the store lock.
    await cliOk(root, ['run', '-d', '--rm', '--name', 'lf', 'sample', 'sh', '-c', 'echo one; echo err >&2; while [ ! -e /go ]; do sleep 0.1; done; echo two']);
    const follower = spawn(process.execPath, [LAYERFS, '--root', root, 'logs', '-f', 'lf'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const logs = { stdout: '', stderr: '', code: -1 };
    follower.stdout.on('data', (d) => (logs.stdout += d));
    follower.stderr.on('data', (d) => (logs.stderr += d));
    const ended = new Promise<void>((r) => follower.on('close', (code) => ((logs.code = code ?? -1), r())));
    await waitFor('logs -f to show the first lines', async () => logs.stdout.includes('one') && logs.stdout.includes('err'));
    expect((await cli(root, ['exec', 'lf', 'touch', '/go'])).code).toBe(0);
    await ended;
    expect(logs.code, logs.stderr).toBe(0);
    // stdout and stderr share the log; the shell may flush them in either order.
    expect(logs.stdout.split('\n').slice(0, 2).sort()).toEqual(['err', 'one']);
    expect(logs.stdout.split('\n').slice(2)).toEqual(['two', '']);
    await waitFor('removal', async () => (await containerDirs()).length === 0);
    await expectNothingLeft();
    const fail = await cli(root, ['run', '-d', '--rm', 'sample', 'no-such-command']);
    expect(fail.code).toBe(127);
    expect(fail.stderr.trim()).toMatch(/^layerfs: exec: "no-such-command": executable file not found/);
    expect(fail.stdout).toBe('');
    await waitFor('removal', async () => (await containerDirs()).length === 0);
    await expectNothingLeft();
  });

  it('a non-root user creates files it owns, cannot read root’s 0600 file, has no capabilities; noNewPrivileges is set', async () => {
    await cliOk(root, ['run', '-d', '--name', 'u', 'sample', 'sh', '-c', 'echo secret > /root/secret; chmod 600 /root/secret; chmod 755 /root; touch /ready; while true; do sleep 1; done']);
    try {
      await waitFor('the secret', async () => (await cli(root, ['exec', 'u', 'ls', '/ready'])).code === 0);
      const id = (await cli(root, ['exec', '-u', 'app', 'u', 'id'])).stdout;
      expect(id).toMatch(/^uid=1000\(app\) gid=1000\(app\)/);
      const read = await cli(root, ['exec', '-u', 'app', 'u', 'cat', '/root/secret']);
      expect(read.code).not.toBe(0);
      expect(read.stderr).toMatch(/Permission denied/);
      expect((await cli(root, ['exec', 'u', 'cat', '/root/secret'])).stdout).toBe('secret\n');
      expect((await cli(root, ['exec', '-u', 'app', 'u', 'touch', '/tmp/by-app'])).code).toBe(0);
      const c = (await entry('u'))!;
      expect((await stat(join(root, 'containers', c.id, 'upper', 'tmp', 'by-app'))).uid).toBe(1000);
    } finally {
      await cliOk(root, ['stop', '-t', '0', 'u']);
      await cliOk(root, ['rm', 'u']);
    }
    const status = await cli(root, ['run', '--rm', '-u', 'app', 'sample', 'sh', '-c', 'id -u; id -g; grep -E "^(CapEff|NoNewPrivs)" /proc/self/status; touch /root/x']);
    expect(status.stdout).toBe('1000\n1000\nCapEff:\t0000000000000000\nNoNewPrivs:\t1\n');
    expect(status.stderr).toMatch(/Permission denied/);
    const rootCaps = await cli(root, ['run', '--rm', 'sample', 'sh', '-c', 'grep CapEff /proc/self/status']);
    expect(rootCaps.stdout).toBe('CapEff:\t00000000a80425fb\n'); // Docker's default set exactly
    expect((await cli(root, ['run', '--rm', '-u', '1000:65534', 'sample', 'id'])).stdout).toMatch(/^uid=1000\(app\) gid=65534\(nogroup\)/);
    await expectNothingLeft();
  });

  it('a setuid-root binary gives no root under noNewPrivileges (the rootfs itself honours setuid)', async () => {
    const bin = join(work, 'euid');
    await writeFile(`${bin}.c`, '#include <stdio.h>\n#include <unistd.h>\nint main(void){printf("%d %d\\n", getuid(), geteuid());return 0;}\n');
    await exec('gcc', ['-static', '-O2', '-o', bin, `${bin}.c`]);
    await cliOk(root, ['run', '-d', '--name', 'suid', '-v', `${work}:/host:ro`, 'sample', 'sh', '-c', 'cp /host/euid /bin/euid && chmod 4755 /bin/euid && touch /ready; while true; do sleep 1; done']);
    try {
      await waitFor('the setuid copy', async () => (await cli(root, ['exec', 'suid', 'ls', '/ready'])).code === 0);
      const c = (await entry('suid'))!;
      // The merged rootfs is mounted without nosuid, so only noNewPrivileges stands in the way.
      const mnt = unionMounts().find((m) => m.mountpoint === join(root, 'containers', c.id, 'merged'))!;
      expect(mnt).toBeDefined();
      const opts = (await readFile('/proc/self/mountinfo', 'utf8')).split('\n').find((l) => l.split(' ')[4] === mnt.mountpoint)!.split(' ')[5]!;
      expect(opts.split(',')).not.toContain('nosuid');
      expect((await cli(root, ['exec', 'suid', 'stat', '-c', '%a %u', '/bin/euid'])).stdout).toBe('4755 0\n');
      expect((await cli(root, ['exec', '-u', 'app', 'suid', '/bin/euid'])).stdout).toBe('1000 1000\n');
      expect((await cli(root, ['exec', 'suid', '/bin/euid'])).stdout).toBe('0 0\n');
    } finally {
      await cliOk(root, ['stop', '-t', '0', 'suid']);
      await cliOk(root, ['rm', 'suid']);
    }
    await expectNothingLeft();
  });

  it('-it gives a real terminal with the window size, for run and exec', async () => {
    const inTerminal = (cmd: string): Promise<{ code: number | null; out: string }> =>
      new Promise((resolve) => {
        const p = spawn('script', ['-qec', `stty cols 91 rows 33; ${cmd}`, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] });
        let out = '';
        p.stdout.on('data', (d: Buffer) => (out += d.toString()));
        p.on('exit', (code) => resolve({ code, out }));
      });
    const base = `${process.execPath} ${LAYERFS} --root ${root}`;
    const r = await inTerminal(`${base} run --rm -it sample sh -c 'tty; stty size; echo $TERM; exit 4'`);
    expect(r.code).toBe(4);
    expect(r.out).toMatch(/\/dev\/pts\/\d+\r?\n33 91\r?\nxterm/);
    const missing = await inTerminal(`${base} run --rm -it sample no-such-command`);
    expect(missing.code).toBe(127);
    expect(missing.out).toMatch(/layerfs: exec: "no-such-command": executable file not found/);
    expect(missing.out).not.toMatch(/runc run failed/);
    await cliOk(root, ['run', '-d', '--name', 'tty', 'sample', 'sh', '-c', 'while true; do sleep 1; done']);
    try {
      const e = await inTerminal(`${base} exec -it tty sh -c 'tty; stty size'`);
      expect(e.code).toBe(0);
      expect(e.out).toMatch(/\/dev\/pts\/\d+\r?\n33 91/);
    } finally {
      await cliOk(root, ['stop', '-t', '0', 'tty']);
      await cliOk(root, ['rm', 'tty']);
    }
    await expectNothingLeft();
  });

  it('seccomp refuses new user namespaces and mounts even to root in the container', async () => {
    const r = await cli(root, ['run', '--rm', 'sample', 'sh', '-c', 'grep "^Seccomp:" /proc/self/status; busybox unshare -U true; echo unshare=$?; busybox mount -t tmpfs none /tmp; echo mount=$?']);
    expect(r.stdout).toBe('Seccomp:\t2\nunshare=1\nmount=1\n');
    expect(r.stderr).toMatch(/unshare\(0x10000000\): Operation not permitted/);
    await expectNothingLeft();
  });

  it('--read-only gives EROFS on the root but keeps /dev/shm and volumes writable', async () => {
    const vol = join(work, 'vol');
    await exec('mkdir', ['-p', vol]);
    const r = await cli(root, ['run', '--rm', '--read-only', '-v', `${vol}:/data`, 'sample', 'sh', '-c', 'touch /app/x; echo $?; touch /dev/shm/ok && echo shm; echo hi > /data/out']);
    expect(r.stderr).toMatch(/Read-only file system/);
    expect(r.stdout).toBe('1\nshm\n');
    expect(await readFile(join(vol, 'out'), 'utf8')).toBe('hi\n');
    const ro = await cli(root, ['run', '--rm', '-v', `${vol}:/data:ro`, 'sample', 'touch', '/data/nope']);
    expect(ro.code).not.toBe(0);
    expect(ro.stderr).toMatch(/Read-only file system/);
    await expectNothingLeft();
  });

  it('--network none has only loopback; --network host sees the host interfaces', async () => {
    const none = await cli(root, ['run', '--rm', 'sample', 'cat', '/proc/net/dev']);
    const ifaces = (text: string): string[] => text.split('\n').slice(2).filter(Boolean).map((l) => l.split(':')[0]!.trim());
    expect(ifaces(none.stdout)).toEqual(['lo']);
    const hostIfaces = ifaces(await readFile('/proc/net/dev', 'utf8'));
    const host = await cli(root, ['run', '--rm', '--network', 'host', 'sample', 'cat', '/proc/net/dev']);
    expect(ifaces(host.stdout).sort()).toEqual(hostIfaces.sort());
    await expectNothingLeft();
  });

  it('--pids-limit and --memory are enforced by the cgroup', async () => {
    const pids = await cli(root, ['run', '--rm', '--pids-limit', '5', 'sample', 'sh', '-c', 'for i in 1 2 3 4 5 6 7 8; do sleep 2 & done; wait']);
    expect(pids.stderr).toMatch(/can't fork|Resource temporarily unavailable/);
    const free = await cli(root, ['run', '--rm', 'sample', 'sh', '-c', 'for i in 1 2 3 4 5 6 7 8; do sleep 0 & done; wait; echo ok']);
    expect(free.stdout).toBe('ok\n');
    // busybox tail -c N holds N bytes in memory: 48 MiB cannot fit in 16 MiB. The hog
    // volunteers as the OOM victim (oom_score_adj 1000). Under a limit this tight the
    // kernel sometimes OOM-kills a second task before the first one's memory is freed
    // (seen in dmesg: busybox, then 4 ms later the reporting sh), so either the shell
    // reports the hog's SIGKILL or the whole container ends killed; never does it finish.
    const hog =
      "head -c 50331648 /dev/zero | sh -c 'echo 1000 > /proc/self/oom_score_adj && exec busybox tail -c 50331648' > /dev/null; echo status=$?";
    const limited = await cli(root, ['run', '--rm', '--memory', '16m', 'sample', 'sh', '-c', hog]);
    const why = `exit ${limited.code}, stdout ${JSON.stringify(limited.stdout)}, stderr ${JSON.stringify(limited.stderr)}`;
    expect(limited.stdout === 'status=137\n' || (limited.code === 137 && limited.stdout === ''), why).toBe(true);
    const unlimited = await cli(root, ['run', '--rm', 'sample', 'sh', '-c', hog]);
    expect(unlimited.stdout).toBe('status=0\n');
    await expectNothingLeft();
  });

  it('forwards SIGTERM to the process and streams stdin with -i', async () => {
    const child = spawn(process.execPath, [LAYERFS, '--root', root, 'run', '--rm', '--name', 'sig', 'sample', 'sh', '-c', 'trap "exit 42" TERM; touch /trapped; while true; do sleep 0.1; done'], { stdio: 'ignore' });
    const code = new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
    await waitFor('the container to run', async () => (await entry('sig'))?.run?.status === 'running');
    // Signal only once the trap is set: pid 1 ignores a SIGTERM it has no handler for.
    await waitFor('the trap', async () => (await cli(root, ['exec', 'sig', 'ls', '/trapped'])).code === 0);
    child.kill('SIGTERM');
    expect(await code).toBe(42);
    const piped = await cli(root, ['run', '--rm', '-i', 'sample', 'sh', '-c', 'wc -l; read x; echo "got $x"'], Buffer.from('1\n2\n3\n'));
    expect(piped.stdout.trim()).toBe('3\ngot');
    const noStdin = await cli(root, ['run', '--rm', 'sample', 'wc', '-c'], Buffer.from('ignored'));
    expect(noStdin.stdout.trim()).toBe('0');
    await expectNothingLeft();
  });

  it('after SIGKILL of the monitor, the next command stops the container, clears its runtime state and mount, and keeps its layer', async () => {
    await cliOk(root, ['run', '-d', '--name', 'k', 'sample', 'sh', '-c', 'echo kept > /root/kept; while true; do sleep 1; done']);
    await waitFor('the write', async () => (await cli(root, ['exec', 'k', 'ls', '/root/kept'])).code === 0);
    const c = (await entry('k'))!;
    process.kill(c.run!.monitor!.pid, 'SIGKILL');
    const next = await cli(root, ['ps', '-a']);
    expect(next.stderr).toMatch(/container k: its monitor process had died; stopped it/);
    expect(next.stdout.split('\n').find((l) => l.endsWith(' k'))).toMatch(/Exited \(137\)/);
    expect(isMounted(join(root, 'containers', c.id, 'merged'))).toBe(false);
    expect(await runtimeIds()).toEqual([]);
    // The container's process is gone, reaped too: not running, and not left a zombie.
    const containerPid = c.run!.containerPid;
    expect(containerPid).toBeGreaterThan(1);
    expect(await processState(containerPid!)).toBe('gone');
    expect(await readFile(join(root, 'containers', c.id, 'upper', 'root', 'kept'), 'utf8')).toBe('kept\n');
    await cliOk(root, ['rm', 'k']);
    await expectNothingLeft();
  });

  it('after SIGKILL of the FUSE process, the monitor kills the container and tears down', async () => {
    await cliOk(root, ['run', '-d', '--name', 'f', 'sample', 'sh', '-c', 'while true; do sleep 1; done']);
    const c = (await entry('f'))!;
    process.kill(c.pid!, 'SIGKILL');
    await waitFor('teardown', async () => (await entry('f'))?.run?.status === 'exited');
    expect(isMounted(join(root, 'containers', c.id, 'merged'))).toBe(false);
    expect(await runtimeIds()).toEqual([]);
    await cliOk(root, ['rm', 'f']);
    await expectNothingLeft();
  });

  it('bad input is one clear line and leaves nothing behind', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['run', '--rm', 'no-such-image', 'true'], /^layerfs: no such image: no-such-image$/],
      [['run', '--rm', '-v', 'nocolon', 'sample', 'true'], /^layerfs: invalid volume specification "nocolon"/],
      [['run', '--rm', '-v', '/definitely/not/here:/x', 'sample', 'true'], /^layerfs: invalid volume specification .*does not exist/],
      [['run', '--rm', '-v', '/tmp:relative', 'sample', 'true'], /^layerfs: invalid volume specification .*must be absolute/],
      [['run', '--rm', '-u', 'nobody-here', 'sample', 'true'], /^layerfs: unable to find user nobody-here/],
      [['run', '--rm', '-u', 'app:nogroup-here', 'sample', 'true'], /^layerfs: unable to find group nogroup-here/],
      [['run', '--rm', '--memory', 'lots', 'sample', 'true'], /^layerfs: invalid --memory/],
      [['run', '--rm', '--network', 'bridge', 'sample', 'true'], /^layerfs: unsupported --network/],
      [['run', '--rm', '--runtime', 'kata', 'sample', 'true'], /^layerfs: unsupported --runtime/],
      [['run', '--rm', '-w', 'relative', 'sample', 'true'], /^layerfs: the working directory/],
      [['exec', 'nobody', 'true'], /^layerfs: no such container: nobody$/],
    ];
    for (const [args, re] of cases) {
      const r = await cli(root, args);
      expect(r.code, args.join(' ')).not.toBe(0);
      expect(r.stderr.trim().split('\n')[0], args.join(' ')).toMatch(re);
      await expectNothingLeft();
    }
    const noRuntime = await runNode(LAYERFS, ['--root', root, 'run', '--rm', 'sample', 'true'], { env: { ...process.env, PATH: '/nonexistent' } });
    expect(noRuntime.code).not.toBe(0);
    expect(noRuntime.stderr.split('\n')[0]).toBe('layerfs: the OCI runtime runc is not installed (not found in PATH)');
    await expectNothingLeft();
    await cliOk(root, ['run', '--name', 'dup', 'sample', 'true']);
    const dup = await cli(root, ['run', '--name', 'dup', 'sample', 'true']);
    expect(dup.stderr).toMatch(/^layerfs: the container name dup is already in use/);
    await cliOk(root, ['rm', 'dup']);
    await writeFile(join(work, 'env'), '# comment\nFROM_FILE=1\nOVER=file\n');
    const env = await cli(root, ['run', '--rm', '--env-file', join(work, 'env'), '-e', 'OVER=flag', '-e', 'PATH=/bin:/sbin', 'sample', 'env']);
    expect(env.stdout.split('\n')).toEqual(expect.arrayContaining(['FROM_FILE=1', 'OVER=flag', 'PATH=/bin:/sbin']));
    await expectNothingLeft();
  });
});
