import * as fsp from 'node:fs/promises';
import { constants as C } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { UnionFilesystem } from '../../src/union/union-fs.js';
import { LowerIndex } from '../../src/union/lower-index.js';
import { sys } from '../../src/union/sys.js';
import { makeLayers, ROOT, type LayerSpec, type TestLayers } from '../helpers/layers.js';

let layers: TestLayers | undefined;
afterEach(async () => {
  await layers?.cleanup();
  layers = undefined;
});

async function union(specs: LayerSpec[]): Promise<UnionFilesystem> {
  layers = await makeLayers(specs);
  return UnionFilesystem.open({ lowerDirs: layers.lowers, upperDir: layers.upper, workDir: layers.work });
}

const errno = (e: unknown): unknown => {
  const x = e as { errno?: unknown; code?: unknown };
  return typeof x.errno === 'string' ? x.errno : x.code;
};
const GiB = 2 ** 30;

describe('union edge cases', () => {
  it('resolves deep paths through the writable layer and the index alike, and refuses non-canonical ones', async () => {
    const u = await union([{ 'a/b/c/f': 'x', 'a/b/file': 'y', 'top/d/e': 'z' }]);
    // A directory of the path on the writable layer, the rest only below.
    await u.mkdir('/top/new', 0o755, ROOT);
    const kinds = async (paths: string[]) =>
      Promise.all(paths.map((p) => u.getattr(p).then((st) => (st.mode & C.S_IFMT) === C.S_IFDIR ? 'dir' : 'file', errno)));
    expect(
      await kinds([
        '/', '/a', '/a/b/c/f', '/a/b/c/f/g', '/a/b/file/x/y', '/a/b/missing/x', '/a/b/c/missing',
        '/top/d/e', '/top/d/e/x', '/top/new', '/top/new/x/y', '/top/d/missing/x',
      ]),
    ).toEqual(['dir', 'dir', 'file', 'ENOTDIR', 'ENOTDIR', 'ENOENT', 'ENOENT', 'file', 'ENOTDIR', 'dir', 'ENOENT', 'ENOENT']);
    for (const bad of ['a', '//a', '/a//b', '/a/', '/a/./b', '/a/../a', '/.', '/..', '/a/b/.', '/a/b/..']) {
      await expect(u.getattr(bad), bad).rejects.toMatchObject({ errno: 'EINVAL' });
    }
    await expect(u.getattr(`/a/${'n'.repeat(256)}/f`)).rejects.toMatchObject({ errno: 'ENAMETOOLONG' });
    expect(await kinds(['/.a', '/..a', '/a/...'])).toEqual(['ENOENT', 'ENOENT', 'ENOENT']);
  });

  it('serves files over 4 GiB from lower and upper', async () => {
    layers = await makeLayers([{ big: 'head' }]);
    await fsp.truncate(`${layers.lowers[0]}/big`, 5 * GiB);
    const u = await UnionFilesystem.open({ lowerDirs: layers.lowers, upperDir: layers.upper, workDir: layers.work });
    expect(Number((await u.getattr('/big')).size)).toBe(5 * GiB);
    const rh = await u.open('/big', C.O_RDONLY, ROOT);
    const buf = Buffer.alloc(4);
    expect(await u.read('/big', rh, buf, 4, 0)).toBe(4);
    expect(buf.toString()).toBe('head');
    expect(await u.read('/big', rh, buf, 4, 5 * GiB - 2)).toBe(2);
    await u.release('/big', rh);
    const nh = await u.create('/new', 0o644, C.O_RDWR, ROOT);
    await u.write('/new', nh, Buffer.from('end'), 3, 6 * GiB);
    await u.fsync('/new', false, nh);
    expect(await u.read('/new', nh, buf, 3, 6 * GiB)).toBe(3);
    await u.release('/new', nh);
    expect(Number((await u.getattr('/new')).size)).toBe(6 * GiB + 3);
  });

  it('copies a sparse lower file up with its holes', async () => {
    layers = await makeLayers([{ sparse: 'start' }]);
    const lower = `${layers.lowers[0]}/sparse`;
    await fsp.truncate(lower, 256 * 2 ** 20);
    await fsp.writeFile(lower, 'end', { flag: 'r+', encoding: 'utf8' }).catch(() => undefined);
    const fd = await fsp.open(lower, 'r+');
    await fd.write('end', 256 * 2 ** 20 - 3);
    await fd.close();
    const u = await UnionFilesystem.open({ lowerDirs: layers.lowers, upperDir: layers.upper, workDir: layers.work });
    await u.chmod('/sparse', 0o600, ROOT);
    const st = await fsp.stat(`${layers.upper}/sparse`);
    expect(st.size).toBe(256 * 2 ** 20);
    expect(st.blocks * 512).toBeLessThan(8 * 2 ** 20);
    const copy = await fsp.readFile(`${layers.upper}/sparse`);
    expect(copy.subarray(0, 3).toString()).toBe('end');
    expect(copy.subarray(copy.length - 3).toString()).toBe('end');
  });

  it('returns lower symlinks as links and never follows them', async () => {
    const u = await union([{ shadow: { symlink: '/etc/shadow' }, up: { symlink: '../../..' } }]);
    expect(await u.readlink('/shadow')).toBe('/etc/shadow');
    expect(await u.readlink('/up')).toBe('../../..');
    expect((await u.getattr('/shadow')).mode & C.S_IFMT).toBe(C.S_IFLNK);
    await expect(u.open('/shadow', C.O_RDONLY, ROOT)).rejects.toSatisfy((e) => errno(e) === 'ELOOP');
    await expect(u.getattr('/up/etc')).rejects.toSatisfy((e) => errno(e) === 'ENOTDIR');
    await u.chown('/shadow', 5, 5, ROOT);
    expect((await fsp.lstat(`${layers!.upper}/shadow`)).isSymbolicLink()).toBe(true);
    expect((await fsp.stat('/etc/shadow')).uid).toBe(0);
    await expect(u.getattr('/../etc')).rejects.toSatisfy((e) => errno(e) === 'EINVAL');
  });

  it('O_EXCL, create over a lower file, mknod devices, statfs', async () => {
    const u = await union([{ f: 'lower' }]);
    await expect(u.create('/f', 0o644, C.O_WRONLY | C.O_CREAT | C.O_EXCL, ROOT)).rejects.toSatisfy((e) => errno(e) === 'EEXIST');
    const fh = await u.create('/f', 0o644, C.O_WRONLY | C.O_CREAT | C.O_TRUNC, ROOT);
    await u.release('/f', fh);
    expect(Number((await u.getattr('/f')).size)).toBe(0);
    await u.mknod('/null', C.S_IFCHR | 0o666, sys.makedev(1, 3), ROOT);
    const st = await u.getattr('/null');
    expect(st.mode & C.S_IFMT).toBe(C.S_IFCHR);
    expect(st.rdev).toBe(sys.makedev(1, 3));
    await u.mknod('/sock', C.S_IFSOCK | 0o755, 0, ROOT);
    expect((await u.getattr('/sock')).mode & C.S_IFMT).toBe(C.S_IFSOCK);
    const fs = await u.statfs('/');
    expect(Number(fs.blocks)).toBeGreaterThan(0);
    expect(fs.namemax).toBe(255);
  });

  it('leaves nothing in the work dir and clears leftovers of a killed copy-up', async () => {
    layers = await makeLayers([{ f: 'x' }]);
    await fsp.mkdir(`${layers.work}/layerfs`, { recursive: true });
    await fsp.writeFile(`${layers.work}/layerfs/#half`, 'partial');
    const u = await UnionFilesystem.open({ lowerDirs: layers.lowers, upperDir: layers.upper, workDir: layers.work });
    expect(await fsp.readdir(`${layers.work}/layerfs`)).toEqual([]);
    await u.chmod('/f', 0o600, ROOT);
    await u.unlink('/f', ROOT);
    expect(await fsp.readdir(`${layers.work}/layerfs`)).toEqual([]);
  });

  it('saves the lower index to its cache file and loads it back', async () => {
    layers = await makeLayers([{ 'd/a': 'aa', 'l': { symlink: 'd/a' }, 'w': { whiteout: true } }, { w: 'hidden', 'd/b': 'b' }]);
    const cacheFile = `${layers.root}/index-cache`;
    const idx = await LowerIndex.open(layers.lowers, { cacheFile });
    const back = await LowerIndex.open(layers.lowers, { cacheFile });
    expect([idx.origin.loaded, back.origin.loaded]).toEqual([false, true]);
    expect(back.size).toBe(idx.size);
    expect(back.get('/d')?.children?.sort()).toEqual(['a', 'b']);
    expect(back.get('/w')).toBeUndefined();
    expect(await back.readlink('/l', back.get('/l')!)).toBe('d/a');
  });

  it('serves lower-only readdir entries with their stat', async () => {
    const u = await union([{ 'd/a': 'aa', 'd/b': 'bbb' }]);
    const list = await u.readdir('/d');
    expect(list.every((e) => e.stat !== undefined)).toBe(true);
    expect(list.find((e) => e.name === 'b')?.stat?.size).toBe(3);
  });

  it('gives EXDEV-free renames of whole lower trees and rejects renames into themselves', async () => {
    const u = await union([{ 'a/b/c/d': 'x' }]);
    await expect(u.rename('/a', '/a/b/new', 0, ROOT)).rejects.toSatisfy((e) => errno(e) === 'EINVAL');
    await u.rename('/a/b', '/b', 0, ROOT);
    await u.rename('/b/c', '/a/c', 0, ROOT);
    expect((await u.readdir('/a')).map((e) => e.name)).toEqual(['c']);
    expect(Number((await u.getattr('/a/c/d')).size)).toBe(1);
    await expect(u.rename('/b', '/a', C.O_RDONLY + 1, ROOT)).rejects.toSatisfy((e) => errno(e) === 'EEXIST');
  });
});
