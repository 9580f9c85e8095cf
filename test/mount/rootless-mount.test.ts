/**
 * Rootless mounts (issue 14), every verb run as an ordinary uid: `layerfs mount` through
 * fusermount3 (the layerfs engine), what the mount reports (override owners as host ids
 * through the user's namespace layout), copy-up, whiteouts and opaque directories written
 * unprivileged, `umount`, recovery after the mount process is killed, and the kernel's
 * overlayfs mounted BY THE SAME USER in a user namespace with `userxattr` reading the
 * writable layer the same (the oracle crossing, unprivileged).
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { LAYERFS } from '../helpers/cli.js';
import { makeTar, writeOciLayout } from '../helpers/images.js';
import { testUser, userEnv, userTempDir, type TestUser } from '../helpers/rootless.js';
import { UserFuseNamespace } from '../helpers/user-fuse-ns.js';

const sha = (s: string): string => createHash('sha256').update(s).digest('hex').slice(0, 16);

/** A listing of a tree as `find` + `stat` + `sha256sum` see it, run in the namespace. */
const LIST = 'cd "$1" && find . -mindepth 1 | sort | while read -r p; do t=$(stat -c %F "$p"); case "$t" in "regular file"|"regular empty file") echo "$p file $(sha256sum < "$p" | cut -c1-16)";; "symbolic link") echo "$p link $(readlink "$p")";; *) echo "$p $t";; esac; done';

async function imageLayout(dir: string): Promise<void> {
  const base = await makeTar([
    { name: 'etc/', type: 'directory' },
    { name: 'etc/hostname', data: 'box\n' },
    { name: 'var/', type: 'directory' },
    { name: 'var/www/', type: 'directory', uid: 33, gid: 33, mode: 0o755 },
    { name: 'var/www/index.html', data: 'hi\n', uid: 33, gid: 33, mode: 0o644 },
    { name: 'data/', type: 'directory' },
    { name: 'data/old/', type: 'directory' },
    { name: 'data/old/a', data: 'a\n' },
    { name: 'data/keep', data: 'keep\n' },
    { name: 'link', type: 'symlink', linkname: 'etc/hostname' },
    { name: 'etc/passwd', data: 'root:x:0:0::/root:/bin/sh\nwww-data:x:33:33::/var/www:/bin/sh\n' },
    { name: 'etc/group', data: 'root:x:0:\nwww-data:x:33:\n' },
    { name: 'bin/', type: 'directory' },
    { name: 'bin/busybox', data: await readFile('/bin/busybox'), mode: 0o755 },
    { name: 'bin/sh', type: 'symlink', linkname: 'busybox' },
    { name: 'tmp/', type: 'directory', mode: 0o1777 },
  ]);
  await writeOciLayout(dir, [{ tar: base }], { tag: 'latest' });
}

