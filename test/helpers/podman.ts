/**
 * Debian's podman (4.3) with everything of its own in a temp dir, one containers-storage
 * store per overlay flavour: `layerfs` (mount_program = this checkout's layerfs-overlay,
 * through a wrapper that pins this node), `fuse-overlayfs` (mount_program =
 * /usr/bin/fuse-overlayfs, the program layerfs-overlay stands in for) and `overlay` (the
 * kernel's overlayfs, no mount program: the oracle). containers.conf and storage.conf
 * come from CONTAINERS_CONF / CONTAINERS_STORAGE_CONF, so neither the machine's config
 * nor /var/lib/containers/storage is used. podman 4.3 still opens the shared blob-info
 * cache (/var/lib/containers/cache) when it copies an image (pull, commit), as buildah and
 * skopeo do; nothing can move it in that version.
 *
 * The runtime is runc (crun 1.8 refuses this machine's hybrid cgroups), cgroups are
 * podman's own (no systemd), events go to a file, and nofile and nproc are capped below what the
 * machine allows (podman asks for 1048576 by default).
 */
import { execFile, execFileSync } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeOverlayWrapper, type CliResult } from './cli.js';
import { forceUnmount, listMounts, type MountEntry } from './mounts.js';
import { parseMountinfo } from '../../src/sys/mount-table.js';
import { userEnv, type TestUser } from './rootless.js';
import { UserFuseNamespace } from './user-fuse-ns.js';

export const FLAVOURS = ['layerfs', 'fuse-overlayfs', 'overlay'] as const;
export type Flavour = (typeof FLAVOURS)[number];

