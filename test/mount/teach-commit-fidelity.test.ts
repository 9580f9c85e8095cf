/**
 * `layerfs commit` keeps everything a container can make: hard links, symlinks, fifos,
 * devices, setuid bits, owners, user xattrs, an empty file, a renamed file, a directory
 * renamed inside a renamed directory (nested redirects), a file replaced by a directory
 * — the committed image mounts to the exact same tree (xattrs and hard-link groups
 * included). Also: `--change` parsing, and names a layer cannot carry are refused.
 */
import { chmod, chown, link, mkdir, readdir, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import * as sys from '../../src/sys/native.js';
import { applyConfigChanges } from '../../src/commit/index.js';
import { cli, cliOk, REPO } from '../helpers/cli.js';
import { canonical, run, snapshot } from '../helpers/images.js';
import { storeWithSampleImage } from '../helpers/sample-image.js';
import { tempDir } from '../helpers/temp.js';

const exec = promisify(execFile);

describe('commit --change instructions', () => {
  it('applies CMD/ENTRYPOINT (exec and shell form), ENV, WORKDIR, USER, EXPOSE, LABEL, VOLUME, STOPSIGNAL', () => {
    const base = { Cmd: ['/bin/sh'], Env: ['PATH=/bin', 'A=1'], WorkingDir: '/app' };
    expect(applyConfigChanges(base, ['CMD ["/bin/echo", "hi"]'])).toMatchObject({ Cmd: ['/bin/echo', 'hi'] });
    expect(applyConfigChanges(base, ['CMD echo hi'])).toMatchObject({ Cmd: ['/bin/sh', '-c', 'echo hi'] });
    // As in a Dockerfile: ENTRYPOINT drops the inherited CMD unless CMD is set too.
    expect(applyConfigChanges(base, ['ENTRYPOINT ["/bin/busybox"]'])).not.toHaveProperty('Cmd');
    expect(applyConfigChanges(base, ['ENTRYPOINT ["/bin/busybox"]', 'CMD ["ls"]'])).toMatchObject({ Entrypoint: ['/bin/busybox'], Cmd: ['ls'] });
    expect(applyConfigChanges(base, ['ENV A=2 B="two words"']).Env).toEqual(['PATH=/bin', 'A=2', 'B=two words']);
    expect(applyConfigChanges(base, ['ENV C three words']).Env).toEqual(['PATH=/bin', 'A=1', 'C=three words']);
    expect(applyConfigChanges(base, ['WORKDIR sub']).WorkingDir).toBe('/app/sub');
    expect(applyConfigChanges(base, ['workdir /srv', 'USER 1000:1000', 'EXPOSE 80 53/udp', 'LABEL a=b', 'VOLUME /data', 'STOPSIGNAL SIGINT'])).toMatchObject({
      WorkingDir: '/srv', User: '1000:1000', ExposedPorts: { '80/tcp': {}, '53/udp': {} }, Labels: { a: 'b' }, Volumes: { '/data': {} }, StopSignal: 'SIGINT',
    });
    expect(base.Env).toEqual(['PATH=/bin', 'A=1']);
    expect(() => applyConfigChanges(base, ['RUN rm -rf /'])).toThrow(/RUN is not supported/);
    expect(() => applyConfigChanges(base, ['CMD ["unclosed"'])).toThrow(/not a valid JSON array/);
  });
});

describe.skipIf(!inject('canMount'))('commit fidelity', () => {
  let root: string;
  let work: string;

  beforeAll(async () => {
    ({ work, root } = await storeWithSampleImage());
  });

  it('the committed image mounts to exactly the container tree, links, xattrs and special files included', async () => {
    const m1 = join(work, 'm1');
    const m2 = join(work, 'm2');
    await mkdir(m1);
    await mkdir(m2);
    await cliOk(root, ['mount', '--name', 'rich', 'sample', m1]);
    try {
      const d = join(m1, 'data');
      await mkdir(join(d, 'deep', 'er'), { recursive: true });
      await writeFile(join(d, 'a.txt'), 'hard linked\n');
      // Owner and xattr before linking: the mount caches attributes per name for a while.
      await chown(join(d, 'a.txt'), 1000, 1000);
      await sys.lsetxattr(join(d, 'a.txt'), 'user.note', Buffer.from('kept'));
      await link(join(d, 'a.txt'), join(d, 'deep', 'b.txt'));
      await symlink('../etc/passwd', join(d, 'passwd-link'));
      await exec('mkfifo', [join(d, 'fifo')]);
      await sys.mknod(join(d, 'null'), 0o020666, sys.makedev(1, 3));
      await writeFile(join(d, 'empty'), '');
      await writeFile(join(d, 'suid'), '#!/bin/sh\n');
      await chmod(join(d, 'suid'), 0o4755);
      // Rename a lower file; rename a lower directory, then a directory inside it.
      await rename(join(m1, 'app', 'numbers.txt'), join(m1, 'app', 'renamed.txt'));
      await rename(join(m1, 'etc'), join(m1, 'config'));
      await mkdir(join(m1, 'config', 'inner'));
      await writeFile(join(m1, 'config', 'inner', 'x'), 'x\n');
      await rename(join(m1, 'config', 'inner'), join(m1, 'config', 'inner2'));
      // A lower file replaced by a directory.
      await rm(join(m1, 'app', 'hello.txt'));
      await mkdir(join(m1, 'app', 'hello.txt'));
      await writeFile(join(m1, 'app', 'hello.txt', 'inside'), 'now a directory\n');
      await cliOk(root, ['commit', 'rich', 'sample:rich']);
      // Its layer cache, extracted while the tar was written, is what the blob extracts to.
      expect(await cliOk(root, ['check', 'sample:rich'])).toMatch(/store is consistent/);
      const before = canonical(await snapshot(m1));
      await cliOk(root, ['mount', '--name', 'rich2', 'sample:rich', m2]);
      try {
        const after = canonical(await snapshot(m2));
        expect(after).toEqual(before);
        expect(after['data/a.txt']).toMatchObject({ uid: 1000, xattrs: { 'user.note': Buffer.from('kept').toString('hex') }, links: ['data/a.txt', 'data/deep/b.txt'] });
        expect(after['data/suid']!.mode).toBe(0o4755);
        expect(after['data/null']).toMatchObject({ type: 'char', rdev: '1,3' });
        expect(after['data/fifo']!.type).toBe('fifo');
        expect(after['etc']).toBeUndefined();
        expect(after['config/motd']!.type).toBe('file');
        expect(await cliOk(root, ['diff', 'rich2'])).toBe('');
      } finally {
        await cliOk(root, ['rm', '-f', 'rich2']);
      }
    } finally {
      await cliOk(root, ['rm', '-f', 'rich']);
    }
  });

  it('refuses a name that is not UTF-8 (a layer tar cannot carry it exactly) and leaves the store unchanged', async () => {
    const m = join(work, 'bad');
    await mkdir(m);
    await cliOk(root, ['mount', '--name', 'bad', 'sample', m]);
    try {
      await writeFile(Buffer.concat([Buffer.from(`${m}/root/`), Buffer.from([0xff, 0x41])]), 'x');
      const images = await cliOk(root, ['images', '-q']);
      const caches = await readdir(join(root, 'layers'));
      const r = await cli(root, ['commit', 'bad', 'sample:bad']);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/not valid UTF-8/);
      expect(await cliOk(root, ['images', '-q'])).toBe(images);
      // Nor a half-extracted layer cache (commit extracts while it writes the tar).
      expect(await readdir(join(root, 'layers'))).toEqual(caches);
    } finally {
      await cliOk(root, ['rm', '-f', 'bad']);
    }
  });
});
