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
  for (const engine of ['layerfs', 'fuse-native']) {
    describe(`engine ${engine}`, () => {
      it('unmounted while another namespace holds a copy, it exits and leaves the next mount of its path alone', async () => {
        const { dir, mnt, mount } = await setUp(engine);
        await mount('first');
        let holder: ChildProcess | undefined;
        try {
          await writeFile(join(mnt, 'written'), 'by the first mount\n');
          holder = await namespaceHolder();
          // The first mount goes from this namespace only: its superblock lives on in the
          // holder's, so its server learns of it only by looking at the mount table.
          await run('umount', [mnt]);
          await mount('second');
          const second = mountDevices(mnt);
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
      });

      it('told to stop after its mount was replaced, it exits without unmounting the new one', async () => {
        const { dir, mnt, mount } = await setUp(engine);
        await mount('first');
        let holder: ChildProcess | undefined;
        try {
          holder = await namespaceHolder();
          const [first] = await processesMentioning(`${dir}/first-upper`);
          expect(first).toBeDefined();
          await run('umount', [mnt]);
          await mount('second');
          const second = mountDevices(mnt);
          process.kill(first!, 'SIGTERM');
          await waitGone(`${dir}/first-upper`);
          expect(mountDevices(mnt)).toEqual(second);
          expect(await readFile(join(mnt, 'file'), 'utf8')).toBe('from the lower\n');
        } finally {
          holder?.kill();
          await forceUnmount(mnt);
        }
        await waitGone(`${dir}/second-upper`);
      });
    });
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
