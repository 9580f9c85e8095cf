/**
 * The CLI as a Docker user meets it (issue 16), through the built `layerfs` on real
 * stores, mounts and runc: exit codes, parse errors, --version, store opening per verb,
 * the run/exec/mount bugs and messages, the lifecycle verbs, ps/images/inspect with
 * --filter and --format, one short id per layer, spool cleanup and prune, install-bin.
 */
import { execFile, spawn } from 'node:child_process';
import { access, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { STORE_USE } from '../../src/cli/store-use.js';
import { LAYERFS, LAYERFS_OVERLAY, REPO, cli, cliOk, runNode } from '../helpers/cli.js';
import { unionMounts } from '../helpers/mounts.js';
import { tempDir } from '../helpers/temp.js';

const exec = promisify(execFile);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Runs a shell command line under script(1), so the CLI has a terminal, with script's own
 * stdin at EOF (as `script … </dev/null`): script then writes a NUL into the terminal,
 * which a runtime given our stdin (-t without -i) echoed back as "^@" before the output.
 */
function inTerminal(cmd: string): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const p = spawn('script', ['-qec', cmd, '/dev/null'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString('latin1')));
    p.on('exit', (code) => resolve({ code, out }));
  });
}

describe.skipIf(!inject('canMount'))('a Docker user’s CLI', () => {
  let work: string;
  let root: string;

  const waitFor = async (what: string, cond: () => Promise<boolean>): Promise<void> => {
    for (let i = 0; i < 600; i++) {
      if (await cond()) return;
      await sleep(50);
    }
    throw new Error(`timed out waiting for ${what}`);
  };
  const containerDirs = async (): Promise<string[]> => readdir(join(root, 'containers')).catch(() => []);
  const state = async (name: string): Promise<string> => (await cliOk(root, ['inspect', '--type', 'container', '-f', '{{.State.Status}}', name])).trim();

  beforeAll(async () => {
    work = await tempDir();
    root = join(work, 'store');
    await exec(join(REPO, 'scripts', 'make-sample-image'), [join(work, 'oci')]);
    await cliOk(root, ['load', '-i', join(work, 'oci'), '--name', 'sample']);
  });

  afterAll(async () => {
    for (const name of (await cli(root, ['ps', '-a', '--format', '{{.Names}}'])).stdout.split('\n').filter(Boolean)) {
      await cli(root, ['rm', '-f', name]);
    }
  });

  it("exit codes: usage 2 with one line and a pointer to the verb's help, 125 for run, 1 for failures; --version", async () => {
    const bad = await cli(root, ['images', '--bogus']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toBe("layerfs: unknown flag: --bogus\nSee 'layerfs images --help'.\n");
    const badRun = await cli(root, ['run', '--bogus', 'sample']);
    expect(badRun.code).toBe(125);
    expect(badRun.stderr).toBe("layerfs: unknown flag: --bogus\nSee 'layerfs run --help'.\n");
    const nested = await cli(root, ['system', 'df', '--nope']);
    expect([nested.code, nested.stderr]).toEqual([2, "layerfs: unknown flag: --nope\nSee 'layerfs system df --help'.\n"]);
    const noVerb = await cli(root, ['nosuch']);
    expect([noVerb.code, noVerb.stderr]).toEqual([2, "layerfs: unknown command 'nosuch'\nSee 'layerfs --help'.\n"]);
    const badValue = await cli(root, ['stop', '-t', 'soon', 'x']);
    expect([badValue.code, badValue.stderr.split('\n')[0]]).toEqual([2, 'layerfs: invalid --time "soon": expected seconds']);
    const missing = await cli(root, ['rm', 'no-such-container']);
    expect([missing.code, missing.stderr]).toEqual([1, 'layerfs: no such container: no-such-container\n']);
    const noImage = await cli(root, ['run', '--rm', 'no-such-image']);
    expect(noImage.code).toBe(125);
    const pkg = JSON.parse(await readFile(join(REPO, 'package.json'), 'utf8')) as { version: string };
    for (const flag of ['--version', '-v']) {
      const v = await runNode(LAYERFS, [flag]);
      expect([v.code, v.stdout]).toEqual([0, `layerfs version ${pkg.version}\n`]);
    }
  });

  it('a mistyped --root is an error for verbs that only read or change a store, and no store appears there', async () => {
    const typo = join(work, 'no-store-here');
    for (const args of [['images'], ['ps', '-a'], ['system', 'df'], ['rmi', 'x'], ['inspect', 'x']]) {
      const r = await cli(typo, args);
      expect(r.code, args.join(' ')).toBe(1);
      expect(r.stderr, args.join(' ')).toMatch(new RegExp(`^layerfs: no layerfs store at ${typo}\nhint: `));
      await expect(access(typo), args.join(' ')).rejects.toThrow();
    }
    // Verbs that add images make the store.
    const made = join(work, 'new-store');
    await cliOk(made, ['load', '-i', join(work, 'oci'), '--name', 'sample']);
    expect((await cliOk(made, ['images', '-q'])).trim()).toMatch(/^[0-9a-f]{12}$/);
    // login/logout never touch a store.
    const login = await cli(join(work, 'also-none'), ['logout', '127.0.0.1:1']);
    expect(login.stderr).not.toMatch(/no layerfs store/);
    await expect(access(join(work, 'also-none'))).rejects.toThrow();
  });

  it('every verb of `layerfs --help` is classified for store opening', async () => {
    const help = await cliOk(root, ['--help']);
    const verbs = [...help.split('Commands:')[1]!.matchAll(/^ {2}([a-z-]+)/gm)].map((m) => m[1]!).filter((v) => v !== 'help');
    expect(verbs.length).toBeGreaterThan(30);
    const groups = ['system', 'builder'];
    for (const group of groups) {
      const nested = (await cliOk(root, [group, '--help'])).split('Commands:')[1]!;
      for (const sub of [...nested.matchAll(/^ {2}([a-z-]+)/gm)].map((m) => m[1]!).filter((v) => v !== 'help')) verbs.push(`${group} ${sub}`);
    }
    for (const v of verbs.filter((x) => !groups.includes(x))) expect(Object.keys(STORE_USE), v).toContain(v);
  });

  it('a failed exec does not become the container’s exit status; runtime errors are printed once', async () => {
    await cliOk(root, ['run', '-d', '--name', 'ex', 'sample', 'sh', '-c', 'while [ ! -f /go ]; do sleep 0.1; done; exit 3']);
    const failed = await cli(root, ['exec', 'ex', 'no-such-command']);
    expect(failed.code).toBe(127);
    expect(failed.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^layerfs: .*"no-such-command": executable file not found/)]);
    await cliOk(root, ['exec', 'ex', 'touch', '/go']);
    expect((await cliOk(root, ['wait', 'ex'])).trim()).toBe('3');
    expect(await state('ex')).toBe('exited');
    expect((await cliOk(root, ['inspect', '-f', '{{.State.ExitCode}} {{json .State.Error}}', 'ex'])).trim()).toBe('3 ""');
    await cliOk(root, ['rm', 'ex']);
    // crun prints its error on stderr and logs it: one line either way (it may not start here at all).
    const crun = await cli(root, ['run', '--rm', '--runtime', 'crun', 'sample', 'no-such-command']);
    expect(crun.code).toBeGreaterThanOrEqual(125);
    expect(crun.stderr.trim().split('\n')).toHaveLength(1);
    expect(crun.stderr).toMatch(/^layerfs: /);
  });

  it('-t without -i: a terminal, no stdin, and no stray NUL before the output (run and exec)', async () => {
    const base = `${process.execPath} ${LAYERFS} --root ${root}`;
    const r = await inTerminal(`${base} run --rm -t sample sh -c 'tty; echo hi'`);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^\/dev\/pts\/\d+\r\nhi\r\n$/);
    await cliOk(root, ['run', '-d', '--name', 'tt', 'sample', 'sh', '-c', 'while true; do sleep 1; done']);
    try {
      const e = await inTerminal(`${base} exec -t tt echo hi`);
      expect(e.code).toBe(0);
      expect(e.out).toBe('hi\r\n');
    } finally {
      await cliOk(root, ['rm', '-f', 'tt']);
    }
  });

  it('the runtime’s mount stubs (/etc/hosts, /proc…) stay out of diff and commit', async () => {
    await cliOk(root, ['run', '--name', 'stubs', 'sample', 'true']);
    expect(await cliOk(root, ['diff', 'stubs'])).toBe('');
    const committed = JSON.parse(await cliOk(root, ['commit', '--json', 'stubs', 'stubs:1'])) as { Layer: { entries: number } };
    expect(committed.Layer.entries).toBe(0);
    // A real change still shows, and /etc stays unchanged beside it.
    await cliOk(root, ['rm', 'stubs']);
    await cliOk(root, ['run', '--name', 'stubs', 'sample', 'sh', '-c', 'echo x > /root/new']);
    expect(await cliOk(root, ['diff', 'stubs'])).toBe('C /root\nA /root/new\n');
    await cliOk(root, ['rm', 'stubs']);
    await cliOk(root, ['rmi', 'stubs:1']);
  });

  it('mount onto a missing or non-empty directory says so and leaves no container', async () => {
    const full = join(work, 'full');
    await mkdir(full);
    await writeFile(join(full, 'x'), 'x');
    const before = await containerDirs();
    const r = await cli(root, ['mount', 'sample', full]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`layerfs: mount point ${full} is not empty\nhint: mount on an empty directory: the mount would hide what it holds\n`);
    const gone = await cli(root, ['mount', 'sample', join(work, 'nowhere')]);
    expect(gone.stderr.split('\n')[0]).toBe(`layerfs: mount point ${join(work, 'nowhere')} does not exist`);
    expect(await containerDirs()).toEqual(before);
    expect((await cliOk(root, ['ps', '-a', '-q'])).trim()).toBe('');
  });

  it('messages: rm of a running container, events of an unknown name, a bad --ci threshold refused before the analysis', async () => {
    await cliOk(root, ['run', '-d', '--name', 'busy', 'sample', 'sh', '-c', 'while true; do sleep 1; done']);
    const rm = await cli(root, ['rm', 'busy']);
    expect([rm.code, rm.stderr]).toEqual([1, 'layerfs: container busy is running\nhint: stop it first (layerfs stop busy), or use rm --force\n']);
    expect((await cliOk(root, ['rm', '-f', 'busy'])).trim()).toBe('busy');
    expect(await containerDirs()).toEqual([]);
    const ev = await cli(root, ['events', 'nosuch']);
    expect(ev.stderr.split('\n')[0]).toBe('layerfs: no such container: nosuch');
    const ci = await cli(root, ['layers', 'sample', '--ci', '--highest-wasted-bytes', '12parsecs']);
    expect(ci.code).toBe(2);
    expect(ci.stdout).toBe('');
    expect(ci.stderr).toMatch(/^layerfs: invalid --highest-wasted-bytes: /);
  });

  it('lifecycle: start [-a], restart, kill, wait, top, rename', async () => {
    expect((await cli(root, ['run', '--name', 'life', 'sample', 'sh', '-c', 'echo run >> /root/log; exit 5'])).code).toBe(5);
    expect(await state('life')).toBe('exited');
    // start -a: attached, the same writable layer, the command's exit code.
    const again = await cli(root, ['start', '-a', 'life']);
    expect(again.code).toBe(5);
    expect(await cliOk(root, ['exec', 'life', 'true']).catch((e: Error) => e.message)).toMatch(/not running/);
    // Detached start and logs.
    await cliOk(root, ['rm', 'life']);
    // pid 1 takes only the signals it handles (SIGKILL aside): the trap makes TERM end it.
    await cliOk(root, ['run', '-d', '--name', 'life', 'sample', 'sh', '-c', 'trap "exit 7" TERM; echo started; cat /root/log 2>/dev/null; echo x >> /root/log; while true; do sleep 1; done & wait']);
    expect(await state('life')).toBe('running');
    expect((await cliOk(root, ['top', 'life'])).split('\n')[0]).toMatch(/^UID\s+PID\s+PPID\s+C\s+STIME\s+TTY\s+TIME\s+CMD$/);
    expect(await cliOk(root, ['top', 'life', '-o', 'pid,args'])).toMatch(/sleep 1/);
    expect((await cliOk(root, ['kill', '-s', 'TERM', 'life'])).trim()).toBe('life');
    expect((await cliOk(root, ['wait', 'life'])).trim()).toBe('7');
    expect((await cliOk(root, ['start', 'life'])).trim()).toBe('life');
    expect(await state('life')).toBe('running');
    await cliOk(root, ['rename', 'life', 'life2']);
    expect((await cli(root, ['rename', 'life2', 'bad name'])).stderr).toMatch(/^layerfs: invalid container name "bad name"/);
    expect((await cliOk(root, ['restart', '-t', '0', 'life2'])).trim()).toBe('life2');
    expect(await state('life2')).toBe('running');
    expect((await cliOk(root, ['kill', 'life2'])).trim()).toBe('life2');
    expect((await cliOk(root, ['wait', 'life2'])).trim()).toBe('137');
    const kbad = await cli(root, ['kill', 'life2']);
    expect([kbad.code, kbad.stderr]).toEqual([1, 'layerfs: container life2 is not running\n']);
    expect((await cli(root, ['kill', '-s', 'NOPE', 'life2'])).code).toBe(2);
    // The writable layer lived through all of it: one line per start (run, start, restart, start).
    await cliOk(root, ['start', 'life2']);
    await waitFor('the fourth start', async () => (await cli(root, ['exec', 'life2', 'cat', '/root/log'])).stdout === 'x\nx\nx\nx\n');
    expect(await cliOk(root, ['logs', 'life2'])).toBe('started\nstarted\nx\nstarted\nx\nx\nstarted\nx\nx\nx\n');
    await cliOk(root, ['rm', '-f', 'life2']);
    expect(await containerDirs()).toEqual([]);
  });

  it('ps shows live containers, -a all; --filter, -q, --format; images --filter/--format; inspect of containers', async () => {
    const mnt = join(work, 'psmnt');
    await mkdir(mnt);
    await cliOk(root, ['run', '--name', 'done0', 'sample', 'true']);
    expect((await cli(root, ['run', '--name', 'done3', 'sample', 'sh', '-c', 'exit 3'])).code).toBe(3);
    await cliOk(root, ['run', '-d', '--name', 'up', 'sample', 'sh', '-c', 'while true; do sleep 1; done']);
    await cliOk(root, ['mount', '--name', 'mnt', 'sample', mnt]);
    try {
      const names = async (args: string[]): Promise<string[]> => (await cliOk(root, ['ps', ...args, '--format', '{{.Names}}'])).split('\n').filter(Boolean);
      expect(await names([])).toEqual(['up', 'mnt']);
      expect(await names(['-a'])).toEqual(['done0', 'done3', 'up', 'mnt']);
      expect(await names(['--filter', 'status=exited'])).toEqual(['done0', 'done3']);
      expect(await names(['--filter', 'exited=3'])).toEqual(['done3']);
      expect(await names(['-a', '--filter', 'name=done', '--filter', 'status=exited', '--filter', 'exited=0'])).toEqual(['done0']);
      expect(await names(['--filter', 'ancestor=sample', '--filter', 'status=mounted'])).toEqual(['mnt']);
      const ids = (await cliOk(root, ['ps', '-a', '-q'])).split('\n').filter(Boolean);
      expect(ids).toHaveLength(4);
      for (const id of ids) expect(id).toMatch(/^[0-9a-f]{12}$/);
      const table = (await cliOk(root, ['ps', '--format', 'table {{.Names}}\\t{{.State}}\\t{{.Mountpoint}}'])).split('\n');
      expect(table[0]).toMatch(/^NAMES\s+STATE\s+MOUNTPOINT$/);
      expect(table[2]).toMatch(new RegExp(`^mnt\\s+mounted\\s+${mnt}$`));
      const json = (await cliOk(root, ['ps', '--format', '{{json .}}', '--filter', 'name=up'])).trim();
      expect(JSON.parse(json)).toMatchObject({ Names: 'up', State: 'running', Image: 'sample', Command: '"sh -c while true; d…"', Status: expect.stringMatching(/^Up /) });
      const badFilter = await cli(root, ['ps', '--filter', 'color=red']);
      expect([badFilter.code, badFilter.stderr.split('\n')[0]]).toEqual([2, 'layerfs: invalid --filter "color=red": the filters are id, name, status, ancestor and exited']);
      const badFormat = await cli(root, ['ps', '--format', '{{.Names']);
      expect([badFormat.code, badFormat.stderr]).toEqual([2, 'layerfs: invalid --format: unclosed action {{\n']);

      // inspect: a container by name, docker's shape, with --format.
      const [info] = JSON.parse(await cliOk(root, ['inspect', 'done3'])) as Array<Record<string, any>>;
      expect(info).toMatchObject({ Name: '/done3', Path: 'sh', Args: ['-c', 'exit 3'], State: { Status: 'exited', Running: false, ExitCode: 3 }, Config: { Image: 'sample' }, HostConfig: { Runtime: 'runc', AutoRemove: false } });
      expect(info!.GraphDriver.Data.UpperDir).toBe(join(root, 'containers', info!.Id, 'upper'));
      expect((await cliOk(root, ['inspect', '-f', '{{.State.Status}} {{.Mountpoint}}', 'mnt'])).trim()).toBe(`mounted ${mnt}`);
      expect((await cliOk(root, ['inspect', '--type', 'image', '-f', '{{index .RepoTags 0}}', 'sample'])).trim()).toBe('sample:latest');
      expect((await cli(root, ['inspect', '--type', 'container', 'sample'])).stderr).toBe('layerfs: no such container: sample\n');

      // images --filter / --format.
      await cliOk(root, ['tag', 'sample', 'other/thing:2']);
      const imgs = async (args: string[]): Promise<string> => cliOk(root, ['images', ...args]);
      expect((await imgs(['--filter', 'reference=other/*', '--format', '{{.Repository}}:{{.Tag}}'])).trim()).toBe('other/thing:2');
      expect((await imgs(['--filter', 'reference=sam*', '--filter', 'reference=other/*:2', '--format', '{{.Repository}}'])).trim().split('\n').sort()).toEqual(['other/thing', 'sample']);
      expect((await imgs(['--filter', 'dangling=true', '-q'])).trim()).toBe('');
      const row = JSON.parse((await imgs(['--format', 'json', 'sample'])).trim()) as Record<string, string>;
      expect(row).toMatchObject({ Repository: 'sample', Tag: 'latest', ID: expect.stringMatching(/^[0-9a-f]{12}$/), Size: expect.stringMatching(/B$/) });
      expect((await imgs(['--format', 'table {{.Repository}}\\t{{.Tag}}', 'sample'])).split('\n')[0]).toMatch(/^REPOSITORY\s+TAG$/);
      expect((await cli(root, ['images', '--filter', 'label=x'])).code).toBe(2);
      await cliOk(root, ['rmi', 'other/thing:2']);
    } finally {
      for (const n of ['done0', 'done3', 'up', 'mnt']) await cli(root, ['rm', '-f', n]);
    }
  });

  it('one short id per layer: load, layers, explain, inspect and pull progress all show its DiffID’s', async () => {
    const r2 = join(work, 'ids-store');
    const load = await cliOk(r2, ['load', '-i', join(work, 'oci'), '--name', 'sample']);
    const loaded = [...load.matchAll(/^([0-9a-f]{12}): Loaded$/gm)].map((m) => m[1]!);
    expect(loaded).toHaveLength(3);
    const [info] = JSON.parse(await cliOk(r2, ['inspect', 'sample'])) as Array<{ RootFS: { Layers: string[] }; Store: { Layers: Array<{ ID: string }> } }>;
    expect(info!.RootFS.Layers.map((d) => d.slice(7, 19))).toEqual(loaded);
    expect(info!.Store.Layers.map((l) => l.ID)).toEqual(loaded);
    const layers = await cliOk(r2, ['layers', 'sample', '--no-interactive']);
    for (const id of loaded) expect(layers).toContain(id);
    const explain = await cliOk(r2, ['explain', 'sample', '/etc/motd']);
    expect(loaded.some((id) => explain.includes(id))).toBe(true);
  });

  it('a truncated archive on stdin leaves no spool; prune reports what the cleanup reclaimed', async () => {
    const tar = (await exec('tar', ['-C', join(work, 'oci'), '-cf', '-', '.'], { encoding: 'buffer', maxBuffer: 64 << 20 })).stdout;
    const gz = gzipSync(tar);
    const r = await cli(root, ['load'], gz.subarray(0, Math.floor(gz.length / 2)));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/truncated|corrupt/);
    expect(await readdir(join(root, 'tmp'))).toEqual([]);
    // What an interrupted load leaves (a killed process cannot clean up) is reclaimed by prune, and counted.
    await writeFile(join(root, 'tmp', 'tmp-999999-abcdef.tar'), Buffer.alloc(3 << 20, 1));
    const pruned = await cliOk(root, ['prune']);
    const mb = Number(/Total reclaimed space: ([\d.]+)MB/.exec(pruned)?.[1]);
    expect(mb).toBeGreaterThanOrEqual(3.1);
    expect(await readdir(join(root, 'tmp'))).toEqual([]);
  });

  it('install-bin puts layerfs and layerfs-overlay on PATH (temp prefix); the bin files are executable', async () => {
    for (const f of [LAYERFS, LAYERFS_OVERLAY]) expect((await stat(f)).mode & 0o111).toBe(0o111);
    const prefix = join(work, 'prefix');
    const first = await exec(join(REPO, 'scripts', 'install-bin'), ['--prefix', prefix]);
    expect(first.stdout).toMatch(/layerfs ->/);
    for (const b of ['layerfs', 'layerfs-overlay']) expect((await stat(join(prefix, 'bin', b))).mode & 0o777).toBe(0o755);
    const env = { ...process.env, PATH: `${join(prefix, 'bin')}:${process.env.PATH}` };
    const { stdout } = await exec('layerfs', ['--root', root, 'images', '--format', '{{.Repository}}'], { env });
    expect(stdout).toBe('sample\n');
    await expect(exec('layerfs-overlay', ['-o', 'lowerdir=/nonexistent', join(work, 'x')], { env })).rejects.toMatchObject({ code: expect.any(Number) });
    // Idempotent: a second run changes nothing.
    expect((await exec(join(REPO, 'scripts', 'install-bin'), ['--prefix', prefix])).stdout).toBe('');
    // The bin files run as programs straight from a checkout (mount helpers exec them).
    expect((await exec(LAYERFS, ['--version'])).stdout).toMatch(/^layerfs version /);
  });

  it('leaves no mounts of its own', () => {
    expect(unionMounts().filter((m) => m.mountpoint.startsWith(work))).toEqual([]);
  });
});
