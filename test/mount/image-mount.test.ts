/**
 * `layerfs mount` of a real image (built by umoci), through the CLI as a user runs it:
 * copy-up into the container's writable layer with the layer caches untouched, whiteouts,
 * umount keeping the writable layer, read-only mounts, and the mount process's lifecycle
 * (SIGTERM unmounts cleanly; after SIGKILL the next command clears the dead mount).
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lstat, mkdir, readFile, readdir, rm, writeFile, appendFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { cli, cliOk, REPO } from '../helpers/cli.js';
import { isMounted } from '../helpers/mounts.js';
import { storeWithSampleImage, treeHashes } from '../helpers/sample-image.js';
import { tempDir } from '../helpers/temp.js';

const run = promisify(execFile);


async function record(root: string, name: string) {
  const ps = JSON.parse(await cliOk(root, ['ps', '-a', '--json'])) as Array<{ id: string; name: string; pid: number | null; state: string; mountpoint: string }>;
  return ps.find((c) => c.name === name)!;
}

/** The FUSE process of a mounted container (a mounted one always has one). */
async function mountPid(root: string, name: string): Promise<number> {
  const { pid } = await record(root, name);
  if (pid === null) throw new Error(`container ${name} is mounted but has no FUSE process`);
  return pid;
}

describe.skipIf(!inject('canMount'))('layerfs mount IMAGE DIR', () => {
  let root: string;
  let work: string;

  beforeAll(async () => {
    ({ work, root } = await storeWithSampleImage());
  });

  async function mountpoint(name: string): Promise<string> {
    const dir = join(work, name);
    await mkdir(dir, { recursive: true });
    return dir;
  }

  it('copies up on write into the writable layer and never touches the layer caches', async () => {
    const before = await treeHashes(join(root, 'layers'));
    const mnt = await mountpoint('m1');
    const id = (await cliOk(root, ['mount', '--name', 'c1', 'sample', mnt])).trim();
    expect(id).toMatch(/^[0-9a-f]{64}$/);
    try {
      expect(await readFile(join(mnt, 'etc', 'motd'), 'utf8')).toMatch(/app layer/);
      await appendFile(join(mnt, 'etc', 'motd'), 'written in the container\n');
      await writeFile(join(mnt, 'app', 'numbers.txt'), 'truncated');
      await rm(join(mnt, 'app', 'hello.txt'));
      await mkdir(join(mnt, 'new-dir'));
      const upper = join(root, 'containers', id, 'upper');
      expect(await readFile(join(upper, 'etc', 'motd'), 'utf8')).toMatch(/app layer[\s\S]*written in the container/);
      expect(await readFile(join(upper, 'app', 'numbers.txt'), 'utf8')).toBe('truncated');
      const wh = await lstat(join(upper, 'app', 'hello.txt'));
      expect(wh.isCharacterDevice() && wh.rdev === 0).toBe(true);
      expect(await readdir(join(mnt, 'app'))).not.toContain('hello.txt');
      expect(await treeHashes(join(root, 'layers'))).toEqual(before);
      expect((await cliOk(root, ['ps'])).split('\n')[1]).toMatch(/sample .*Mounted .* c1$/);
    } finally {
      await cliOk(root, ['umount', 'c1']);
    }
    expect(isMounted(mnt)).toBe(false);
    // The writable layer survived the unmount: mounting the same name brings it back.
    await cliOk(root, ['mount', '--name', 'c1', 'sample', mnt]);
    try {
      expect(await readFile(join(mnt, 'app', 'numbers.txt'), 'utf8')).toBe('truncated');
      expect(await readdir(join(mnt, 'app'))).not.toContain('hello.txt');
    } finally {
      await cliOk(root, ['rm', '--force', 'c1']);
    }
    expect(isMounted(mnt)).toBe(false);
    expect(await readdir(join(root, 'containers'))).not.toContain(id);
    expect(await treeHashes(join(root, 'layers'))).toEqual(before);
  });

  it('rm deletes a container whose writable layer holds a 4,095-byte path (deeper than Node\'s own rm reaches)', async () => {
    const mnt = await mountpoint('deep');
    const id = (await cliOk(root, ['mount', '--name', 'deep', 'sample', mnt])).trim();
    try {
      // 20 directories of 200 bytes and a file: the backing path is longer than PATH_MAX.
      const script = 'for i in $(seq 1 20); do d=$(printf d%02d $i)$(head -c 197 /dev/zero | tr "\\0" x); mkdir $d && cd $d || exit 1; done; echo deep > f && cat f';
      expect((await run('bash', ['-c', script], { cwd: mnt })).stdout).toBe('deep\n');
    } finally {
      await cliOk(root, ['rm', '--force', 'deep']);
    }
    expect(isMounted(mnt)).toBe(false);
    expect(await readdir(join(root, 'containers'))).not.toContain(id);
  });

  it('mounts read-only: writes fail with EROFS', async () => {
    const mnt = await mountpoint('ro');
    await cliOk(root, ['mount', '--read-only', '--name', 'ro', 'sample', mnt]);
    try {
      expect(await readFile(join(mnt, 'app', 'hello.txt'), 'utf8')).toBe('hello from the app layer\n');
      await expect(writeFile(join(mnt, 'app', 'hello.txt'), 'x')).rejects.toMatchObject({ code: 'EROFS' });
      await expect(mkdir(join(mnt, 'd'))).rejects.toMatchObject({ code: 'EROFS' });
    } finally {
      await cliOk(root, ['rm', '-f', 'ro']);
    }
  });

  it('unmounts cleanly when the FUSE process gets SIGTERM', async () => {
    const mnt = await mountpoint('term');
    await cliOk(root, ['mount', '--name', 'term', 'sample', mnt]);
    const pid = await mountPid(root, 'term');
    process.kill(pid, 'SIGTERM');
    for (let i = 0; i < 200 && isMounted(mnt); i++) await new Promise((r) => setTimeout(r, 25));
    expect(isMounted(mnt)).toBe(false);
    await cliOk(root, ['rm', 'term']);
  });

  it('after SIGKILL of the FUSE process, the next command clears the dead mount and the writable layer is intact', async () => {
    const mnt = await mountpoint('kill');
    await cliOk(root, ['mount', '--name', 'kill', 'sample', mnt]);
    await writeFile(join(mnt, 'root', 'kept.txt'), 'still here');
    const pid = await mountPid(root, 'kill');
    process.kill(pid, 'SIGKILL');
    while (existsSync(`/proc/${pid}`)) await new Promise((r) => setTimeout(r, 10));
    // The dead mount: "Transport endpoint is not connected" (or aborted, if caught mid-request).
    const dead = await readdir(mnt).then(() => 'readable', (e: NodeJS.ErrnoException) => e.code);
    expect(['ENOTCONN', 'ECONNABORTED']).toContain(dead);
    const ps = await cli(root, ['ps', '-a']);
    expect(ps.code).toBe(0);
    expect(ps.stderr).toMatch(/mount process had died; cleared the dead mount/);
    expect(ps.stdout).toMatch(/Unmounted .* kill/);
    expect(isMounted(mnt)).toBe(false);
    await readdir(mnt); // no "Transport endpoint is not connected" left behind
    await cliOk(root, ['mount', '--name', 'kill', 'sample', mnt]);
    try {
      expect(await readFile(join(mnt, 'root', 'kept.txt'), 'utf8')).toBe('still here');
    } finally {
      await cliOk(root, ['rm', '-f', 'kill']);
    }
  });

  it('refuses a missing image, a busy mountpoint and an unknown container with one clear line', async () => {
    const mnt = await mountpoint('bad');
    const missing = await cli(root, ['mount', 'no-such-image', mnt]);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toMatch(/^layerfs: .*no-such-image/m);
    await cliOk(root, ['mount', '--name', 'busy', 'sample', mnt]);
    try {
      const busy = await cli(root, ['mount', 'sample', mnt]);
      expect(busy.stderr).toMatch(/already a mount point/);
    } finally {
      await cliOk(root, ['rm', '-f', 'busy']);
    }
    expect((await cli(root, ['umount', 'nobody'])).stderr).toMatch(/no such container: nobody/);
  });
});
