/**
 * A spare mount process for layerfs-overlay (opt-in: LAYERFS_OVERLAY_SPARE=1 in the mount
 * program's environment). A node that has already started and loaded the mount code waits
 * to be claimed by the next `layerfs-overlay` of the same user, in the same namespaces,
 * with the same build: that mount then costs no node start-up (~85 ms CPU) nor loading.
 * native-notes/podman.md, "A spare mount process", has the numbers and trade-offs.
 *
 * Where: `${XDG_RUNTIME_DIR:-/run}/layerfs/spares`, the caller's own (the sh checks `-O`,
 * this checks owner and mode 0700). A spare first builds its directory under a private
 * name `n.PID`, moves into it (its cwd is how the sh tells a live spare from a stale
 * directory), then renames it to `s.PID`: holding FIFOs `req` and `reply`, and symlinks
 * `entry` and `node` to the files it runs (the sh compares them with `-ef`).
 *
 * Claim (src/cli/layerfs-overlay.sh): the sh renames `s.PID` to `c.SHPID.PID`, so two
 * mounts never claim the same spare, opens `reply`, and writes "SHPID ARGC" to `req`.
 * Everything else the spare reads from /proc/SHPID: the argv (the last ARGC of its
 * cmdline, so any byte but NUL passes), environment, cwd, umask. It refuses (closes
 * `reply` without "TAKEN"; the sh then starts cold) a claimant that differs in anything a
 * cold-started mount process would have inherited and this one cannot take on now:
 * credentials, namespaces, cgroup, limits, priority, the build, or the environment read
 * at module load (LAYERFS_*, NODE_*, UV_*, TZ). Otherwise it answers "TAKEN" and mounts
 * as `overlay-main --ready-fd` does, its notes and errors going to the sh as "E LINE".
 *
 * A spare ends after LAYERFS_OVERLAY_SPARE_IDLE seconds (default 60) unclaimed, renaming
 * its directory away first: a rename that fails means the directory was claimed, and
 * then the request is waited for (a claimant killed before sending it leaves the spare
 * to end CLAIM_TIMEOUT_MS later).
 *
 * Where spares come from: a mount process of an opted-in caller whose mount has ended (the
 * kernel ended the connection) becomes the spare itself, unless one waits already — no
 * node start-up at all, and its code has run (a mount by it is ready in ~35 ms against ~80
 * for a fresh spare and ~160 cold: native-notes/podman.md). With
 * LAYERFS_OVERLAY_SPARE_DELAY_MS=N set, a mount process also starts a fresh spare N ms
 * after READY (for mounts that overlap).
 */
import { appendFileSync, closeSync, constants as fsc, lstatSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, rmSync, statSync, symlinkSync, writeSync } from 'node:fs';
import { Socket } from 'node:net';
import { getPriority } from 'node:os';
import { join } from 'node:path';
import * as lazy from '../core/lazy-builtins.js';
import * as sys from '../sys/native.js';

/** The opt-in: "1" in the mount program's environment. */
export const SPARE_ENV = 'LAYERFS_OVERLAY_SPARE';
const IDLE_ENV = 'LAYERFS_OVERLAY_SPARE_IDLE';
const DELAY_ENV = 'LAYERFS_OVERLAY_SPARE_DELAY_MS';
const DEFAULT_IDLE_S = 60;
const CLAIM_TIMEOUT_MS = 10_000;
/** A spare's directory under its private name (`n.PID`) older than this is a dead spare's. */
const STALE_NEW_MS = 60_000;
/** Read when modules load (e.g. LAYERFS_OVERLAY_XATTRS) or by node at start: a spare's must be the claimant's. */
const LOAD_TIME_ENV = /^(LAYERFS_|NODE_|UV_|TZ$)/;
/** The sh front end unsets it and so does every launcher (node parses it at start). */
const DROPPED_ENV = 'NODE_EXTRA_CA_CERTS';
const STATUS_FIELDS = ['Uid', 'Gid', 'Groups', 'NoNewPrivs', 'Seccomp', 'CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb'];
const NAMESPACES = ['user', 'mnt', 'pid', 'net', 'ipc', 'uts', 'cgroup'];

/** The spares' directory the sh looks in, `${XDG_RUNTIME_DIR:-/run}/layerfs/spares`, or undefined (a relative XDG_RUNTIME_DIR). */
export function sparesDir(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const base = env.XDG_RUNTIME_DIR || '/run';
  return base.startsWith('/') ? join(base, 'layerfs', 'spares') : undefined;
}

