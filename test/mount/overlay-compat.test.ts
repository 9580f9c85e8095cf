/**
 * layerfs as a drop-in for fuse-overlayfs: the `layerfs-overlay` program with the argv
 * containers-storage uses, the `mount -t fuse.layerfs` helper, and buildah building a
 * Dockerfile with layerfs as its overlay `mount_program`.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, readdir, readlink, rm, symlink, writeFile, chmod } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { overlayIndexDir } from '../../src/cli/overlay-index-cache.js';
import { MOUNT_PROCESS_NODE_FLAGS } from '../../src/fuse/mount-process.js';
import { LAYERFS_OVERLAY, REPO, runOverlay, runProgram, writeOverlayWrapper } from '../helpers/cli.js';
import { forceUnmount, isMounted } from '../helpers/mounts.js';
import { processesMentioning } from '../helpers/processes.js';
import { tempDir } from '../helpers/temp.js';

const run = promisify(execFile);

async function layers(dir: string): Promise<void> {
  for (const d of ['l1', 'l2', 'upper', 'work', 'merged']) await mkdir(join(dir, d), { recursive: true });
  await writeFile(join(dir, 'l2', 'base.txt'), 'from l2\n');
  await writeFile(join(dir, 'l1', 'top.txt'), 'from l1\n');
}

/** The sh `script`, run in `dir` as root of a new user namespace with mounts of its own:
 * uid 0 without CAP_SYS_ADMIN over the machine, as rootless podman runs its mount program. */
function asNamespaceRoot(dir: string, script: string): Promise<{ stdout: string; stderr: string }> {
  return run('unshare', ['--user', '--map-root-user', '--mount', '--propagation', 'private', 'sh', '-c', script], {
    cwd: dir,
    env: { ...process.env, LAYERFS_NODE: process.execPath },
  });
}

async function waitUnmounted(mnt: string): Promise<void> {
  for (let i = 0; i < 100 && isMounted(mnt); i++) await new Promise((r) => setTimeout(r, 20));
}