export function hasPodman(): boolean {
  try {
    execFileSync('podman', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export interface PodmanEnv {
  /** Where the stores, config and wrapper live (short: see startPodmanEnv). */
  work: string;
  /** `podman ARGS` against the flavour's store; never rejects. */
  podman(flavour: Flavour, args: string[], timeoutMs?: number): Promise<CliResult>;
  /** The same, rejecting with stderr unless it exits 0; resolves to stdout. */
  podmanOk(flavour: Flavour, args: string[], timeoutMs?: number): Promise<string>;
  /** What layerfs-overlay's mount processes logged about this env's stores ("serving …" lines). */
  layerfsLog(): Promise<string>;
  /** `buildah ARGS` against the same store (same storage.conf), rejecting unless it exits 0. */
  buildahOk(flavour: Flavour, args: string[], timeoutMs?: number): Promise<string>;
  /**
   * Container mounts (FUSE and overlay) under `work` now, in this process's mount
   * namespace and (rootless) in rootless podman's own. Not the bind mount
   * containers-storage makes of its own `overlay` folder (made private), which stays.
   */
  mountsLeft(): Promise<string[]>;
  /** Removes every container of every store, ends what it started, detaches what is mounted, removes `work`. */
  teardown(): Promise<void>;
}

/**
 * The stores live in a fresh `/tmp/lfpm-XXXXXX`, not under the test's (long) temp dir:
 * with a run root path of ~50 characters or more, podman 4.3 waits its full 20 s conmon
 * timeout for every attached container to exit (measured: a 43-character path 0.9 s, a
 * 56-character one 20.9 s), whatever the storage driver. `teardown` removes it.
 *
 * With `user`, podman runs rootless as that test user (subordinate ids from /etc/subuid)
 * inside a private mount namespace with a 0666 /dev/fuse (helpers/user-fuse-ns.ts):
 * rootless podman then runs the mount program as uid 0 of its own user namespace, where
 * FUSE may be mounted directly. HOME and XDG_RUNTIME_DIR are folders of `work`; the
 * stores are `rootless_storage_path` (a rootless podman ignores graphroot).
 */
export async function startPodmanEnv(opts: { user?: TestUser } = {}): Promise<PodmanEnv> {
  const user = opts.user;
  const work = await mkdtemp('/tmp/lfpm-');
  await chmod(work, 0o755);
  const bin = join(work, 'bin');
  const tmp = join(work, 'tmp');
  await mkdir(bin, { recursive: true });
  await mkdir(tmp, { recursive: true });
  const wrapper = join(bin, 'layerfs-overlay');
  await writeOverlayWrapper(wrapper);
  const containersConf = join(work, 'containers.conf');
  const hard = (flag: string): number => Math.min(Number(execFileSync('bash', ['-c', `ulimit -H${flag}`]).toString().trim()) || 1024, 65536);
  await writeFile(
    containersConf,
    [
      '[containers]',
      // (runc could not set nproc to 65536 here, under a hard limit of 96367; 4096 it can.)
      `default_ulimits = ["nofile=${hard('n')}:${hard('n')}", "nproc=${Math.min(hard('u'), 4096)}:${Math.min(hard('u'), 4096)}"]`,
      '[engine]',
      'runtime = "runc"',
      'cgroup_manager = "cgroupfs"',
      'events_logger = "file"',
      `events_logfile_path = "${join(work, 'events.log')}"`,
      `image_copy_tmp_dir = "${tmp}"`,
      '[network]',
      `network_config_dir = "${join(work, 'net')}"`,
      '',
    ].join('\n'),
  );
  const mountProgram: Record<Flavour, string | undefined> = { layerfs: wrapper, 'fuse-overlayfs': '/usr/bin/fuse-overlayfs', overlay: undefined };
  const storageConf = (f: Flavour): string => join(work, `storage-${f}.conf`);
  const short: Record<Flavour, string> = { layerfs: 'lf', 'fuse-overlayfs': 'fo', overlay: 'ov' };
  const dir = (f: Flavour, sub: string): string => join(work, short[f], sub);
  for (const f of FLAVOURS) {
    const lines = ['[storage]', 'driver = "overlay"', `graphroot = "${dir(f, 'root')}"`, `runroot = "${dir(f, 'run')}"`];
    if (user) lines.push(`rootless_storage_path = "${dir(f, 'root')}"`);
    lines.push('[storage.options.overlay]', 'mountopt = "nodev"');
    if (mountProgram[f]) lines.push(`mount_program = "${mountProgram[f]}"`);
    await writeFile(storageConf(f), lines.join('\n') + '\n');
    await mkdir(dir(f, 'tmp'), { recursive: true });
  }

  let ns: UserFuseNamespace | undefined;
  let userEnvBase: NodeJS.ProcessEnv = {};
  if (user) {
    const home = join(work, 'home');
    await mkdir(home);
    userEnvBase = await userEnv(user, work, { HOME: home });
    execFileSync('chown', ['-R', `${user.uid}:${user.gid}`, work]);
    ns = await UserFuseNamespace.start(work);
  }

  const tool = (cmd: 'podman' | 'buildah', f: Flavour, args: string[], timeoutMs: number): Promise<CliResult> => {
    const confs = { CONTAINERS_CONF: containersConf, CONTAINERS_STORAGE_CONF: storageConf(f), TMPDIR: tmp };
    const argv = cmd === 'podman' ? ['--tmpdir', dir(f, 'tmp'), ...args] : args;
    if (user && ns) return ns.run(user, { ...userEnvBase, ...confs }, ['timeout', String(Math.ceil(timeoutMs / 1000)), cmd, ...argv]);
    return new Promise((resolve) => {
      const child = execFile(cmd, argv, { env: { ...process.env, ...confs }, timeout: timeoutMs, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : -1) : 0;
        resolve({ code, stdout, stderr });
      });
      child.stdin?.end();
    });
  };
  const podman = (f: Flavour, args: string[], timeoutMs = 110_000): Promise<CliResult> => tool('podman', f, args, timeoutMs);
  const ok = async (cmd: 'podman' | 'buildah', f: Flavour, args: string[], timeoutMs = 110_000): Promise<string> => {
    const r = await tool(cmd, f, args, timeoutMs);
    if (r.code !== 0) throw new Error(`${cmd} (${f}) ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
    return r.stdout;
  };
  /**
   * Rootless podman's pause processes (`catatonit -P`), one per store (its pid file is in
   * the --tmpdir): each holds podman's user and mount namespaces for that store.
   */
  const pausePids = async (): Promise<number[]> => {
    if (!user) return [];
    const pids = await Promise.all(FLAVOURS.map(async (f) => Number((await readFile(join(dir(f, 'tmp'), 'pause.pid'), 'utf8').catch(() => '')).trim())));
    return pids.filter((p) => p > 0);
  };
  const mountTables = async (): Promise<MountEntry[]> => {
    const tables = [listMounts()];
    if (ns) tables.push(await ns.mounts());
    for (const pid of await pausePids()) tables.push(parseMountinfo(await readFile(`/proc/${pid}/mountinfo`, 'utf8').catch(() => '')));
    return tables.flat().filter((m) => m.mountpoint.startsWith(work + '/'));
  };
  const mountsLeft = async (): Promise<string[]> =>
    [...new Set((await mountTables()).filter((m) => m.fstype.startsWith('fuse') || m.fstype === 'overlay').map((m) => m.mountpoint))];
  return {
    work,
    podman,
    podmanOk: (f, args, timeoutMs) => ok('podman', f, args, timeoutMs),
    buildahOk: (f, args, timeoutMs) => ok('buildah', f, args, timeoutMs),
    async layerfsLog() {
      // Root's mount processes log under /run/layerfs; rootless podman's (uid 0 of its user
      // namespace) under $XDG_RUNTIME_DIR/layerfs.
      const logDir = user ? join(String(userEnvBase.XDG_RUNTIME_DIR), 'layerfs') : '/run/layerfs';
      const files = (await readdir(logDir).catch(() => [])).filter((n) => n.startsWith('overlay-'));
      const text = await Promise.all(files.map((n) => readFile(join(logDir, n), 'utf8').catch(() => '')));
      return text.join('').split('\n').filter((l) => l.includes(work + '/')).join('\n');
    },
    mountsLeft,
    async teardown() {
      for (const f of FLAVOURS) await podman(f, ['rm', '-af', '-t', '0']);
      for (const pid of await pausePids()) {
        // Its namespaces go with it, and with them any mount left inside.
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      await ns?.stop();
      for (const m of listMounts().filter((x) => x.mountpoint.startsWith(work + '/')).reverse()) await forceUnmount(m.mountpoint);
      await rm(work, { recursive: true, force: true });
    },
  };
}
