/**
 * `layerfs diff` and `layerfs commit` on the sample image through real mounts: the
 * changes of a container that modified, deleted (whiteout), emptied and refilled a
 * directory (opaque) and renamed a lower directory (redirect) are reported like
 * `docker diff`, mounted or not; the committed image mounts with exactly the container's
 * view, and `save` of it is read by skopeo and unpacked by umoci to that same tree.
 */
import { appendFile, lstat, mkdir, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import * as sys from '../../src/sys/native.js';
import { cli, cliOk, REPO } from '../helpers/cli.js';
import { canonical, run, snapshot } from '../helpers/images.js';
import { isMounted } from '../helpers/mounts.js';
import { storeWithSampleImage } from '../helpers/sample-image.js';
import { tempDir } from '../helpers/temp.js';

/** Paths, types, modes, owners, sizes, content hashes, symlink targets (no times). */
async function tree(dir: string) {
  const c = canonical(await snapshot(dir));
  return Object.fromEntries(Object.entries(c).map(([p, e]) => [p, { type: e.type, mode: e.mode, uid: e.uid, gid: e.gid, size: e.size, hash: e.hash, target: e.target }]));
}

describe.skipIf(!inject('canMount'))('layerfs diff / commit', () => {
  let root: string;
  let work: string;
  let mnt: string;
  let upper: string;
  let toolNames: string[];

  beforeAll(async () => {
    ({ work, root } = await storeWithSampleImage());
    mnt = join(work, 'm1');
    await mkdir(mnt);
    const id = (await cliOk(root, ['mount', '--name', 'c1', 'sample', mnt])).trim();
    upper = join(root, 'containers', id, 'upper');
    try {
      await appendFile(join(mnt, 'etc', 'motd'), 'changed in the container\n');
      await rm(join(mnt, 'etc', 'group'));
      await mkdir(join(mnt, 'newdir', 'sub'), { recursive: true });
      await writeFile(join(mnt, 'newdir', 'sub', 'f'), 'new file\n');
      // Empty /app and fill it again: the new /app is opaque.
      await rm(join(mnt, 'app'), { recursive: true });
      await mkdir(join(mnt, 'app'));
      await writeFile(join(mnt, 'app', 'hello.txt'), 'a new hello\n');
      await writeFile(join(mnt, 'app', 'new.txt'), 'new\n');
      // Rename a lower directory: a redirect, plus a whiteout at the old name.
      await rename(join(mnt, 'bin'), join(mnt, 'tools'));
      toolNames = (await readdir(join(mnt, 'tools'))).sort();
    } catch (err) {
      await cliOk(root, ['rm', '-f', 'c1']);
      throw err;
    }
  });

  const expected = () => [
    'C /app', 'D /app/config.ini', 'C /app/hello.txt', 'A /app/new.txt', 'D /app/numbers.txt',
    'D /bin',
    'C /etc', 'D /etc/group', 'C /etc/motd',
    'A /newdir', 'A /newdir/sub', 'A /newdir/sub/f',
    'A /tools', ...toolNames.map((n) => `A /tools/${n}`),
  ];

  it('the writable layer holds the overlay markers the cases are about', async () => {
    expect((await sys.lgetxattr(join(upper, 'app'), 'trusted.overlay.opaque'))?.toString()).toBe('y');
    expect((await sys.lgetxattr(join(upper, 'tools'), 'trusted.overlay.redirect'))?.toString()).toBe('/bin');
    for (const wh of ['bin', 'etc/group']) {
      const st = await lstat(join(upper, wh));
      expect(st.isCharacterDevice() && st.rdev === 0).toBe(true);
    }
    expect(toolNames).toContain('busybox');
  });

  it('diff reports added, changed and deleted paths like docker diff, sorted by path', async () => {
    const out = await cliOk(root, ['diff', 'c1']);
    expect(out.trimEnd().split('\n')).toEqual(expected());
    const json = JSON.parse(await cliOk(root, ['diff', '--json', 'c1'])) as { Path: string; Kind: string; Type: string; Why: string }[];
    expect(json.map((c) => `${c.Kind} ${c.Path}`)).toEqual(expected());
    expect(json.find((c) => c.Path === '/etc/group')?.Why).toBe('whiteout');
    expect(json.find((c) => c.Path === '/app/numbers.txt')?.Why).toMatch(/opaque/);
    expect(json.find((c) => c.Path === '/tools/busybox')).toMatchObject({ Kind: 'A', Type: 'file', Why: 'renamed from /bin/busybox' });
    expect(json.find((c) => c.Path === '/newdir')?.Type).toBe('dir');
  });

  it('diff of a container that changed nothing is empty; an unknown container is an error', async () => {
    const m = join(work, 'clean');
    await mkdir(m);
    await cliOk(root, ['mount', '--name', 'clean', 'sample', m]);
    try {
      await readdir(join(m, 'etc'));
      expect(await cliOk(root, ['diff', 'clean'])).toBe('');
    } finally {
      await cliOk(root, ['rm', '-f', 'clean']);
    }
    const r = await cli(root, ['diff', 'nobody']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/no such container: nobody/);
  });

  it('commit makes a new image whose mount shows exactly the container, and save is read by skopeo and umoci', async () => {
    const view = await tree(mnt);
    const commit = JSON.parse(await cliOk(root, ['commit', '--json', '-m', 'teach test', '-c', 'CMD ["/tools/sh"]', '-c', 'ENV STAGE=committed', 'c1', 'sample:committed'])) as { Id: string; Blob: string; DiffId: string; Layer: { whiteouts: number; opaque: number; expanded: number } };
    expect(commit.Layer).toMatchObject({ opaque: 1, expanded: 1 });
    // The layer tar, as stored: OCI whiteouts and opaque markers, the renamed directory in full.
    const listing = (await run('tar', ['-tzf', join(root, 'blobs', 'sha256', commit.Blob.slice(7))])).split('\n');
    expect(listing).toEqual(expect.arrayContaining(['.wh.bin', 'etc/.wh.group', 'app/.wh..wh..opq', 'app/new.txt', 'etc/motd', 'tools/busybox', 'newdir/sub/f']));
    expect(listing.some((l) => l.startsWith('bin/'))).toBe(false);
    // The new layer cache was extracted while the tar was written (no second extraction):
    // check extracts the blob again and compares the trees (whiteouts, opaque markers,
    // owners, modes, xattrs, mtimes); no staging folder is left in the layers directory.
    expect(await cliOk(root, ['check', 'sample:committed'])).toMatch(/store is consistent/);
    expect((await readdir(join(root, 'layers'))).filter((n) => !/^[0-9a-f]{64}$/.test(n))).toEqual([]);

    const history = await cliOk(root, ['history', 'sample:committed']);
    expect(history.split('\n')[1]).toMatch(/layerfs commit c1 .* teach test$/);
    const info = JSON.parse(await cliOk(root, ['inspect', 'sample:committed'])) as { Config: { Cmd: string[]; Env: string[]; WorkingDir: string }; RootFS: { Layers: string[] } }[];
    expect(info[0]!.Config).toMatchObject({ Cmd: ['/tools/sh'], WorkingDir: '/app' });
    expect(info[0]!.Config.Env).toEqual(['PATH=/bin', 'STAGE=committed']);
    expect(info[0]!.RootFS.Layers).toHaveLength(4);

    const m2 = join(work, 'm2');
    await mkdir(m2);
    await cliOk(root, ['mount', '--name', 'c2', 'sample:committed', m2]);
    try {
      expect(await tree(m2)).toEqual(view);
      expect(await cliOk(root, ['diff', 'c2'])).toBe('');
    } finally {
      await cliOk(root, ['rm', '-f', 'c2']);
    }
    expect(isMounted(m2)).toBe(false);

    const archive = join(work, 'committed.tar');
    await cliOk(root, ['save', '-o', archive, 'sample:committed']);
    const inspected = JSON.parse(await run('skopeo', ['inspect', `docker-archive:${archive}`])) as { Layers: string[]; Env: string[] };
    expect(inspected.Layers).toHaveLength(4);
    // A docker-archive carries layers uncompressed: skopeo names them by diff_id.
    expect(inspected.Layers[3]).toBe(commit.DiffId);
    expect(inspected.Env).toContain('STAGE=committed');
    const layout = join(work, 'committed-oci');
    await run('skopeo', ['copy', `docker-archive:${archive}`, `oci:${layout}:committed`]);
    await run('umoci', ['unpack', '--image', `${layout}:committed`, join(work, 'unpacked')]);
    expect(await tree(join(work, 'unpacked', 'rootfs'))).toEqual(view);
  });

  it('diff reads the writable layer of an unmounted container the same way', async () => {
    await cliOk(root, ['umount', 'c1']);
    expect(isMounted(mnt)).toBe(false);
    try {
      expect((await cliOk(root, ['diff', 'c1'])).trimEnd().split('\n')).toEqual(expected());
    } finally {
      await cliOk(root, ['rm', '-f', 'c1']);
    }
  });
});