describe.skipIf(!inject('canMount'))('fuse-overlayfs compatibility', () => {
  let sampleOci: string;

  beforeAll(async () => {
    sampleOci = join(await tempDir(), 'sample-oci');
    await run(join(REPO, 'scripts', 'make-sample-image'), [sampleOci]);
  });

  it('accepts containers-storage\'s argv: relative paths from the cwd, empty and unused options', async () => {
    const dir = await tempDir();
    await layers(dir);
    // `volatile` (podman's, for --rm containers) is honoured now; xino is one layerfs has no use for.
    const r = await runOverlay(['-o', 'lowerdir=l1:l2,upperdir=upper,workdir=work,,volatile,xino=off', 'merged'], { cwd: dir });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr.trim()).toBe('layerfs-overlay: ignoring option xino=off');
    const mnt = join(dir, 'merged');
    try {
      expect((await readdir(mnt)).sort()).toEqual(['base.txt', 'top.txt']);
      await writeFile(join(mnt, 'base.txt'), 'changed\n');
      expect(await readFile(join(dir, 'upper', 'base.txt'), 'utf8')).toBe('changed\n');
      expect(await readFile(join(dir, 'l2', 'base.txt'), 'utf8')).toBe('from l2\n');
    } finally {
      await run('umount', [mnt]);
    }
    await waitUnmounted(mnt);
    expect(isMounted(mnt)).toBe(false);
  });

  it('caches the lower index per lower set, and a lower changed since is indexed afresh, not served from the stale cache', async () => {
    const dir = await tempDir();
    await layers(dir);
    await mkdir(join(dir, 'l2', 'deep', 'er'), { recursive: true });
    await writeFile(join(dir, 'l2', 'deep', 'er', 'old.txt'), 'old\n');
    const mnt = join(dir, 'merged');
    const cachesNow = async (): Promise<string[]> => (await readdir(overlayIndexDir()).catch(() => [] as string[])).sort();
    const mountOnce = async (): Promise<string[]> => {
      const r = await runOverlay(['-o', 'lowerdir=l1:l2,upperdir=upper,workdir=work', 'merged'], { cwd: dir });
      expect(r.code, r.stderr).toBe(0);
      try {
        return (await readdir(join(mnt, 'deep', 'er'))).sort();
      } finally {
        await run('umount', [mnt]);
        await waitUnmounted(mnt);
      }
    };
    const before = await cachesNow();
    expect(await mountOnce()).toEqual(['old.txt']);
    const first = (await cachesNow()).filter((n) => !before.includes(n));
    expect(first).toHaveLength(1); // the mount process wrote one cache for this lower set
    expect(await mountOnce()).toEqual(['old.txt']); // unchanged lowers: the same cache, nothing new
    expect((await cachesNow()).filter((n) => !before.includes(n))).toEqual(first);
    // A change two directories below the lower's root (the root's own ctime does not move).
    await writeFile(join(dir, 'l2', 'deep', 'er', 'new.txt'), 'new\n');
    expect(await mountOnce()).toEqual(['new.txt', 'old.txt']);
    const second = (await cachesNow()).filter((n) => !before.includes(n));
    expect(second).toHaveLength(1);
    expect(second[0]).not.toBe(first[0]); // the stale cache is gone, a new one stands for the new tree
    await rm(join(overlayIndexDir(), second[0]!), { force: true });
  });

  it('rejects a missing lowerdir or an upperdir without workdir with one line', async () => {
    const dir = await tempDir();
    await layers(dir);
    const none = await runOverlay(['-o', 'upperdir=upper,workdir=work', 'merged'], { cwd: dir });
    expect(none.code).not.toBe(0);
    expect(none.stderr).toMatch(/^layerfs: no lowerdir= given/);
    const half = await runOverlay(['-o', 'lowerdir=l1,upperdir=upper', 'merged'], { cwd: dir });
    expect(half.stderr).toMatch(/upperdir= and workdir= go together/);
    expect(isMounted(join(dir, 'merged'))).toBe(false);
  });

  it('says what is wrong with the arguments as the node front end did: same line, same exit code', async () => {
    const dir = await tempDir();
    await layers(dir);
    const missing = await runOverlay(['-o', `lowerdir=${dir}/nope:l2,upperdir=upper,workdir=work`, 'merged'], { cwd: dir });
    expect(missing).toEqual({ code: 1, stdout: '', stderr: `layerfs: lowerdir ${dir}/nope does not exist\n` });
    const flag = await runOverlay(['-x', '-o', 'lowerdir=l1', 'merged'], { cwd: dir });
    expect(flag).toEqual({ code: 2, stdout: '', stderr: 'layerfs: unknown flag -x\n' });
    expect(await processesMentioning(dir)).toEqual([]);
    expect(isMounted(join(dir, 'merged'))).toBe(false);
  });

  it('a mount that fails exits non-zero with the reason, and leaves no process and a mountpoint that mounts again', async () => {
    const dir = await tempDir();
    await layers(dir);
    const mnt = join(dir, 'merged');
    // The arguments are fine; the union cannot open (no such upper directory).
    const r = await runOverlay(['-o', `lowerdir=l1:l2,upperdir=${dir}/gone,workdir=work`, mnt], { cwd: dir });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`^layerfs: cannot mount ${mnt}: .*${dir}/gone`));
    expect(r.stderr).toMatch(/\nhint: the mount's log: \S+overlay-\S+\.log\n$/);
    // The front end returns once the mount process is gone, not before.
    expect(await processesMentioning(dir)).toEqual([]);
    expect(isMounted(mnt)).toBe(false);
    await writeFile(join(mnt, 'plain.txt'), 'a plain directory still\n');
    await rm(join(mnt, 'plain.txt'));
    const again = await runOverlay(['-o', 'lowerdir=l1:l2,upperdir=upper,workdir=work', mnt], { cwd: dir });
    expect(again.code, again.stderr).toBe(0);
    try {
      expect((await readdir(mnt)).sort()).toEqual(['base.txt', 'top.txt']);
    } finally {
      await run('umount', [mnt]);
      await waitUnmounted(mnt);
    }
  });

  it('starts exactly one node process, detached and holding none of the caller\'s output, also when run through an npm -g style symlink', async () => {
    const dir = await tempDir();
    await layers(dir);
    const mnt = join(dir, 'merged');
    // npm -g links the bin beside node: the front end runs the `node` beside the name it
    // was run by, here one that counts its starts.
    const bin = join(dir, 'bin');
    await mkdir(bin);
    await symlink(LAYERFS_OVERLAY, join(bin, 'layerfs-overlay'));
    const starts = join(dir, 'node-starts');
    await writeFile(join(bin, 'node'), `#!/bin/sh\necho "$$" >> "${starts}"\nexec "${process.execPath}" "$@"\n`);
    await chmod(join(bin, 'node'), 0o755);
    const env = { ...process.env };
    delete env.LAYERFS_NODE;
    const r = await runProgram(join(bin, 'layerfs-overlay'), ['-o', 'lowerdir=l1:l2,upperdir=upper,workdir=work', mnt], { cwd: dir, env });
    expect(r.code, r.stderr).toBe(0);
    try {
      const pids = (await readFile(starts, 'utf8')).trim().split('\n');
      expect(pids).toHaveLength(1);
      const pid = Number(pids[0]);
      expect(await processesMentioning(dir)).toEqual([pid]); // the one node is the mount process
      // …with the mount process's node flags (as the supervisor starts it), running the
      // build's one-file bundle (scripts/bundle-mount.mjs), not ~100 modules.
      const argv = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0');
      expect(argv.slice(1, MOUNT_PROCESS_NODE_FLAGS.length + 2)).toEqual([...MOUNT_PROCESS_NODE_FLAGS, join(REPO, 'dist', 'cli', 'overlay-main.bundle.cjs')]);
      // /proc/PID/stat after the name: state ppid pgrp session …
      const [ppid, , session] = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]!.split(' ').slice(1, 4).map(Number);
      expect(session).toBe(pid); // setsid: its own session, no terminal of the caller's
      expect(ppid).not.toBe(process.pid);
      expect(await readlink(`/proc/${pid}/fd/1`)).toBe('/dev/null');
      expect(await readlink(`/proc/${pid}/fd/2`)).toMatch(/\/overlay-[^/]+\.log$/); // the mount log, no longer the caller's stderr
      expect(await readFile(join(mnt, 'top.txt'), 'utf8')).toBe('from l1\n');
    } finally {
      await run('umount', [mnt]);
      await waitUnmounted(mnt);
    }
  });

  it('as root of a user namespace (how rootless podman runs it) keeps file data in the page cache', async () => {
    // uid 0 there has no CAP_SYS_ADMIN over the machine, so FUSE's backing-file ioctls
    // refuse it: the mount must not ask for passthrough, or every open falls back to
    // direct I/O and nothing read is ever cached (each exec of a binary reads it again).
    const dir = await tempDir();
    await layers(dir);
    await writeFile(join(dir, 'l2', 'big.bin'), Buffer.alloc(1 << 20, 7));
    const script = [
      'set -e',
      "trap 'umount merged 2>/dev/null || true' EXIT",
      `"${LAYERFS_OVERLAY}" -o lowerdir=l1:l2,upperdir=upper,workdir=work merged`,
      'cat merged/big.bin >/dev/null',
      'fincore --noheadings --raw --output PAGES merged/big.bin',
    ].join('\n');
    try {
      const r = await asNamespaceRoot(dir, script);
      expect(Number(r.stdout.trim())).toBe((1 << 20) / 4096);
    } finally {
      // The mount process lived in the namespace's mounts; it ends with its mount.
      for (const pid of await processesMentioning(dir)) process.kill(pid, 'SIGTERM');
    }
  });

  it('as root of a user namespace answers a lower file\'s opens and reads without JavaScript', async () => {
    // No passthrough there: a lower file's opens keep the page cache, and once the file is
    // registered (at its LOOKUP, or at an open that reached JS) the request loop answers
    // its OPEN, READ and RELEASE itself.
    const dir = await tempDir();
    await layers(dir);
    const data = randomBytes(3 << 20);
    await writeFile(join(dir, 'l2', 'big.bin'), data);
    const mnt = join(dir, 'merged');
    const script = [
      'set -e',
      `trap 'umount "${mnt}" 2>/dev/null || true' EXIT`,
      // The layerfs engine's request loop, whichever engine this run of the suite tests.
      `"${LAYERFS_OVERLAY}" -o engine=layerfs,lowerdir=l1:l2,upperdir=upper,workdir=work "${mnt}"`,
      `pid=$(pgrep -f 'overlay-main[.]bundle.*${mnt}')`, // [.]: not this script's own text
      // SIGUSR2: the mount process logs its request counts (JS's) to the mount's log.
      'counts() { n=$(grep -c "request counts" /proc/$pid/fd/2 || true); kill -USR2 $pid; i=0',
      '  while [ "$(grep -c "request counts" /proc/$pid/fd/2)" = "$n" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done',
      '  grep "request counts" /proc/$pid/fd/2 | tail -1 | sed "s/.*request counts //"; }',
      `cat "${mnt}/big.bin" >/dev/null`,
      'counts',
      // A directory's rename ends every registration (a new name alone does not); the
      // name stays cached, so the next open reaches JS, which hands it to the loop.
      `: > "${mnt}/new"`,
      `mkdir "${mnt}/d1"`,
      `mv "${mnt}/d1" "${mnt}/d2"`,
      `for i in 1 2 3; do cat "${mnt}/big.bin" >/dev/null; done`,
      // O_DIRECT bypasses the page cache: every block is a READ request.
      `dd if="${mnt}/big.bin" of=direct.bin iflag=direct bs=64k status=none`,
      'counts',
    ].join('\n');
    try {
      const r = await asNamespaceRoot(dir, script);
      const [first, after] = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>);
      for (const op of ['open', 'read', 'release']) expect(first![op], op).toBeUndefined();
      expect(after!.open).toBe(1);
      expect(after!.read).toBeUndefined();
      expect(after!.release).toBe(1); // the new file's
      expect((await readFile(join(dir, 'direct.bin'))).equals(data)).toBe(true);
    } finally {
      for (const pid of await processesMentioning(mnt)) process.kill(pid, 'SIGTERM');
    }
  });

  it('as root of a user namespace writes through JavaScript what a plain directory holds after the same writes', async () => {
    // No passthrough there: every WRITE reaches the engine, small ones written at once on
    // the JS thread, big ones by the device's IO threads (open-files.ts, INLINE_WRITE_MAX).
    // The same writes to a plain directory are the oracle: offsets, appends and the lower
    // file copied up.
    const dir = await tempDir();
    await layers(dir);
    await writeFile(join(dir, 'big.bin'), randomBytes(300 << 10));
    await mkdir(join(dir, 'plain'));
    await writeFile(join(dir, 'plain', 'base.txt'), 'from l2\n');
    const mnt = join(dir, 'merged');
    const writes = (d: string) => [
      `printf abc > "${d}/f"`,
      `dd if=big.bin of="${d}/f" bs=100k seek=1 conv=notrunc status=none`,
      `printf xyz >> "${d}/f"`,
      `printf 12345 | dd of="${d}/f" bs=1 seek=2 conv=notrunc status=none`,
      `dd if=big.bin of="${d}/f" bs=4k count=3 skip=7 seek=70 conv=notrunc status=none`,
      `printf 'appended\\n' >> "${d}/base.txt"`,
      `dd if=big.bin of="${d}/base.txt" bs=200k count=1 seek=1 conv=notrunc oflag=append status=none`,
    ];
    const script = [
      'set -e',
      `trap 'umount "${mnt}" 2>/dev/null || true' EXIT`,
      `"${LAYERFS_OVERLAY}" -o engine=layerfs,lowerdir=l1:l2,upperdir=upper,workdir=work "${mnt}"`,
      `pid=$(pgrep -f 'overlay-main[.]bundle.*${mnt}')`,
      ...writes(mnt),
      ...writes('plain'),
      'kill -USR2 $pid; i=0',
      'while ! grep -q "request counts" /proc/$pid/fd/2 && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done',
      'grep "request counts" /proc/$pid/fd/2 | tail -1 | sed "s/.*request counts //"',
      `for f in f base.txt; do cmp "${mnt}/$f" "plain/$f"; done`,
    ].join('\n');
    try {
      const r = await asNamespaceRoot(dir, script);
      const counts = JSON.parse(r.stdout.trim()) as Record<string, number>;
      expect(counts.write).toBeGreaterThanOrEqual(7);
      for (const f of ['f', 'base.txt']) {
        expect((await readFile(join(dir, 'upper', f))).equals(await readFile(join(dir, 'plain', f))), f).toBe(true);
      }
      expect(await readFile(join(dir, 'l2', 'base.txt'), 'utf8')).toBe('from l2\n');
    } finally {
      for (const pid of await processesMentioning(mnt)) process.kill(pid, 'SIGTERM');
    }
  });

  it('mounts through mount(8): mount -t fuse.layerfs layerfs DIR -o lowerdir=…', async () => {
    const dir = await tempDir();
    await layers(dir);
    const mnt = join(dir, 'merged');
    await run('mount', ['-t', 'fuse.layerfs', 'layerfs', mnt, '-o', `lowerdir=${dir}/l1:${dir}/l2,upperdir=${dir}/upper,workdir=${dir}/work`]);
    try {
      expect(await readFile(join(mnt, 'top.txt'), 'utf8')).toBe('from l1\n');
      const line = (await readFile('/proc/self/mounts', 'utf8')).split('\n').find((l) => l.includes(` ${mnt} `));
      expect(line).toMatch(/^layerfs \S+ fuse\.layerfs /);
    } finally {
      await run('umount', [mnt]);
    }
    await waitUnmounted(mnt);
  });

  it('serves buildah as its overlay mount_program: a Dockerfile that writes, deletes and recreates', async () => {
    const dir = await tempDir();
    const program = join(dir, 'layerfs-overlay');
    await writeOverlayWrapper(program);
    await writeFile(
      join(dir, 'Dockerfile'),
      [
        'FROM localhost/sample:latest',
        'RUN echo created > /app/new.txt && rm /app/hello.txt && echo more >> /etc/motd',
        'RUN rm -rf /app && mkdir /app && echo recreated > /app/again.txt',
        'RUN test "$(cat /app/again.txt)" = recreated && test ! -e /app/numbers.txt',
      ].join('\n') + '\n',
    );
    const buildah = ['--root', join(dir, 'storage'), '--runroot', join(dir, 'run'), '--storage-driver', 'overlay', '--storage-opt', `overlay.mount_program=${program}`];
    try {
      // Temp paths hold capitals, which image names may not: import, then tag.
      const storage = `containers-storage:[overlay@${dir}/storage+${dir}/run:overlay.mount_program=${program}]localhost/sample:latest`;
      await run('skopeo', ['copy', '-q', `oci:${sampleOci}:latest`, storage]);
      await run('buildah', [...buildah, 'bud', '--isolation', 'chroot', '-t', 'built', dir], { maxBuffer: 16 << 20 });
      await run('buildah', [...buildah, 'push', 'built', `oci:${dir}/out:latest`]);
    } finally {
      // buildah unmounts its containers; anything it left under our dir is cleaned here.
      const { stdout } = await run('sh', ['-c', `grep -o '${dir}[^ ]*' /proc/self/mounts || true`]);
      for (const m of stdout.split('\n').filter(Boolean).reverse()) await forceUnmount(m);
      await run('buildah', [...buildah, 'rm', '--all']).catch(() => undefined);
    }
    // layerfs (not the kernel or fuse-overlayfs) served buildah's build containers.
    const logNames = (await readdir('/run/layerfs')).filter((f) => f.endsWith('.log')); // not overlay-index/
    const logs = await Promise.all(logNames.map((f) => readFile(join('/run/layerfs', f), 'utf8')));
    expect(logs.some((l) => l.includes(`serving ${dir}/storage/overlay/`) && l.includes('writable'))).toBe(true);
    await run('umoci', ['unpack', '--image', `${dir}/out:latest`, join(dir, 'bundle')]);
    const rootfs = join(dir, 'bundle', 'rootfs');
    expect(await readdir(join(rootfs, 'app'))).toEqual(['again.txt']);
    expect(await readFile(join(rootfs, 'etc', 'motd'), 'utf8')).toMatch(/app layer[\s\S]*more\n$/);
  }, 300_000);
});
