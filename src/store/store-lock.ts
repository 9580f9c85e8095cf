/**
 * The store lock: one file created with O_EXCL holding the owner's pid. Every command that
 * changes the store holds it for the whole change, so two `load`s that share layers run one
 * after the other and the second finds the shared layers already there.
 *
 * A lock whose pid no longer exists is stale (its owner was killed): it is removed and
 * taken over, under a second O_EXCL file so that two waiters cannot both break it.
 */
import { open, readFile, unlink, mkdir, stat } from 'node:fs/promises';
import { LayerfsError, hasErrnoCode } from '../core/errors.js';

/** A held lock; release it exactly once. */
export interface HeldLock {
  release(): Promise<void>;
}

function alive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return hasErrnoCode(err, 'EPERM');
  }
}

async function readOwner(file: string): Promise<number | undefined> {
  try {
    const txt = await readFile(file, 'utf8');
    return Number.parseInt(txt.trim(), 10);
  } catch (err) {
    if (hasErrnoCode(err, 'ENOENT')) return undefined;
    throw err;
  }
}

async function tryCreate(file: string): Promise<boolean> {
  try {
    const fh = await open(file, 'wx', 0o644);
    try {
      await fh.writeFile(`${process.pid}\n`);
    } finally {
      await fh.close();
    }
    return true;
  } catch (err) {
    if (hasErrnoCode(err, 'EEXIST')) return false;
    throw err;
  }
}

/** Tries once; resolves undefined when another live process holds the lock. */
export async function tryLock(file: string): Promise<HeldLock | undefined> {
  await mkdir(file.slice(0, file.lastIndexOf('/')), { recursive: true });
  for (let attempt = 0; attempt < 3; attempt++) {
    if (await tryCreate(file)) return held(file);
    const owner = await readOwner(file);
    if (owner === undefined) continue; // released meanwhile
    if (owner === process.pid || alive(owner)) return undefined;
    // An empty lock file is a writer between create and write — or one killed right there.
    if (Number.isNaN(owner) && Date.now() - (await stat(file).then((s) => s.mtimeMs, () => Date.now())) < 5000) return undefined;
    // Stale. Breaking it is itself guarded by an O_EXCL `<lock>.break` file, so two waiters
    // cannot both remove the stale lock and then each other's fresh one.
    const brk = `${file}.break`;
    if (!(await tryCreate(brk))) {
      const breaker = await readOwner(brk);
      if (breaker !== undefined && !Number.isNaN(breaker) && !alive(breaker)) await unlink(brk).catch(() => {});
      return undefined;
    }
    try {
      if (Object.is(await readOwner(file), owner)) await unlink(file).catch(() => {});
      if (await tryCreate(file)) return held(file);
    } finally {
      await unlink(brk).catch(() => {});
    }
  }
  return undefined;
}

function held(file: string): HeldLock {
  let released = false;
  return {
    async release() {
      if (released) return;
      released = true;
      if ((await readOwner(file)) === process.pid) await unlink(file).catch(() => {});
    },
  };
}

/** Waits for the lock (polling), reporting once via `onWait` when it has to wait. */
export async function acquireLock(file: string, opts: { timeoutMs?: number; onWait?: (pid: number | undefined) => void } = {}): Promise<HeldLock> {
  const deadline = Date.now() + (opts.timeoutMs ?? 10 * 60_000);
  let told = false;
  let delay = 20;
  for (;;) {
    const l = await tryLock(file);
    if (l) return l;
    if (!told) {
      told = true;
      opts.onWait?.(await readOwner(file));
    }
    if (Date.now() > deadline) {
      throw new LayerfsError('IN_USE', `the store is locked by process ${await readOwner(file)}`, { hint: `wait for it to finish, or remove ${file} if that process is gone` });
    }
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 250);
  }
}
