/**
 * layerfs-overlay as containers-storage's `mount_program` under a real podman (Debian's
 * 4.3, as root, its own storage and config in a temp dir: helpers/podman.ts), the way
 * fuse-overlayfs is used. Each step runs on three stores — layerfs-overlay, fuse-overlayfs
 * and the kernel's overlayfs (the oracle) — with the sample image (three layers, one of
 * them deleting /etc/os-release: with a mount program containers-storage stores that as
 * an AUFS `.wh.` file, which the mount must read as a whiteout).
 *
 * What is compared: a container's output and exit code; the tree a committed container
 * leaves (every path, type, mode, owner, content hash) against the kernel's; `podman diff`
 * against fuse-overlayfs's exactly (both mount-program stores diff the same way, by
 * walking two mounts) and its additions against the kernel's (which reads the upper
 * directory instead, so a directory deleted and made again shows as D+A there, as C plus
 * its deleted children here). `buildah bud` on the same store builds a Dockerfile whose
 * RUN steps write, delete and recreate; the image's tree must equal the kernel's. After
 * every step no mount is left under the temp dir.
 *
 * All of it twice: as root, and rootless as the test user layerfs-rootless (subordinate
 * ids; podman's own user namespace, where layerfs-overlay runs as its uid 0 and mounts
 * FUSE directly; a private mount namespace gives that user a 0666 /dev/fuse).
 */
