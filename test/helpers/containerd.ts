/**
 * A real containerd (Debian's 1.6) for one test file, with everything in a temp dir: its
 * root, state, gRPC/ttrpc sockets and config.toml, whose `proxy_plugins.layerfs` points at
 * a `layerfs snapshotter` this helper starts too. `layerfs-overlay` is put on containerd's
 * (and ctr's) PATH through a wrapper in `<work>/bin`, as mount.fuse3 looks it up there.
 *
 * `teardown()` ends what the file started — tasks, containerd, the runc shims serving
 * this containerd (found by their -address argument, ended by pid), the snapshotter — and
 * detaches any mount left under the temp dir, even after a failed test.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { openSync, closeSync } from 'node:fs';
import { readFile, readdir, writeFile, mkdir } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { LAYERFS, writeOverlayWrapper, type CliResult } from './cli.js';
import { forceUnmount, listMounts } from './mounts.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** One containerd + layerfs snapshotter pair. */
export interface ContainerdEnv {
  work: string;
  /** containerd's gRPC socket (ctr -a). */
  address: string;
  /** The snapshotter's socket. */
  snapshotterAddress: string;
  /** The layerfs store root the snapshotter keeps its state in (`<root>/snapshotter`). */
  storeRoot: string;
  /** PATH for containerd and ctr (the layerfs-overlay wrapper first). */
  path: string;
  ctr(args: string[], opts?: { timeoutMs?: number }): Promise<CliResult>;
  ctrOk(args: string[]): Promise<string>;
  startSnapshotter(): Promise<void>;
  /** Stops the snapshotter with `signal` and waits for it to exit. */
  stopSnapshotter(signal?: NodeJS.Signals): Promise<void>;
  startContainerd(): Promise<void>;
  stopContainerd(): Promise<void>;
  teardown(): Promise<void>;
}

function waitForSocket(path: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const attempt = (): void => {
      const s = connect(path);
      s.once('connect', () => {
        s.destroy();
        resolve();
      });
      s.once('error', () => {
        s.destroy();
        if (Date.now() > deadline) reject(new Error(`nothing listens on ${path}`));
        else setTimeout(attempt, 50);
      });
    };
    attempt();
  });
}

async function stopChild(child: ChildProcess | undefined, signal: NodeJS.Signals, timeoutMs = 15_000): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill(signal);
  const timer = sleep(timeoutMs).then(() => 'timeout');
  if ((await Promise.race([exited.then(() => 'ok'), timer])) === 'timeout') {
    child.kill('SIGKILL');
    await exited;
  }
}