/** What the mount process needs of a claim: the caller's argv, and the channel to it. */
export interface Claim {
  argv: string[];
  /** Writes a line (or lines) of notes and errors to the caller's stderr. */
  note(text: string): void;
  /** "READY" or "EXIT <code>". */
  tell(word: string): void;
  /** Closes the channel (after READY). */
  done(): void;
  /** For the mount's log, after READY: how this process came to serve it. */
  origin?: string;
}

/** Why a claimant is refused (a cold start serves it instead). */
class Refusal extends Error {}

/**
 * Runs as a spare: prepares, waits to be claimed, and resolves with the claim once the
 * caller's state is this process's. Never resolves for a spare that ends unclaimed.
 */
export async function waitForClaim(preload: () => Promise<unknown>): Promise<Claim> {
  const dir = sparesDir();
  if (dir === undefined) process.exit(0);
  ownPrivateDir(dir);
  const build = startedBuild ?? buildStamp();
  await preload();
  const own = processFacts('self');
  const env = { ...process.env };

  const privateDir = join(dir, `n.${process.pid}`);
  rmSync(privateDir, { recursive: true, force: true }); // a dead spare's of the same pid
  mkdirSync(privateDir, { mode: 0o700 });
  process.chdir(privateDir);
  await sys.mknod('req', fsc.S_IFIFO | 0o600, 0);
  await sys.mknod('reply', fsc.S_IFIFO | 0o600, 0);
  symlinkSync(build.entry, 'entry');
  symlinkSync(process.execPath, 'node');
  // Read-write: opening never waits for the other end, and the sh's read of `reply` ends
  // when this process does (its only writer).
  const reqFd = openSync('req', fsc.O_RDWR | fsc.O_NONBLOCK);
  const replyFd = openSync('reply', fsc.O_RDWR);
  const advertised = join(dir, `s.${process.pid}`);
  renameSync(privateDir, advertised);
  const waitingSince = Date.now();

  const leave = (): never => {
    removeOwnDirectory(dir);
    process.exit(0);
  };
  const onSignal = () => leave();
  for (const s of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(s, onSignal);
  const idleS = Number(process.env[IDLE_ENV]) > 0 ? Number(process.env[IDLE_ENV]) : DEFAULT_IDLE_S;
  const idle = setTimeout(() => {
    try {
      renameSync(advertised, join(dir, `x.${process.pid}`)); // no longer claimable
    } catch {
      setTimeout(leave, CLAIM_TIMEOUT_MS); // claimed: its request is on its way
      return;
    }
    leave();
  }, idleS * 1000);

  const request = await firstLine(reqFd);
  clearTimeout(idle);
  const say = (text: string) => {
    try {
      writeSync(replyFd, text);
    } catch {
      // The caller went away.
    }
  };
  const [pidText, argcText] = request.split(' ');
  const claimant = Number(pidText);
  const argc = Number(argcText);
  let argv: string[];
  try {
    if (!Number.isInteger(claimant) || claimant <= 0 || !Number.isInteger(argc) || argc < 0) throw new Refusal(`bad request ${JSON.stringify(request)}`);
    checkBuild(build);
    const theirs = processFacts(claimant);
    for (const [k, v] of own) if (theirs.get(k) !== v) throw new Refusal(`its ${k} differs`);
    const theirEnv = environOf(claimant);
    for (const k of new Set([...Object.keys(env), ...theirEnv.keys()])) {
      if (LOAD_TIME_ENV.test(k) && k !== DROPPED_ENV && theirEnv.get(k) !== env[k]) throw new Refusal(`its ${k} differs`);
    }
    const cmdline = readFileSync(`/proc/${claimant}/cmdline`).toString('utf8').split('\0').slice(0, -1);
    if (cmdline.length < argc + 1) throw new Refusal('its command line is shorter than its argument count');
    argv = cmdline.slice(cmdline.length - argc);
    const umask = /^Umask:\s*([0-7]+)$/m.exec(readFileSync(`/proc/${claimant}/status`, 'utf8'))?.[1];
    if (umask === undefined) throw new Refusal('no umask in its status');
    process.chdir(`/proc/${claimant}/cwd`); // its directory itself, even one no path reaches
    process.umask(parseInt(umask, 8));
    for (const k of Object.keys(process.env)) delete process.env[k];
    for (const [k, v] of theirEnv) if (k !== DROPPED_ENV) process.env[k] = v;
  } catch (err) {
    // Closing `reply` without TAKEN sends the caller to a cold start.
    const why = `spare ${process.pid} refused to mount for ${claimant}: ${(err as Error).message}`;
    if (process.env.LAYERFS_DEBUG) say(`E layerfs-overlay: ${why}\n`);
    try {
      appendFileSync(join(dir, '..', 'spares.log'), `${new Date().toISOString()} ${why}\n`); // why mounts start cold
    } catch {
      // No log: the caller starts cold all the same.
    }
    leave();
  }
  say('TAKEN\n');
  for (const s of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.off(s, onSignal);
  removeOwnDirectory(dir);
  return {
    argv: argv!,
    note: (text) => {
      const lines = text.split('\n');
      if (lines.at(-1) === '') lines.pop();
      say(lines.map((l) => `E ${l}\n`).join(''));
    },
    tell: (word) => say(`${word}\n`),
    done: () => closeSync(replyFd),
    origin: `a spare, claimed by ${claimant} after waiting ${((Date.now() - waitingSince) / 1000).toFixed(1)} s`,
  };
}

/**
 * Removes this spare's directory under whichever name it has now (n., s., c.CLAIMANT., x.
 * and this pid): by name, never by the cwd, which may be the claimant's by then.
 */
function removeOwnDirectory(dir: string): void {
  const mine = new RegExp(`^[nscx]\\.(?:\\d+\\.)?${process.pid}$`);
  try {
    for (const name of readdirSync(dir)) if (mine.test(name)) rmSync(join(dir, name), { recursive: true, force: true });
  } catch {
    // Gone already.
  }
}

/**
 * After READY, for an opted-in caller with LAYERFS_OVERLAY_SPARE_DELAY_MS set: that many ms
 * later, removes the directories of spares that are gone and starts a fresh spare unless
 * one of this build and these namespaces is waiting. (Unset, the spare is this process
 * once its mount ends: recycle().) Returns what cancels it.
 */
export function replaceSpare(): () => void {
  const none = () => undefined;
  if (process.env[SPARE_ENV] !== '1' || !(Number(process.env[DELAY_ENV]) >= 0) || process.env[DELAY_ENV] === '') return none;
  const dir = sparesDir();
  const entry = process.argv[1];
  if (dir === undefined || entry === undefined) return none;
  const timer = setTimeout(() => {
    try {
      if (spareWaits(dir, entry)) return;
      const child = lazy.childProcess().spawn(process.execPath, [...process.execArgv, entry, '--spare'], { detached: true, stdio: 'ignore', cwd: '/', env: process.env });
      child.on('error', () => undefined);
      child.unref();
    } catch {
      // No spare this time: the next mount starts cold.
    }
  }, Number(process.env[DELAY_ENV])).unref();
  // For a mount that ends first, in a process that goes on as the spare.
  return () => clearTimeout(timer);
}

/**
 * Whether this mount process, its mount ended, should wait as the spare: its caller opted
 * in, and no spare of this build and these namespaces waits already.
 */
export function recycle(): boolean {
  const dir = sparesDir();
  const entry = process.argv[1];
  if (process.env[SPARE_ENV] !== '1' || dir === undefined || entry === undefined) return false;
  try {
    return !spareWaits(dir, entry);
  } catch {
    return false;
  }
}

function spareWaits(dir: string, entry: string): boolean {
  ownPrivateDir(dir);
  return sweep(dir, entry);
}

/**
 * Removes the directories of spares that are gone; true if a live spare of this build and
 * these namespaces waits. Gone is told by the FIFO, not the pid, which means nothing in
 * another pid namespace (buildah's, podman's, sharing the directory): a live spare holds
 * `req` open, so opening it for writing without waiting fails (ENXIO) only once it is gone.
 */
function sweep(dir: string, entry: string): boolean {
  let waiting = false;
  for (const name of readdirSync(dir)) {
    const m = /^([nscx])\.(?:\d+\.)?(\d+)$/.exec(name);
    if (!m) continue;
    const path = join(dir, name);
    if (m[1] === 'n' && Date.now() - (lstatSync(path, { throwIfNoEntry: false })?.mtimeMs ?? Date.now()) < STALE_NEW_MS) continue; // being built
    if (!hasReader(join(path, 'req'))) {
      rmSync(path, { recursive: true, force: true });
      continue;
    }
    const pid = Number(m[2]);
    if (m[1] === 's' && sameFile(join(path, 'entry'), entry) && sameFile(join(path, 'node'), process.execPath) && NAMESPACES.every((n) => nsInode(pid, n) === nsInode('self', n))) waiting = true;
  }
  return waiting;
}

/** Whether the FIFO at `path` is open for reading by anyone (a spare waiting on it). */
function hasReader(path: string): boolean {
  let fd: number;
  try {
    fd = openSync(path, fsc.O_WRONLY | fsc.O_NONBLOCK);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ENXIO' && (err as NodeJS.ErrnoException).code !== 'ENOENT';
  }
  closeSync(fd);
  return true;
}

function sameFile(a: string, b: string): boolean {
  try {
    const x = statSync(a);
    const y = statSync(b);
    return x.dev === y.dev && x.ino === y.ino;
  } catch {
    return false;
  }
}

/** Makes `dir` if need be; it must be this user's own, mode 0700 (else no spare: throws). */
function ownPrivateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = lstatSync(dir);
  if (!st.isDirectory() || st.uid !== process.geteuid!() || (st.mode & 0o777) !== 0o700) {
    throw new Error(`${dir} is not this user's own private directory`);
  }
}

interface BuildStamp {
  entry: string;
  stamps: string[];
}

/** The files this process runs, as they are now: a rebuild or a new node makes a spare stale. */
function buildStamp(): BuildStamp {
  const entry = process.argv[1]!;
  return { entry, stamps: [entry, process.execPath].map(fileStamp) };
}

/**
 * As this process started (a mount process that may become the spare after its mount:
 * what it runs is what it loaded then, whatever the files are by the time it waits).
 */
const startedBuild: BuildStamp | undefined = process.env[SPARE_ENV] === '1' && process.argv[1] !== undefined ? buildStampOrNone() : undefined;

function buildStampOrNone(): BuildStamp | undefined {
  try {
    return buildStamp();
  } catch {
    return undefined;
  }
}

function checkBuild(build: BuildStamp): void {
  const now = [build.entry, process.execPath].map(fileStamp);
  if (now.join() !== build.stamps.join()) throw new Refusal('the build changed since it started');
}

function fileStamp(path: string): string {
  const st = statSync(path, { bigint: true });
  return `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
}

/** What a process inherits that a spare must share with its claimant, by name. */
function processFacts(pid: number | 'self'): Map<string, string> {
  const facts = new Map<string, string>();
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  for (const f of STATUS_FIELDS) facts.set(f, new RegExp(`^${f}:(.*)$`, 'm').exec(status)?.[1]?.trim() ?? '');
  for (const n of NAMESPACES) facts.set(`${n} namespace`, nsInode(pid, n));
  facts.set('cgroup', readFileSync(`/proc/${pid}/cgroup`, 'utf8'));
  facts.set('limits', limitsOf(pid));
  facts.set('priority', String(getPriority(pid === 'self' ? 0 : pid)));
  return facts;
}

/** The resource limits, but the soft limit of open files: node raises it to the hard one as it starts. */
function limitsOf(pid: number | 'self'): string {
  return readFileSync(`/proc/${pid}/limits`, 'utf8').replace(/^(Max open files\s+)\S+/m, '$1-');
}

function nsInode(pid: number | 'self', ns: string): string {
  try {
    return String(statSync(`/proc/${pid}/ns/${ns}`).ino);
  } catch {
    return 'none';
  }
}

function environOf(pid: number): Map<string, string> {
  const env = new Map<string, string>();
  for (const kv of readFileSync(`/proc/${pid}/environ`).toString('utf8').split('\0')) {
    const eq = kv.indexOf('=');
    if (eq > 0) env.set(kv.slice(0, eq), kv.slice(eq + 1));
  }
  return env;
}

/** The first line written to the FIFO open at `fd` (the request). */
function firstLine(fd: number): Promise<string> {
  return new Promise((resolve) => {
    const pipe = new Socket({ fd, readable: true, writable: false });
    let text = '';
    pipe.setEncoding('utf8');
    pipe.on('data', (chunk: string) => {
      text += chunk;
      const nl = text.indexOf('\n');
      if (nl < 0) return;
      pipe.removeAllListeners('data');
      pipe.destroy(); // closes the FIFO: one request per spare
      resolve(text.slice(0, nl));
    });
    pipe.on('error', () => undefined);
  });
}
