/**
 * The union filesystems the bench compares, each with the same job: mount lower
 * directories (top first) + upper + work on a mountpoint, report how long until it was
 * ready and the PID of its FUSE process (none for the kernel), and unmount without fail.
 */
import { spawn, execFileSync } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { run } from './run.mjs';

const has = (cmd) => {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
};

const overlayOptions = ({ lowers, upper, work }) => `lowerdir=${lowers.join(':')},upperdir=${upper},workdir=${work}`;

/** The PID of the daemon whose command line names this mountpoint (fuse-overlayfs forks). */
function daemonPid(name, mnt) {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (argv[0]?.endsWith(name) && argv.includes(mnt)) return Number(entry);
    } catch { /* exited meanwhile */ }
  }
  return undefined;
}

const alive = (pid) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

async function waitExit(pid, ms) {
  for (const end = Date.now() + ms; Date.now() < end; ) {
    if (!alive(pid)) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return !alive(pid);
}

const isMounted = (mnt) => readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((l) => l.split(' ')[4] === mnt);

/**
 * Last resort for a FUSE mount whose server hangs: abort its connection (the minor of
 * the mountpoint's st_dev), lazy-unmount, and kill the server we started.
 */
export async function forceUnmount(mnt, pid) {
  try {
    if (isMounted(mnt)) {
      const minor = Number(statSync(mnt).dev) & 0xff;
      try { writeFileSync(`/sys/fs/fuse/connections/${minor}/abort`, '1'); } catch { /* not FUSE */ }
    }
  } catch { /* stat of a dead FUSE mount fails: still unmount */ }
  if (isMounted(mnt)) await run(['umount', '-l', mnt]).catch(() => {});
  if (pid && alive(pid)) {
    try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
  }
}

/** Unmount with umount(8) and wait for the daemon to leave; force it when that fails. */
async function plainUnmount(handle) {
  try {
    await run(['umount', handle.mnt], { timeoutMs: 30_000 });
    if (handle.pid && !(await waitExit(handle.pid, 10_000))) throw new Error(`daemon ${handle.pid} did not exit`);
  } catch (err) {
    await forceUnmount(handle.mnt, handle.pid);
    throw err;
  }
}

/** Where layerfs mounts of the fixture keep their lower index. */
export function layerfsIndexCache(lowers) {
  return join(dirname(lowers[0]), 'layerfs-index.cache');
}

/** The node flags the supervisor starts this build's mount process with (none before
 * builds had them). */
async function mountProcessNodeFlags(distDir) {
  return (await mountProcessModule(distDir))?.MOUNT_PROCESS_NODE_FLAGS ?? [];
}

/** The environment the supervisor gives this build's mount process (`env` as is before
 * builds chose one). */
async function mountProcessEnv(distDir, env) {
  return (await mountProcessModule(distDir))?.mountProcessEnv?.(env) ?? env;
}

async function mountProcessModule(distDir) {
  try {
    return await import(pathToFileURL(join(distDir, 'fuse', 'mount-process.js')).href);
  } catch {
    return undefined;
  }
}

/** layerfs's own mount process, with `env` added to its environment. */
function layerfsSystem(name, { distDir, logDir }, env = {}) {
  return {
    name,
    available: () => true,
    async mount(m) {
      // The fixture's layers never change, like a store's layer caches: the index is
      // cached as for an image mount (main.mjs builds it before the timed rounds).
      const indexCache = layerfsIndexCache(m.lowers);
      const config = { mountpoint: m.mnt, lowerDirs: m.lowers, upperDir: m.upper, workDir: m.work, fsname: 'layerfs-bench', indexCache };
      const logFd = openSync(join(logDir, `${name}-mount.log`), 'a');
      const childEnv = await mountProcessEnv(distDir, { ...process.env, ...env });
      const started = process.hrtime.bigint();
      // The build's bundle when it has one: what the supervisor starts (fuse/mount-process.ts).
      // (builds before 2026-12-06 had an ES module bundle, `.bundle.js`)
      const entry = ['union-mount-main.bundle.cjs', 'union-mount-main.bundle.js', 'union-mount-main.js'].map((f) => join(distDir, 'fuse', f)).find((f) => existsSync(f));
      // LAYERFS_BENCH_NODE_ARGS: flags for the mount process's node (e.g. --cpu-prof, which
      // NODE_OPTIONS refuses).
      const nodeArgs = [...(await mountProcessNodeFlags(distDir)), ...(process.env.LAYERFS_BENCH_NODE_ARGS?.split(' ').filter(Boolean) ?? [])];
      const child = spawn('node', [...nodeArgs, entry, JSON.stringify(config)], { stdio: ['ignore', 'pipe', logFd], env: childEnv });
      closeSync(logFd);
      const handle = { mnt: m.mnt, pid: child.pid, child };
      try {
        await new Promise((resolve, reject) => {
          let out = '';
          const timer = setTimeout(() => reject(new Error('layerfs not ready after 120 s')), 120_000);
          child.stdout.setEncoding('utf8').on('data', (d) => {
            out += d;
            if (out.includes('READY')) { clearTimeout(timer); resolve(); }
          });
          child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`layerfs mount process exited ${code} (see ${logDir}/${name}-mount.log)`)); });
        });
      } catch (err) {
        await forceUnmount(m.mnt, child.pid);
        throw err;
      }
      child.stdout.resume();
      handle.readySeconds = Number(process.hrtime.bigint() - started) / 1e9;
      handle.log = join(logDir, `${name}-mount.log`);
      return handle;
    },
    /** Requests the layerfs engine received so far, per opcode (SIGUSR2 makes it log
     * them); undefined for fuse-native, whose native side answers without counting. */
    async requestCounts(handle) {
      if (env.LAYERFS_ENGINE === 'fuse-native') return undefined;
      const before = readFileSync(handle.log, 'utf8').length;
      process.kill(handle.pid, 'SIGUSR2');
      for (let i = 0; i < 50; i++) {
        await new Promise((r) => setTimeout(r, 20));
        const m = /request counts (\{.*\})/.exec(readFileSync(handle.log, 'utf8').slice(before));
        if (m) return JSON.parse(m[1]);
      }
      return undefined;
    },
    async unmount(handle) {
      try {
        process.kill(handle.pid, 'SIGTERM');
        if (!(await waitExit(handle.pid, 30_000))) throw new Error(`layerfs ${handle.pid} did not exit 30 s after SIGTERM`);
        if (isMounted(handle.mnt)) throw new Error('layerfs exited but left the mount');
      } catch (err) {
        await forceUnmount(handle.mnt, handle.pid);
        throw err;
      }
    },
  };
}

