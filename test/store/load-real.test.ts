/**
 * Loading images made by real tools, and checking that the store's layers, flattened the
 * way overlayfs shows them, equal what `umoci unpack` produces for the same image.
 */
import { chmod, chown, link, mkdir, rm, symlink, writeFile, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import * as sys from '../../src/sys/native.js';
import { tempDir } from '../helpers/temp.js';
import { canonical, flattenedStoreImage, layerfs, makeTar, run, snapshot, tarDir, umociAddRawLayer, umociImage, umociUnpack } from '../helpers/images.js';

let work: string;
let layout: string;
let expected: ReturnType<typeof canonical>;

const longName = 'n'.repeat(251);
const oddNames = ['new\nline', 'tab\there', 'back\\slash', 'unicodé-日本', Buffer.from([0x62, 0xff, 0xfe]).toString('latin1')];

async function richImage(): Promise<void> {
  await umociImage(layout, 'rich', [
    async (r) => {
      await mkdir(join(r, 'etc'), { recursive: true });
      await writeFile(join(r, 'etc', 'passwd'), 'root:x:0:0::/root:/bin/sh\n');
      await mkdir(join(r, 'bin'));
      await writeFile(join(r, 'bin', 'suid'), 'setuid program');
      await chmod(join(r, 'bin', 'suid'), 0o4755);
      await writeFile(join(r, 'bin', 'sgid'), 'setgid program');
      await chown(join(r, 'bin', 'sgid'), 0, 50);
      await chmod(join(r, 'bin', 'sgid'), 0o2711);
      await writeFile(join(r, 'bin', 'cap'), 'capable');
      // security.capability v2: effective + cap_net_bind_service; binary, not UTF-8.
      await sys.lsetxattr(join(r, 'bin', 'cap'), 'security.capability', Buffer.from('0100000200040000000000000000000000000000', 'hex'), 0);
      await mkdir(join(r, 'tmp'));
      await chmod(join(r, 'tmp'), 0o1777);
      await mkdir(join(r, 'home', 'user'), { recursive: true });
      await writeFile(join(r, 'home', 'user', 'notes'), 'mine');
      await chown(join(r, 'home', 'user'), 1000, 1000);
      await chown(join(r, 'home', 'user', 'notes'), 3000000, 3000001);
      await writeFile(join(r, 'home', 'user', 'x'), 'xattrs');
      await sys.lsetxattr(join(r, 'home', 'user', 'x'), 'user.comment', Buffer.from('hello'), 0);
      await sys.lsetxattr(join(r, 'home', 'user', 'x'), 'user.binary', Buffer.from([0, 0xff, 0x80, 1]), 0);
      await symlink('../etc/passwd', join(r, 'bin', 'rel-link'));
      await symlink('/etc/passwd', join(r, 'bin', 'abs-link'));
      await symlink('/nowhere/at/all', join(r, 'bin', 'dangling'));
      await writeFile(join(r, 'bin', 'multi'), 'hard linked');
      await link(join(r, 'bin', 'multi'), join(r, 'bin', 'multi2'));
      await link(join(r, 'bin', 'multi'), join(r, 'etc', 'multi3'));
      await mkdir(join(r, 'dev'));
      await sys.mknod(join(r, 'dev', 'null'), 0o20666, sys.makedev(1, 3));
      await sys.mknod(join(r, 'dev', 'loop9'), 0o60660, sys.makedev(7, 9));
      await sys.mknod(join(r, 'dev', 'fifo'), 0o10640, 0);
      await writeFile(join(r, 'etc', longName), 'long name');
      for (const n of oddNames) await writeFile(Buffer.from(join(r, 'etc') + '/' + n, 'latin1'), n);
      await writeFile(join(r, 'big'), Buffer.alloc(3 * 1024 * 1024 + 17, 7));
      await writeFile(join(r, 'empty'), '');
      await mkdir(join(r, 'gone', 'deep'), { recursive: true });
      await writeFile(join(r, 'gone', 'deep', 'f'), 'f');
      await writeFile(join(r, 'gone', 'g'), 'g');
      await writeFile(join(r, 'todir'), 'becomes a dir');
      await mkdir(join(r, 'tofile'));
      await writeFile(join(r, 'tofile', 'child'), 'c');
      await mkdir(join(r, 'opaque'));
      await writeFile(join(r, 'opaque', 'lower'), 'hidden by an opaque marker');
    },
    async (r) => {
      await rm(join(r, 'gone'), { recursive: true });
      await rm(join(r, 'etc', 'passwd'));
      await rm(join(r, 'todir'));
      await mkdir(join(r, 'todir'));
      await writeFile(join(r, 'todir', 'inside'), 'now a dir');
      await rm(join(r, 'tofile'), { recursive: true });
      await writeFile(join(r, 'tofile'), 'now a file');
      await chmod(join(r, 'bin', 'suid'), 0o4750);
      await writeFile(join(r, 'bin', 'multi'), 'rewritten');
      await sys.lsetxattr(join(r, 'bin', 'cap'), 'user.added', Buffer.from('later'), 0);
    },
    async (r) => {
      await mkdir(join(r, 'gone'));
      await writeFile(join(r, 'gone', 'again'), 'recreated');
      await writeFile(join(r, 'etc', 'passwd'), 'new passwd\n');
    },
  ], work);
  // An opaque directory (umoci never writes one): a hand-made layer.
  const opaque = await makeTar([
    { name: 'opaque/', type: 'directory', mode: 0o750 },
    { name: 'opaque/.wh..wh..opq' },
    { name: 'opaque/upper', data: 'from the opaque layer' },
    { name: 'todir/.wh.inside' },
  ]);
  await umociAddRawLayer(layout, 'rich', opaque, work);
}

beforeAll(async () => {
  work = await tempDir('layerfs-store-');
  layout = join(work, 'oci');
  await richImage();
  const rootfs = await umociUnpack(layout, 'rich', join(work, 'unpacked'));
  expected = canonical(await snapshot(rootfs));
}, 300_000);

describe('loading real images', () => {
  it('an umoci OCI layout directory flattens to exactly what umoci unpack produces', async () => {
    const root = await tempDir('layerfs-root-');
    const r = await layerfs(root, ['load', '-i', layout, '--name', 'rich']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Loaded image: rich:rich');
    const got = canonical(await flattenedStoreImage(root, 'rich:rich'));
    expect(Object.keys(got)).toEqual(Object.keys(expected));
    expect(got).toEqual(expected);
    // Spot checks, so a shared bug in both sides of the comparison cannot hide.
    expect(got['bin/suid']!.mode).toBe(0o4750);
    expect(got['tmp']!.mode).toBe(0o1777);
    expect(got['home/user/notes']!.uid).toBe(3000000);
    expect(got['bin/cap']!.xattrs['security.capability']).toBe('0100000200040000000000000000000000000000');
    expect(got['bin/multi2']!.links).toEqual(['bin/multi', 'bin/multi2', 'etc/multi3']);
    expect(got['opaque/lower']).toBeUndefined();
    expect(got['gone/deep']).toBeUndefined();
    expect(got['dev/null']!.rdev).toBe('1,3');
  });

  it('whiteouts and opaque markers are stored in the overlayfs format', async () => {
    const root = await tempDir('layerfs-root-');
    expect((await layerfs(root, ['load', '-i', layout, '--name', 'rich'])).code).toBe(0);
    const info = JSON.parse((await layerfs(root, ['inspect', 'rich:rich'])).stdout)[0];
    const dirs: string[] = info.Store.Layers.map((l: { Diff: string }) => l.Diff);
    const second = await snapshot(dirs[1]!);
    expect(second.get('gone')).toMatchObject({ type: 'char', rdev: '0,0' });
    expect(second.get('etc/passwd')).toMatchObject({ type: 'char', rdev: '0,0' });
    const top = await snapshot(dirs[3]!);
    expect(top.get('opaque')!.xattrs['trusted.overlay.opaque']).toBe(Buffer.from('y').toString('hex'));
    expect(top.get('opaque/.wh..wh..opq')).toBeUndefined();
    expect(top.get('todir/inside')).toMatchObject({ type: 'char', rdev: '0,0' });
  });

  it('the kernel overlayfs accepts the layer caches as lowerdirs and shows the same tree', async () => {
    const root = await tempDir('layerfs-root-');
    expect((await layerfs(root, ['load', '-i', layout, '--name', 'rich'])).code).toBe(0);
    const info = JSON.parse((await layerfs(root, ['inspect', 'rich:rich'])).stdout)[0];
    const mnt = await tempDir('layerfs-ovl-');
    await run('mount', ['-t', 'overlay', 'overlay', '-o', `ro,lowerdir=${info.GraphDriver.Data.LowerDir}`, mnt]);
    try {
      const got = canonical(await snapshot(mnt));
      // overlayfs reports hard links of a lower layer as such only within one layer; the
      // hard-link group here was created in layer 0 and copied in layer 1 (rewritten), so
      // compare without link groups, and everything else exactly.
      const strip = (o: ReturnType<typeof canonical>) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, { ...v, links: undefined }]));
      expect(strip(got)).toEqual(strip(expected));
    } finally {
      await run('umount', [mnt]).catch(() => run('umount', ['-l', mnt]));
    }
  });

  it('an oci-archive tar loads to the same image id', async () => {
    const root = await tempDir('layerfs-root-');
    const tar = join(work, 'rich-oci.tar');
    await tarDir(layout, tar);
    const a = await layerfs(root, ['load', '-i', tar, '--name', 'rich', '--json']);
    expect(a.code).toBe(0);
    const b = await layerfs(root, ['load', '-i', layout, '--name', 'rich2', '--json']);
    expect(JSON.parse(a.stdout)[0].Id).toBe(JSON.parse(b.stdout)[0].Id);
    const again = await layerfs(root, ['load', '-i', tar, '--name', 'rich']);
    expect(again.stdout.match(/Already exists/g)).toHaveLength(4);
  });

  it('a docker-archive made by skopeo loads (from a file and from stdin) with the same content', async () => {
    const file = join(work, 'rich-docker.tar');
    await rm(file, { force: true });
    await run('skopeo', ['copy', `oci:${layout}:rich`, `docker-archive:${file}:example.com/rich:v1`]);
    const root = await tempDir('layerfs-root-');
    const r = await layerfs(root, ['load', '-i', file]);
    expect(r.stderr).toBe('');
    expect(r.stdout).toContain('Loaded image: example.com/rich:v1');
    expect(canonical(await flattenedStoreImage(root, 'example.com/rich:v1'))).toEqual(expected);
    const root2 = await tempDir('layerfs-root-');
    const s = await layerfs(root2, ['load'], await readFile(file));
    expect(s.code).toBe(0);
    expect(canonical(await flattenedStoreImage(root2, 'example.com/rich:v1'))).toEqual(expected);
  });

  it('zstd layers (skopeo --dest-compress-format zstd) load with the same content', async () => {
    const z = join(work, 'oci-zstd');
    await run('skopeo', ['copy', '--dest-compress', '--dest-compress-format', 'zstd', `oci:${layout}:rich`, `oci:${z}:rich`]);
    const idx = JSON.parse(await readFile(join(z, 'index.json'), 'utf8'));
    const m = JSON.parse(await readFile(join(z, 'blobs', 'sha256', idx.manifests[0].digest.slice(7)), 'utf8'));
    expect(m.layers.some((l: { mediaType: string }) => l.mediaType.endsWith('zstd'))).toBe(true);
    const root = await tempDir('layerfs-root-');
    expect((await layerfs(root, ['load', '-i', z, '--name', 'z'])).code).toBe(0);
    expect(canonical(await flattenedStoreImage(root, 'z:rich'))).toEqual(expected);
  });

  it('mtimes are kept to the nanosecond from PAX records', async () => {
    const lay = join(work, 'ns-oci');
    const tar = await makeTar([
      { name: 'd/', type: 'directory', pax: { mtime: '1600000000.5' } },
      { name: 'd/f', data: 'x', pax: { mtime: '1700000000.123456789', atime: '1700000001.000000001' } },
      { name: 'l', type: 'symlink', linkname: 'd/f', pax: { mtime: '1500000000.987654321' } },
    ]);
    const { writeOciLayout } = await import('../helpers/images.js');
    await writeOciLayout(lay, [{ tar }]);
    const root = await tempDir('layerfs-root-');
    expect((await layerfs(root, ['load', '-i', lay, '--name', 'ns'])).code).toBe(0);
    const info = JSON.parse((await layerfs(root, ['inspect', 'ns:latest'])).stdout)[0];
    const s = await snapshot(info.Store.Layers[0].Diff);
    expect(s.get('d/f')!.mtimeNs).toBe(1700000000123456789n);
    expect(s.get('l')!.mtimeNs).toBe(1500000000987654321n);
    expect(s.get('d')!.mtimeNs).toBe(1600000000500000000n);
  });

  it('a buildah image (vfs driver, oci-archive and docker-archive) equals its umoci unpack', async () => {
    const bh = join(work, 'buildah');
    const b = (args: string[]): Promise<string> => run('buildah', ['--root', join(bh, 'storage'), '--runroot', join(bh, 'run'), '--storage-driver', 'vfs', ...args]);
    const src = join(bh, 'src');
    await mkdir(join(src, 'dir', 'sub'), { recursive: true });
    await writeFile(join(src, 'dir', 'sub', 'file'), 'from buildah');
    await chmod(join(src, 'dir', 'sub', 'file'), 0o4711);
    await symlink('sub/file', join(src, 'dir', 'link'));
    const c1 = (await b(['from', 'scratch'])).trim();
    await b(['copy', '--chown', '1000:1000', c1, join(src, 'dir'), '/opt/dir']);
    await b(['config', '--created-by', 'COPY dir /opt/dir', '--env', 'A=1', c1]);
    await b(['commit', '-q', c1, 'localhost/bh-base:1']);
    const c2 = (await b(['from', 'localhost/bh-base:1'])).trim();
    await writeFile(join(src, 'second'), 'second layer');
    await b(['copy', c2, join(src, 'second'), '/opt/dir/second']);
    await b(['commit', '-q', c2, 'localhost/bh:1']);
    const ociTar = join(bh, 'bh-oci.tar');
    const dockerTar = join(bh, 'bh-docker.tar');
    await b(['push', 'localhost/bh:1', `oci-archive:${ociTar}:localhost/bh:1`]);
    await b(['push', 'localhost/bh:1', `docker-archive:${dockerTar}:localhost/bh:1`]);
    const lay = join(bh, 'layout');
    await run('skopeo', ['copy', `oci-archive:${ociTar}:localhost/bh:1`, `oci:${lay}:bh`]);
    const want = canonical(await snapshot(await umociUnpack(lay, 'bh', join(bh, 'unpacked'))));
    expect(want['opt/dir/sub/file']!.mode).toBe(0o4711);
    for (const [input, name] of [[ociTar, 'localhost/bh:1'], [dockerTar, 'localhost/bh:1']] as const) {
      const root = await tempDir('layerfs-root-');
      const r = await layerfs(root, ['load', '-i', input]);
      expect(r.stderr).toBe('');
      expect(r.stdout).toContain(`Loaded image: ${name}`);
      expect(canonical(await flattenedStoreImage(root, name))).toEqual(want);
    }
  });

  it('GNU sparse files (PAX 0.1 and 1.0, from GNU tar) are extracted with their holes', async () => {
    const sp = join(work, 'sparse');
    await mkdir(join(sp, 'r'), { recursive: true });
    const f = join(sp, 'r', 'sparse');
    await run('truncate', ['-s', '10M', f]);
    const fh = await (await import('node:fs/promises')).open(f, 'r+');
    await fh.write(Buffer.from('middle'), 0, 6, 5_000_000);
    await fh.write(Buffer.from('end'), 0, 3, 10 * 1024 * 1024 - 3);
    await fh.close();
    const want = (await snapshot(join(sp, 'r'))).get('sparse')!;
    for (const version of ['1.0', '0.1']) {
      const tarFile = join(sp, `s${version}.tar`);
      await run('tar', ['--sparse', '--format=posix', `--sparse-version=${version}`, '-C', join(sp, 'r'), '-cf', tarFile, 'sparse']);
      const lay = join(sp, `oci-${version}`);
      const { writeOciLayout } = await import('../helpers/images.js');
      await writeOciLayout(lay, [{ tar: await readFile(tarFile) }]);
      const root = await tempDir('layerfs-root-');
      const r = await layerfs(root, ['load', '-i', lay, '--name', 'sparse']);
      expect(r.stderr).toBe('');
      const info = JSON.parse((await layerfs(root, ['inspect', 'sparse:latest'])).stdout)[0];
      const diff = info.Store.Layers[0].Diff;
      const got = (await snapshot(diff)).get('sparse')!;
      expect({ size: got.size, hash: got.hash, mode: got.mode }).toEqual({ size: want.size, hash: want.hash, mode: want.mode });
      const { stat } = await import('node:fs/promises');
      expect((await stat(join(diff, 'sparse'))).blocks).toBeLessThan(64);
    }
  });

  it('whiteout rules: never remove the layer\'s own entries, opaque applies wherever it sits, none under a non-directory', async () => {
    const lay = join(work, 'wh-oci');
    const { writeOciLayout } = await import('../helpers/images.js');
    const lower = await makeTar([{ name: 'd/', type: 'directory' }, { name: 'd/old', data: 'lower' }, { name: 's/', type: 'directory' }, { name: 's/x', data: 'x' }]);
    const upper = await makeTar([
      { name: 'a', data: 'kept' },
      { name: '.wh.a' }, // after its own layer's entry: ignored
      { name: '.wh.b' },
      { name: 'b', data: 'also kept' }, // replaces the whiteout before it
      { name: 'd/new', data: 'upper' },
      { name: 'd/.wh..wh..opq' }, // after a sibling: still opaque, sibling stays
      { name: 's', type: 'symlink', linkname: '/elsewhere' },
      { name: 's/.wh.x' }, // under the layer's own symlink: dropped, nothing written through it
    ]);
    await writeOciLayout(lay, [{ tar: lower }, { tar: upper }]);
    const root = await tempDir('layerfs-root-');
    const r = await layerfs(root, ['load', '-i', lay, '--name', 'wh']);
    expect(r.stderr).toBe('');
    const info = JSON.parse((await layerfs(root, ['inspect', 'wh:latest'])).stdout)[0];
    const top = await snapshot(info.Store.Layers[1].Diff);
    expect([...top.keys()].sort()).toEqual(['', 'a', 'b', 'd', 'd/new', 's']);
    expect(top.get('a')!.hash).toBeDefined();
    expect(top.get('d')!.xattrs['trusted.overlay.opaque']).toBe('79');
    expect(top.get('s')).toMatchObject({ type: 'symlink', target: '/elsewhere' });
    const flat = canonical(await flattenedStoreImage(root, 'wh:latest'));
    expect(Object.keys(flat).sort()).toEqual(['a', 'b', 'd', 'd/new', 's']);
  });
});