/** Pids of processes whose command line contains `needle` (the shims of our containerd). */
async function pidsWithArg(needle: string): Promise<number[]> {
  const out: number[] = [];
  for (const d of await readdir('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    const cmd = await readFile(`/proc/${d}/cmdline`, 'utf8').catch(() => '');
    if (cmd.split('\0').includes(needle)) out.push(Number(d));
  }
  return out;
}

/** Writes the config, starts the snapshotter and containerd; `mountProgram` as `layerfs snapshotter --mount-program`. */
export async function startContainerdEnv(work: string, opts: { mountProgram?: string } = {}): Promise<ContainerdEnv> {
  const address = join(work, 'containerd.sock');
  const snapshotterAddress = join(work, 'layerfs-snapshotter.sock');
  const storeRoot = join(work, 'layerfs');
  const bin = join(work, 'bin');
  await mkdir(bin, { recursive: true });
  await writeOverlayWrapper(join(bin, 'layerfs-overlay'));
  const path = `${bin}:${process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin'}`;
  const config = join(work, 'containerd.toml');
  await writeFile(
    config,
    [
      'version = 2',
      `root = "${join(work, 'containerd-root')}"`,
      `state = "${join(work, 'containerd-state')}"`,
      // CRI needs CNI and more; these tests talk to containerd through ctr only.
      'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
      '[grpc]',
      `  address = "${address}"`,
      '[ttrpc]',
      `  address = "${address}.ttrpc"`,
      '[plugins."io.containerd.internal.v1.opt"]',
      `  path = "${join(work, 'containerd-opt')}"`,
      '[proxy_plugins]',
      '  [proxy_plugins.layerfs]',
      '    type = "snapshot"',
      `    address = "${snapshotterAddress}"`,
      '',
    ].join('\n'),
  );
  const env = { ...process.env, PATH: path };
  let containerd: ChildProcess | undefined;
  let snapshotter: ChildProcess | undefined;

  const logFd = (name: string): number => openSync(join(work, name), 'a');
  const ctr = (args: string[], o: { timeoutMs?: number } = {}): Promise<CliResult> =>
    new Promise((resolve) => {
      const p = spawn('ctr', ['-a', address, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      p.stdout.on('data', (d) => (stdout += d));
      p.stderr.on('data', (d) => (stderr += d));
      const timer = setTimeout(() => p.kill('SIGKILL'), o.timeoutMs ?? 110_000);
      p.on('close', (code) => {
        clearTimeout(timer);
        resolve({ code: code ?? -1, stdout, stderr });
      });
    });

  const self: ContainerdEnv = {
    work,
    address,
    snapshotterAddress,
    storeRoot,
    path,
    ctr,
    async ctrOk(args) {
      const r = await ctr(args);
      if (r.code !== 0) throw new Error(`ctr ${args.join(' ')} exited ${r.code}:\n${r.stderr}${r.stdout}`);
      return r.stdout;
    },
    async startSnapshotter() {
      const fd = logFd('snapshotter.log');
      snapshotter = spawn(process.execPath, [LAYERFS, 'snapshotter', '--root', storeRoot, '--address', snapshotterAddress, ...(opts.mountProgram ? ['--mount-program', opts.mountProgram] : [])], {
        env,
        stdio: ['ignore', fd, fd],
      });
      closeSync(fd);
      await waitForSocket(snapshotterAddress, 20_000);
      // A running containerd redials a restarted snapshotter with gRPC's backoff (at most
      // 3 s for proxy plugins); until then it answers Unavailable.
      if (containerd && containerd.exitCode === null) {
        for (let i = 0; (await ctr(['snapshots', '--snapshotter', 'layerfs', 'ls'], { timeoutMs: 10_000 })).code !== 0; i++) {
          if (i > 100) throw new Error('containerd did not reconnect to the restarted snapshotter');
          await sleep(200);
        }
      }
    },
    async stopSnapshotter(signal = 'SIGTERM') {
      await stopChild(snapshotter, signal);
    },
    async startContainerd() {
      const fd = logFd('containerd.log');
      containerd = spawn('containerd', ['--config', config], { env, stdio: ['ignore', fd, fd] });
      closeSync(fd);
      await waitForSocket(address, 20_000);
    },
    async stopContainerd() {
      await stopChild(containerd, 'SIGTERM');
    },
    async teardown() {
      if (containerd && containerd.exitCode === null) {
        const tasks = await ctr(['tasks', 'ls', '-q'], { timeoutMs: 10_000 });
        for (const id of tasks.stdout.split('\n').filter(Boolean)) {
          await ctr(['tasks', 'kill', '-s', 'SIGKILL', id], { timeoutMs: 10_000 });
          await ctr(['tasks', 'rm', '-f', id], { timeoutMs: 10_000 });
        }
        const containers = await ctr(['containers', 'ls', '-q'], { timeoutMs: 10_000 });
        for (const id of containers.stdout.split('\n').filter(Boolean)) await ctr(['containers', 'rm', id], { timeoutMs: 10_000 });
      }
      await stopChild(containerd, 'SIGTERM');
      for (const pid of await pidsWithArg(address)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* already gone */
        }
      }
      await stopChild(snapshotter, 'SIGTERM');
      // Deepest first, so a mount inside another is detached before its parent.
      const left = listMounts().filter((m) => m.mountpoint.startsWith(work + '/')).map((m) => m.mountpoint);
      for (const m of [...new Set(left)].sort((a, b) => b.length - a.length)) await forceUnmount(m);
    },
  };
  await self.startSnapshotter();
  await self.startContainerd();
  return self;
}

/**
 * Mounts what `ctr snapshots mounts` describes at `dir` the way containerd's mount
 * package does: `fuse3.X` through `mount.fuse3 SOURCE DIR -o … -t X`, other types with mount(8).
 */
export async function mountSpecs(dir: string, mounts: Array<{ Type: string; Source: string; Options: string[] }>, path: string): Promise<void> {
  for (const m of mounts) {
    const args = m.Type.startsWith('fuse3.')
      ? ['mount.fuse3', m.Source, dir, ...m.Options.flatMap((o) => ['-o', o]), '-t', m.Type.slice('fuse3.'.length)]
      : ['mount', '-t', m.Type, m.Source, dir, '-o', m.Options.join(',')];
    await new Promise<void>((resolve, reject) => {
      const p = spawn(args[0]!, args.slice(1), { env: { ...process.env, PATH: path }, stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      p.stderr.on('data', (d) => (err += d));
      p.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`${args.join(' ')}: ${err}`))));
    });
  }
}