/** Every system the bench knows; `available()` says whether this machine has it. */
export function makeSystems({ distDir, logDir }) {
  return [
    // layerfs's own FUSE engine (src/engine/) and the patched libfuse 2.9 one, side by side.
    layerfsSystem('layerfs', { distDir, logDir }, { LAYERFS_ENGINE: 'layerfs' }),
    layerfsSystem('layerfs-fuse-native', { distDir, logDir }, { LAYERFS_ENGINE: 'fuse-native' }),
    // Every op through JS (fuse-native's fast path off): run with --systems to compare.
    { ...layerfsSystem('layerfs-js', { distDir, logDir }, { LAYERFS_ENGINE: 'fuse-native', LAYERFS_NATIVE_FAST_PATH: '0' }), optIn: true },
    // Copy-ups without the data flush, as a `volatile` mount (podman's --rm containers): like
    // for like with fuse-overlayfs, which never flushes one. Run with --systems.
    { ...layerfsSystem('layerfs-volatile', { distDir, logDir }, { LAYERFS_ENGINE: 'layerfs', LAYERFS_COPY_UP_FSYNC: '0' }), optIn: true },
    {
      name: 'fuse-overlayfs',
      available: () => has('fuse-overlayfs'),
      async mount(m) {
        const r = await run(['fuse-overlayfs', '-o', overlayOptions(m), m.mnt], { timeoutMs: 120_000 });
        return { mnt: m.mnt, pid: daemonPid('fuse-overlayfs', m.mnt), readySeconds: r.seconds };
      },
      unmount: plainUnmount,
    },
    {
      name: 'kernel-overlay',
      available: () => readFileSync('/proc/filesystems', 'utf8').includes('overlay'),
      async mount(m) {
        const r = await run(['mount', '-t', 'overlay', 'overlay', '-o', overlayOptions(m), m.mnt], { timeoutMs: 60_000 });
        return { mnt: m.mnt, pid: undefined, readySeconds: r.seconds };
      },
      unmount: plainUnmount,
    },
    {
      // The kernel's `volatile` option: no flush of copy-ups (or of anything else).
      name: 'kernel-overlay-volatile',
      optIn: true,
      available: () => readFileSync('/proc/filesystems', 'utf8').includes('overlay'),
      async mount(m) {
        const r = await run(['mount', '-t', 'overlay', 'overlay', '-o', `${overlayOptions(m)},volatile`, m.mnt], { timeoutMs: 60_000 });
        return { mnt: m.mnt, pid: undefined, readySeconds: r.seconds };
      },
      unmount: plainUnmount,
    },
    {
      // unionfs-fuse keeps its own whiteout format (.unionfs-fuse/ *_HIDDEN~ files), so it
      // shows overlayfs whiteouts as 0/0 devices: its metadata numbers are indicative only.
      name: 'unionfs-fuse',
      available: () => has('unionfs'),
      async mount(m) {
        const branches = [`${m.upper}=RW`, ...m.lowers.map((l) => `${l}=RO`)].join(':');
        const r = await run(['unionfs', '-o', 'cow,allow_other,use_ino,suid,dev', branches, m.mnt], { timeoutMs: 120_000 });
        return { mnt: m.mnt, pid: daemonPid('unionfs', m.mnt), readySeconds: r.seconds };
      },
      unmount: plainUnmount,
    },
  ];
}

/** Peak resident set (VmHWM) of a process in MiB, or undefined. */
export function peakRssMiB(pid) {
  if (!pid) return undefined;
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : undefined;
  } catch {
    return undefined;
  }
}