for (const name of ['layerfs-nosubid', 'layerfs-rootless'] as const) {
  describe.skipIf(!inject('canMount'))(`rootless mount as ${name}`, () => {
    let user: TestUser;
    let ns: UserFuseNamespace;
    let env: NodeJS.ProcessEnv;
    let work: string;
    let root: string;
    const lf = (args: string[]): Promise<string> => ns.runOk(user, env, [process.execPath, LAYERFS, '--root', root, ...args]);
    const sh = (script: string, ...args: string[]): Promise<string> => ns.runOk(user, env, ['sh', '-c', script, 'sh', ...args]);

    beforeAll(async () => {
      user = testUser(name);
      work = await userTempDir(user);
      ns = await UserFuseNamespace.start(work);
      env = await userEnv(user, work);
      root = join(work, 'store');
      await imageLayout(join(work, 'image'));
      await lf(['load', '-i', join(work, 'image'), '--name', 'img']);
      await sh('mkdir "$1"', join(work, 'm'));
    });
    afterAll(async () => {
      await ns.run(user, env, [process.execPath, LAYERFS, '--root', root, 'umount', 'c']);
      await ns.stop();
    });

    it('mounts through fusermount3 and reports the image owners as this user sees them', async () => {
      const m = join(work, 'm');
      await lf(['mount', '--name', 'c', 'img', m]);
      const here = (await ns.mounts()).filter((e) => e.mountpoint === m);
      expect(here.map((e) => e.fstype)).toEqual(['fuse.layerfs']);
      expect(await sh('cat "$1/etc/hostname"', m)).toBe('box\n');
      // Image uid 0 is the user; image uid 33 is subuid+32, or unmapped (65534) without ranges.
      const owners = (await sh('stat -c "%u:%g %a" "$1/etc/hostname" "$1/var/www/index.html"', m)).trim().split('\n');
      const www = user.subuid !== undefined ? `${user.subuid + 32}:${user.subgid! + 32}` : '65534:65534';
      expect(owners).toEqual([`${user.uid}:${user.gid} 644`, `${www} 644`]);
    });

    it('writes as the image root would: copy-up, whiteouts and opaque directories in the writable layer', async () => {
      const m = join(work, 'm');
      await sh('echo changed > "$1/etc/hostname" && echo new > "$1/etc/new" && rm "$1/data/keep" && rm -r "$1/data/old" && mkdir "$1/data/old" && echo b > "$1/data/old/b"', m);
      expect(await sh('cat "$1/etc/hostname" "$1/etc/new"; ls "$1/data"; ls "$1/data/old"', m)).toBe('changed\nnew\nold\nb\n');
      const info = JSON.parse(await lf(['ps', '-a', '--json'])) as { id: string }[];
      const upper = join(root, 'containers', info[0]!.id, 'upper');
      const marks = await sh('stat -c "%F %t:%T" "$1/data/keep"; getfattr --absolute-names -n user.overlay.opaque --only-values "$1/data/old"; echo; getfattr --absolute-names -d -m - "$1/data/old" | grep -c trusted || true', upper);
      expect(marks.trim().split('\n')).toEqual(['character special file 0:0', 'y', '0']);
    });

    it('umount keeps the layer; the kernel overlayfs (userxattr, in this user\'s namespace) shows the same tree', async () => {
      const m = join(work, 'm');
      const ours = await sh(LIST, m);
      await lf(['umount', 'c']);
      expect((await ns.mounts()).filter((e) => e.mountpoint === m)).toEqual([]);
      const info = JSON.parse(await lf(['inspect', 'img'])) as { Store: { Layers: { Diff: string }[] } }[];
      const lowers = info[0]!.Store.Layers.map((l) => l.Diff).reverse().join(':');
      const id = (JSON.parse(await lf(['ps', '-a', '--json'])) as { id: string }[])[0]!.id;
      const c = join(root, 'containers', id);
      const k = join(work, 'k');
      const kernel = await ns.runOk(user, env, ['unshare', '-Urm', 'sh', '-c',
        `mkdir -p ${k} && mount -t overlay overlay -o lowerdir=${lowers},upperdir=${c}/upper,workdir=${c}/work,userxattr,redirect_dir=nofollow,index=off,metacopy=off,xino=off ${k} && ${LIST.replaceAll('"$1"', k)}`]);
      expect(kernel).toBe(ours);
      expect(ours).toContain(`./etc/hostname file ${sha('changed\n')}`);
      expect(ours).not.toContain('./data/keep');
      expect(ours).not.toContain('./data/old/a');
    });

    it('a killed mount process leaves a dead mount the next command clears (fusermount3 -u -z)', async () => {
      const m = join(work, 'm');
      await lf(['mount', '--name', 'c', 'img', m]);
      const pid = (JSON.parse(await lf(['ps', '-a', '--json'])) as { pid: number }[])[0]!.pid;
      process.kill(pid, 'SIGKILL');
      const out = await ns.run(user, env, [process.execPath, LAYERFS, '--root', root, 'ps']);
      expect(out.code).toBe(0);
      expect((await ns.mounts()).filter((e) => e.mountpoint === m)).toEqual([]);
      expect(await sh('cat "$1/etc/new"', join(root, 'containers', (JSON.parse(await lf(['ps', '-a', '--json'])) as { id: string }[])[0]!.id, 'upper'))).toBe('new\n');
    });

    it('build: RUN steps that write, delete and recreate; the committed layers carry container ids, not host ids', async () => {
      const ctx = join(work, 'ctx');
      await sh('mkdir -p "$1" && printf "%s\\n" "FROM img" "RUN echo one > /a && /bin/busybox mkdir -p /d && echo x > /d/x" "RUN /bin/busybox rm -r /d && echo two >> /a" "RUN /bin/busybox rm /a && echo three > /a" > "$1/Dockerfile"', ctx);
      await lf(['build', '-t', 'built', ctx]);
      expect(await lf(['run', '--rm', 'built', '/bin/busybox', 'cat', '/a'])).toBe('three\n');
      await lf(['save', '-o', join(work, 'built.tar'), 'built']);
      const listing = await sh('cd "$1" && mkdir -p saved && cd saved && tar -xf ../built.tar && for b in blobs/sha256/*; do tar --numeric-owner -tvzf "$b" 2>/dev/null || true; done', work);
      const owners = new Set(listing.trim().split('\n').map((l) => l.split(/\s+/)[1]));
      // The base layer's www-data (33) and root; never the user's or a subordinate host id.
      expect(owners).toEqual(new Set(['0/0', '33/33']));
      expect(listing).toMatch(/ \.wh\.d$/m);
    });

    it('run --rm: runc in a user namespace of the store\'s layout, on a rootless mount, network none', async () => {
      const out = await lf(['run', '--rm', '-e', 'PATH=/bin', 'img', '/bin/sh', '-c', 'busybox id -u; busybox cat /proc/self/uid_map; echo hi > /tmp/x && busybox cat /tmp/x; busybox ls /sys/class/net']);
      const lines = out.trim().split('\n').map((l) => l.trim().split(/\s+/).join(' '));
      const maps = user.subuid !== undefined ? [`0 ${user.uid} 1`, `1 ${user.subuid} 65536`] : [`0 ${user.uid} 1`];
      expect(lines).toEqual(['0', ...maps, 'hi', 'lo']);
      const left = (JSON.parse(await lf(['ps', '-a', '--json'])) as { name: string }[]).map((c) => c.name);
      expect(left).toEqual(['c']);
    });
  });
}