import { execFile } from 'node:child_process';
import { chmod, copyFile, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { REPO } from '../helpers/cli.js';
import { tarDir } from '../helpers/images.js';
import { listMounts } from '../helpers/mounts.js';
import { FLAVOURS, hasPodman, startPodmanEnv, type Flavour, type PodmanEnv } from '../helpers/podman.js';
import { testUser } from '../helpers/rootless.js';
import { tempDir } from '../helpers/temp.js';

const exec = promisify(execFile);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const IMAGE = 'localhost/sample:latest';

/**
 * Every path of the container's own filesystem (not /proc, /sys, /dev, nor the files
 * podman binds in: they hold the container's id) with its type, mode, owner and content.
 */
const LIST = [
  'busybox find / -xdev ! -path /etc/hostname ! -path /etc/hosts ! -path /etc/resolv.conf ! -path /run/.containerenv | busybox sort | while read -r p; do',
  '  t=$(busybox stat -c %F "$p"); m=$(busybox stat -c "%a %u:%g" "$p");',
  '  case "$t" in',
  '    "regular file"|"regular empty file") echo "$p file $m $(busybox md5sum < "$p" | busybox cut -c1-12)";;',
  '    "symbolic link") echo "$p link $(busybox readlink "$p")";;',
  '    *) echo "$p $t $m";;',
  '  esac;',
  'done',
].join('\n');

/** Writes, deletes, a directory deleted and made again, a rename, a chmod/chown, links. */
const CHANGES = [
  'echo x > /f',
  'rm /etc/motd',
  'rm -r /app',
  'mkdir -p /app/sub',
  'echo new > /app/sub/n',
  'echo more >> /app/sub/n',
  'mkdir /tmp/t && echo a > /tmp/t/a',
  'rm /bin/true',
  'busybox mv /bin/false /bin/no',
  'busybox chmod 600 /etc/passwd',
  'busybox chown 1000:1000 /etc/group',
  'busybox ln -s /f /link',
  'busybox ln /f /hard',
  'touch /etc/os-release',
].join(' && ');

for (const mode of ['root', 'rootless'] as const) describe.skipIf(!inject('canMount') || !hasPodman())(`podman (${mode}) with layerfs-overlay as mount_program`, () => {
  let env: PodmanEnv;

  const allFlavours = async <T>(fn: (f: Flavour) => Promise<T>): Promise<Record<Flavour, T>> => {
    const out = {} as Record<Flavour, T>;
    // One at a time: the machine has two cores and the stores share nothing.
    for (const f of FLAVOURS) out[f] = await fn(f);
    return out;
  };

  /** The mount program's server notices an unmount within a second or so. */
  const noMountsLeft = async (): Promise<void> => {
    for (let i = 0; i < 100 && (await env.mountsLeft()).length > 0; i++) await sleep(100);
    expect(await env.mountsLeft()).toEqual([]);
  };

  beforeAll(async () => {
    const work = await tempDir('layerfs-podman-');
    await exec(join(REPO, 'scripts', 'make-sample-image'), [join(work, 'oci')]);
    await tarDir(join(work, 'oci'), join(work, 'sample.tar'));
    env = await startPodmanEnv(mode === 'rootless' ? { user: testUser('layerfs-rootless') } : {});
    // Where the rootless user can read it.
    const archive = join(env.work, 'sample.tar');
    await copyFile(join(work, 'sample.tar'), archive);
    await allFlavours(async (f) => {
      const id = (await env.podmanOk(f, ['pull', '-q', `oci-archive:${archive}`])).trim();
      await env.podmanOk(f, ['tag', id, IMAGE]);
    });
  }, 300_000);

  afterEach(async () => {
    await noMountsLeft();
  });

  afterAll(async () => {
    await env?.teardown();
  });

  it('podman run --rm: the same output and exit code as on fuse-overlayfs and the kernel overlayfs', async () => {
    const script = `${CHANGES} && cat /etc/motd 2>&1; ls -a /etc /app /; cat /app/sub/n /f /link; exit 7`;
    const r = await allFlavours((f) => env.podman(f, ['run', '--rm', '--network', 'none', IMAGE, 'sh', '-c', script]));
    for (const f of FLAVOURS) expect(r[f].code, `${f}: ${r[f].stderr}`).toBe(7);
    // Not fuse-overlayfs's output: its root directory lists no `..` (1.10); layerfs's does, as the kernel's.
    expect(r.layerfs.stdout).toBe(r.overlay.stdout);
    // The image's own whiteout (an AUFS file in this store) hides os-release and shows nothing itself.
    expect(r.layerfs.stdout).not.toContain('.wh.');
    expect(r.layerfs.stdout).toContain('new\nmore\nx\nx\n');
  });

  it('podman info names the mount program and its version (it runs `layerfs-overlay --version`)', async () => {
    const info = await env.podmanOk('layerfs', ['info']);
    expect(info).toMatch(/overlay\.mount_program:\s+Executable: \S+\/layerfs-overlay\s+Package: \S+\s+Version: '?layerfs-overlay: version \d+\.\d+\.\d+/);
  });

  // Rootless, podman's mounts live in its own mount namespace (seen through /proc/PID).
  if (mode === 'root') it('the rootfs is the mount program\'s FUSE mount while the container runs, gone after', async () => {
    const id = (await env.podmanOk('layerfs', ['run', '-d', '--network', 'none', IMAGE, 'sleep', '60'])).trim();
    try {
      const merged = (await env.podmanOk('layerfs', ['inspect', '--format', '{{.GraphDriver.Data.MergedDir}}', id])).trim();
      const m = listMounts().find((x) => x.mountpoint === merged);
      expect(m?.fstype).toBe('fuse.layerfs');
      const e = await env.podman('layerfs', ['exec', id, 'sh', '-c', 'echo from-exec > /e; cat /e /app/config.ini']);
      expect(e.stdout).toBe('from-exec\ngreeting=hello\n');
    } finally {
      await env.podmanOk('layerfs', ['rm', '-f', '-t', '0', id]);
    }
  });

  it('podman diff and commit: the committed tree equals the kernel overlayfs one; the diff equals fuse-overlayfs\'s', async () => {
    const res = await allFlavours(async (f) => {
      const run = await env.podman(f, ['run', '--name', 'changed', '--network', 'none', IMAGE, 'sh', '-c', CHANGES]);
      expect(run.code, `${f}: ${run.stderr}`).toBe(0);
      const diff = (await env.podmanOk(f, ['diff', 'changed'])).trim().split('\n').sort();
      await env.podmanOk(f, ['commit', '-q', 'changed', 'localhost/changed:latest']);
      await env.podmanOk(f, ['rm', 'changed']);
      const tree = await env.podman(f, ['run', '--rm', '--network', 'none', 'localhost/changed:latest', 'sh', '-c', LIST]);
      expect(tree.code, `${f}: ${tree.stderr}`).toBe(0);
      const imageDiff = (await env.podmanOk(f, ['diff', 'localhost/changed:latest'])).trim().split('\n').sort();
      return { diff, tree: tree.stdout.trim().split('\n'), imageDiff };
    });
    expect(res.layerfs.tree).toEqual(res.overlay.tree);
    expect(res.layerfs.tree).toContain('/link link /f');
    expect(res.layerfs.tree.some((l) => l.startsWith('/etc/motd'))).toBe(false);
    expect(res.layerfs.tree.some((l) => l.startsWith('/app/config.ini'))).toBe(false);
    expect(res.layerfs.tree).toContain('/etc/passwd file 600 0:0 ' + res.overlay.tree.find((l) => l.startsWith('/etc/passwd'))!.split(' ').pop());
    expect(res.layerfs.diff).toEqual(res['fuse-overlayfs'].diff);
    expect(res.layerfs.imageDiff).toEqual(res['fuse-overlayfs'].imageDiff);
    const added = (d: string[]): string[] => d.filter((l) => l.startsWith('A '));
    expect(added(res.layerfs.diff)).toEqual(added(res.overlay.diff));
    expect(res.layerfs.diff).toEqual(expect.arrayContaining(['A /f', 'A /app/sub/n', 'D /etc/motd', 'D /bin/true', 'C /etc/passwd']));
    // A container of the committed image sees the committed layer's whiteouts (AUFS files on disk).
    const again = await env.podman('layerfs', ['run', '--rm', '--network', 'none', 'localhost/changed:latest', 'sh', '-c', 'ls /app; cat /etc/motd']);
    expect(again.stdout).toBe('sub\n');
    expect(again.code).not.toBe(0);
  }, 600_000);

  it('buildah bud on the same store: RUN steps that write, delete and recreate; the image equals the kernel overlayfs one', async () => {
    const ctx = join(env.work, 'ctx');
    await mkdir(ctx, { recursive: true });
    await writeFile(
      join(ctx, 'Dockerfile'),
      [
        `FROM ${IMAGE}`,
        'RUN echo created > /app/new.txt && rm /app/hello.txt && echo more >> /etc/motd',
        'RUN rm -rf /app && mkdir /app && echo recreated > /app/again.txt && rm /etc/passwd',
        'RUN test "$(cat /app/again.txt)" = recreated && test ! -e /app/numbers.txt && test ! -e /etc/os-release && echo ok > /ok',
      ].join('\n') + '\n',
    );
    await chmod(ctx, 0o755);
    const logBefore = new Set((await env.layerfsLog()).split('\n'));
    const trees = await allFlavours(async (f) => {
      await env.buildahOk(f, ['bud', '--isolation', 'chroot', '-t', 'localhost/built:latest', ctx], 300_000);
      const t = await env.podman(f, ['run', '--rm', '--network', 'none', 'localhost/built:latest', 'sh', '-c', LIST]);
      expect(t.code, `${f}: ${t.stderr}`).toBe(0);
      return t.stdout;
    });
    expect(trees.layerfs).toBe(trees.overlay);
    // layerfs-overlay (not a fallback) served buildah's build containers, writable.
    // (buildah keeps its build container mounted across the RUN steps: one mount, plus the `podman run` of the image.)
    const served = (await env.layerfsLog()).split('\n').filter((l) => !logBefore.has(l) && /serving \S+\/lf\/root\/overlay\/\S+\/merged with \S+ \(\d+ lower, writable/.test(l));
    expect(served.length).toBeGreaterThanOrEqual(2);
    expect(trees.layerfs).toContain('/app/again.txt file');
    expect(trees.layerfs).toContain('/ok file');
    expect(trees.layerfs).not.toContain('/etc/passwd');
  }, 600_000);

  // `podman mount` needs `podman unshare` rootless.
  if (mode === 'root') it('podman mount / umount of a container gives the same tree on the host as the kernel overlayfs', async () => {
    const trees = await allFlavours(async (f) => {
      await env.podmanOk(f, ['create', '--name', 'mounted', '--network', 'none', IMAGE, 'true']);
      try {
        const dir = (await env.podmanOk(f, ['mount', 'mounted'])).trim();
        const { stdout } = await exec('sh', ['-c', 'cd "$1" && find . | sort | while read -r p; do echo "$p $(stat -c "%F %a %u:%g" "$p")"; done', 'sh', dir]);
        await env.podmanOk(f, ['umount', 'mounted']);
        return stdout;
      } finally {
        await env.podmanOk(f, ['rm', '-f', 'mounted']);
      }
    });
    expect(trees.layerfs).toBe(trees.overlay);
    expect(trees.layerfs).not.toContain('.wh.');
    expect(trees.layerfs).not.toContain('os-release');
  }, 300_000);
});
