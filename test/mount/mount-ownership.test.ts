/**
 * A mount process detaches only its own mount. Once someone else has unmounted it, the
 * same path may hold another mount: containerd's shim, when it loses a mount helper's exit
 * status (ECHILD), unmounts that first mount and runs the helper again. The first mount's
 * process, ending (its 1 s check, a signal, process exit), must leave the second one be.
 * Seen in CI: under load, a copy of the first mount in another container's new mount
 * namespace kept its superblock alive, the first process noticed its mount gone only by
 * that check, and its exit detached the second mount from under runc ("sh" not found, or
 * ENOTCONN on the rootfs).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdir, readFile, readdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, inject, it } from 'vitest';
import { runOverlay } from '../helpers/cli.js';
import { forceUnmount, isMounted, mountDevices } from '../helpers/mounts.js';
import { processesMentioning } from '../helpers/processes.js';
import { tempDir } from '../helpers/temp.js';

const run = promisify(execFile);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitGone(text: string): Promise<void> {
  for (let i = 0; i < 250 && (await processesMentioning(text)).length > 0; i++) await sleep(20);
  expect(await processesMentioning(text), `the mount process with ${text} exits`).toEqual([]);
}

/** A process in a new mount namespace, holding copies of every mount there is now. */
async function namespaceHolder(): Promise<ChildProcess> {
  const child = spawn('unshare', ['-m', '--propagation', 'unchanged', 'sleep', '300'], { stdio: 'ignore' });
  // Its namespace exists once unshare has exec'd sleep.
  for (let i = 0; i < 250; i++) {
    const exe = await readFile(`/proc/${child.pid}/cmdline`, 'utf8').catch(() => '');
    if (exe.startsWith('sleep')) return child;
    await sleep(10);
  }
  child.kill();
  throw new Error('unshare did not start');
}

/** A lower with one file, two upper/work pairs ("first", "second") and a mountpoint; `mount` mounts one of them there. */
async function setUp(engine: string): Promise<{ dir: string; mnt: string; mount: (which: string) => Promise<void> }> {
  const dir = await tempDir();
  for (const d of ['lower', 'first-upper', 'first-work', 'second-upper', 'second-work', 'merged']) await mkdir(join(dir, d));
  await writeFile(join(dir, 'lower', 'file'), 'from the lower\n');
  const mnt = join(dir, 'merged');
  const mount = async (which: string) => {
    const r = await runOverlay(['-o', `lowerdir=${dir}/lower,upperdir=${dir}/${which}-upper,workdir=${dir}/${which}-work`, mnt], { env: { ...process.env, LAYERFS_ENGINE: engine } });
    expect(r.code, r.stderr).toBe(0);
  };
  return { dir, mnt, mount };
}

describe.skipIf(!inject('canMount'))('a mount process detaches only its own mount', () => {
  // Elsewhere: a copy of the first mount lives on in another mount namespace, so its
  // connection stays up and only the mount table tells its server that it was unmounted.
  // Gone: its superblock goes with the unmount, and the next FUSE mount may get its device
  // number (the same 0:N at the same path), so the table alone would call that one ours.
  const cases = [
    { copy: true, how: 'while another namespace holds a copy' },
    { copy: false, how: 'for good (the next mount may reuse its device number)' },
  ];
  for (const engine of ['layerfs', 'fuse-native']) {
    for (const { copy, how } of cases) {
      describe(`engine ${engine}, unmounted ${how}`, () => {
        /** Mounts "first", unmounts it (keeping a copy elsewhere if `copy`), mounts "second" at the same path; then `then`. */
        const replaced = async (then: (first: number, dir: string) => Promise<void>) => {
          const { dir, mnt, mount } = await setUp(engine);
          await mount('first');
          let holder: ChildProcess | undefined;
          try {
            const [first] = await processesMentioning(`${dir}/first-upper`);
            expect(first).toBeDefined();
            await writeFile(join(mnt, 'written'), 'by the first mount\n');
            if (copy) holder = await namespaceHolder();
            await run('umount', [mnt]);
            await mount('second');
            const second = mountDevices(mnt);
            await then(first!, dir);
            await waitGone(`${dir}/first-upper`);
            expect(mountDevices(mnt)).toEqual(second);
            expect(await readFile(join(mnt, 'file'), 'utf8')).toBe('from the lower\n');
            expect(await readdir(mnt)).toEqual(['file']);
          } finally {
            holder?.kill();
            await forceUnmount(mnt);
          }
          await waitGone(`${dir}/second-upper`);
          expect(isMounted(mnt)).toBe(false);
        };

        it('its process exits and leaves the next mount of its path alone', () => replaced(async () => undefined));

        it('told to stop then, it exits without unmounting the new mount', () =>
          replaced(async (first) => void process.kill(first, 'SIGTERM')));
      });
    }
  }

  it('a mountpoint reached through a symlink stays mounted (the mount table shows the resolved path)', async () => {
    const { dir, mnt } = await setUp('layerfs');
    const link = join(dir, 'link');
    await symlink('merged', link);
    const r = await runOverlay(['-o', `lowerdir=${dir}/lower,upperdir=${dir}/first-upper,workdir=${dir}/first-work`, link]);
    expect(r.code, r.stderr).toBe(0);
    try {
      // The process checks its mount every second; it used to find none at the symlink's path and leave.
      await sleep(2500);
      expect(isMounted(mnt)).toBe(true);
      expect(await readFile(join(link, 'file'), 'utf8')).toBe('from the lower\n');
    } finally {
      await run('umount', [mnt]).catch(() => forceUnmount(mnt));
    }
    await waitGone(`${dir}/first-upper`);
  });
});
