import * as fsp from 'node:fs/promises';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { constants as C } from 'node:fs';
import { UnionFilesystem } from '../../src/union/union-fs.js';
import { sys } from '../../src/union/sys.js';
import { makeLayers, ROOT, type LayerSpec, type TestLayers } from '../helpers/layers.js';

let layers: TestLayers | undefined;
// Removing the 100,000-entry layers takes longer than the 10 s default on a busy machine.
afterEach(async () => {
  await layers?.cleanup();
  layers = undefined;
}, 120_000);

async function union(specs: LayerSpec[], readOnly = false): Promise<UnionFilesystem> {
  layers = await makeLayers(specs);
  return UnionFilesystem.open(
    readOnly ? { lowerDirs: layers.lowers } : { lowerDirs: layers.lowers, upperDir: layers.upper, workDir: layers.work },
  );
}

async function names(u: UnionFilesystem, p: string): Promise<string[]> {
  return (await u.readdir(p)).map((e) => e.name).sort();
}

async function readAll(u: UnionFilesystem, p: string): Promise<string> {
  const fh = await u.open(p, C.O_RDONLY, ROOT);
  const buf = Buffer.alloc(1 << 16);
  const n = await u.read(p, fh, buf, buf.length, 0);
  await u.release(p, fh);
  return buf.subarray(0, n).toString();
}

async function writeAt(u: UnionFilesystem, p: string, data: string, flags = C.O_WRONLY, pos = 0): Promise<void> {
  const fh = await u.open(p, flags, ROOT);
  await u.write(p, fh, Buffer.from(data), data.length, pos);
  await u.release(p, fh);
}

const errno = (e: unknown): unknown => {
  const x = e as { errno?: unknown; code?: unknown };
  return typeof x.errno === 'string' ? x.errno : x.code;
};

describe('union lookups and readdir', () => {
  it('merges layers top-down, applies whiteouts and opaque dirs', async () => {
    const u = await union([
      { 'a.txt': 'top', 'gone': { whiteout: true }, 'd/': { opaque: true }, 'd/new': 'n', 'm/top': 't' },
      { 'a.txt': 'bottom', 'gone': 'x', 'd/old': 'o', 'm/bottom': 'b', 'only': 'b' },
    ]);
    expect(await names(u, '/')).toEqual(['a.txt', 'd', 'm', 'only']);
    expect(await readAll(u, '/a.txt')).toBe('top');
    expect(await names(u, '/d')).toEqual(['new']);
    expect(await names(u, '/m')).toEqual(['bottom', 'top']);
    await expect(u.getattr('/gone')).rejects.toSatisfy((e) => errno(e) === 'ENOENT');
    await expect(u.getattr('/a.txt/x')).rejects.toSatisfy((e) => errno(e) === 'ENOTDIR');
    expect((await u.getattr('/only')).size).toBe(1);
  });

  it('lists each name once in a directory of 100,000 entries', async () => {
    layers = await makeLayers([{}, {}]);
    const [top, bottom] = layers.lowers as [string, string];
    await fsp.mkdir(`${top}/big`);
    await fsp.mkdir(`${bottom}/big`);
    // touch through xargs: 100,000 files in a second or two, not one async call each.
    const sh = (cmd: string): Promise<unknown> => promisify(execFile)('sh', ['-c', cmd]);
    await sh(`cd ${top}/big && seq 1 2 99999 | sed s/^/f/ | xargs touch`);
    await sh(`cd ${bottom}/big && seq 0 2 99998 | sed s/^/f/ | xargs touch`);
    await sh(`cd ${top}/big && seq 0 2 1998 | sed s/^/f/ | xargs touch`);
    const u = await UnionFilesystem.open({ lowerDirs: layers.lowers, upperDir: layers.upper, workDir: layers.work });
    await u.unlink('/big/f7', ROOT);
    const list = await u.readdir('/big');
    expect(list.length).toBe(99_999);
    expect(new Set(list.map((e) => e.name)).size).toBe(99_999);
  }, 120_000);

  it('keeps hard links of a layer as one inode with their link count', async () => {
    const u = await union([{ 'a': 'x', 'b': { hardlink: 'a' } }]);
    const [a, b] = [await u.getattr('/a'), await u.getattr('/b')];
    expect(a.ino).toBe(b.ino);
    expect(a.nlink).toBe(2);
  });

  it('handles non-UTF-8 names', async () => {
    const name = '/caf\xe9\xff';
    const u = await union([{ [name.slice(1)]: 'bytes' }]);
    expect(await names(u, '/')).toEqual([name.slice(1)]);
    await writeAt(u, name, 'more', C.O_WRONLY | C.O_APPEND);
    expect(await readAll(u, name)).toBe('bytesmore');
  });
});

describe('union copy-up', () => {
  it('copies up on write with data, mode, owner, ns times and xattrs; ino unchanged', async () => {
    const mtime = { sec: 1_600_000_000, nsec: 123_456_789 };
    const u = await union([
      { 'd/': {}, 'd/f': { content: 'hello', mode: 0o640, uid: 1000, gid: 1001, xattrs: { 'user.k': 'v' }, mtime } },
    ]);
    const before = await u.getattr('/d/f');
    await writeAt(u, '/d/f', 'J');
    expect(await readAll(u, '/d/f')).toBe('Jello');
    const after = await u.getattr('/d/f');
    expect(after.ino).toBe(before.ino);
    expect(after.mode).toBe(before.mode);
    expect([after.uid, after.gid]).toEqual([1000, 1001]);
    expect((await u.getxattr('/d/f', 'user.k'))?.toString()).toBe('v');
    const st = await fsp.stat(`${layers!.upper}/d/f`, { bigint: true });
    expect(st.size).toBe(5n);
    // The lower file is untouched.
    expect(await fsp.readFile(`${layers!.lowers[0]}/d/f`, 'utf8')).toBe('hello');
    await u.utimens('/d/f', mtime, mtime, ROOT);
    expect((await u.getattr('/d/f')).mtime).toEqual(mtime);
  });

  it('does not copy up on read-only open; an old read handle keeps the lower data', async () => {
    const u = await union([{ f: 'old' }]);
    const fh = await u.open('/f', C.O_RDONLY, ROOT);
    await expect(fsp.access(`${layers!.upper}/f`)).rejects.toThrow();
    await writeAt(u, '/f', 'new', C.O_WRONLY | C.O_TRUNC);
    const buf = Buffer.alloc(10);
    const n = await u.read('/f', fh, buf, 10, 0);
    expect(buf.subarray(0, n).toString()).toBe('old');
    await u.release('/f', fh);
    expect(await readAll(u, '/f')).toBe('new');
  });

  it('O_TRUNC, truncate, chmod, chown, setxattr copy up', async () => {
    const u = await union([{ a: 'aaaa', b: 'bbbb', c: 'c', d: 'd', e: 'e' }]);
    await (async () => { const fh = await u.open('/a', C.O_RDONLY | C.O_TRUNC, ROOT); await u.release('/a', fh); })();
    expect((await u.getattr('/a')).size).toBe(0);
    await u.truncate('/b', 2, ROOT);
    expect(await readAll(u, '/b')).toBe('bb');
    await u.chmod('/c', 0o600, ROOT);
    expect((await u.getattr('/c')).mode & 0o7777).toBe(0o600);
    await u.chown('/d', 5, 6, ROOT);
    expect((await u.getattr('/d')).uid).toBe(5);
    await u.setxattr('/e', 'user.x', Buffer.from('1'), 0, ROOT);
    expect(await u.listxattr('/e')).toContain('user.x');
    for (const n of ['a', 'b', 'c', 'd', 'e']) await fsp.access(`${layers!.upper}/${n}`);
  });
});

describe('union deletes, renames and overlay format', () => {
  it('unlink and rmdir of lower names leave whiteouts; mkdir again gives an opaque dir', async () => {
    const u = await union([{ 'f': 'x', 'd/inner': 'i' }]);
    await u.unlink('/f', ROOT);
    await expect(u.rmdir('/d', ROOT)).rejects.toSatisfy((e) => errno(e) === 'ENOTEMPTY');
    await u.unlink('/d/inner', ROOT);
    await u.rmdir('/d', ROOT);
    expect(await names(u, '/')).toEqual([]);
    const wst = await fsp.lstat(`${layers!.upper}/f`);
    expect(wst.isCharacterDevice() && wst.rdev === 0).toBe(true);
    await u.mkdir('/d', 0o755, ROOT);
    expect(await names(u, '/d')).toEqual([]);
    expect((await sys.lgetxattr(`${layers!.upper}/d`, 'trusted.overlay.opaque'))?.toString()).toBe('y');
    const fh = await u.create('/f', 0o644, C.O_WRONLY, ROOT);
    await u.release('/f', fh);
    expect((await fsp.lstat(`${layers!.upper}/f`)).isFile()).toBe(true);
  });

  it('renames lower dirs with a redirect and keeps contents; inode numbers survive a remount', async () => {
    const u = await union([{ 'a/b/c': 'deep', 'x/': {} }]);
    const ino = (await u.getattr('/a/b/c')).ino;
    await u.rename('/a', '/x/moved', 0, ROOT);
    expect(await names(u, '/')).toEqual(['x']);
    expect(await readAll(u, '/x/moved/b/c')).toBe('deep');
    expect((await sys.lgetxattr(`${layers!.upper}/x/moved`, 'trusted.overlay.redirect'))?.toString()).toBe('/a');
    await u.rename('/x/moved/b/c', '/c2', 0, ROOT);
    expect((await u.getattr('/c2')).ino).toBe(ino);
    const again = await UnionFilesystem.open({ lowerDirs: layers!.lowers, upperDir: layers!.upper, workDir: layers!.work });
    expect((await again.getattr('/c2')).ino).toBe(ino);
    expect(await names(again, '/x/moved/b')).toEqual([]);
    expect(await names(again, '/')).toEqual(['c2', 'x']);
  });

  it('escapes trusted.overlay.* xattrs like the kernel, hides its own mark there and refuses trusted.layerfs.*', async () => {
    const u = await union([{ f: 'x' }]);
    await u.setxattr('/f', 'trusted.overlay.opaque', Buffer.from('y'), 0, ROOT);
    expect(await u.listxattr('/f')).toContain('trusted.overlay.opaque');
    expect((await sys.lgetxattr(`${layers!.upper}/f`, 'trusted.overlay.overlay.opaque'))?.toString()).toBe('y');
    expect(await u.listxattr('/f')).not.toContain('trusted.layerfs.origin');
    await expect(u.setxattr('/f', 'trusted.layerfs.origin', Buffer.from('1'), 0, ROOT)).rejects.toSatisfy((e) => errno(e) === 'EPERM');
    // layerfs's own mark sits under the kernel-hidden prefix; the caller's same name is
    // the caller's (escaped), and neither shows the other.
    const ino = (await u.getattr('/f')).ino;
    expect(await sys.lgetxattr(`${layers!.upper}/f`, 'trusted.overlay.layerfs.origin')).not.toBeNull();
    expect(await u.getxattr('/f', 'trusted.overlay.layerfs.origin')).toBeNull();
    expect((await u.listxattr('/f')).filter((n) => n.includes('layerfs'))).toEqual([]);
    await u.setxattr('/f', 'trusted.overlay.layerfs.origin', Buffer.from('7'), 0, ROOT);
    expect((await u.getxattr('/f', 'trusted.overlay.layerfs.origin'))?.toString()).toBe('7');
    expect((await sys.lgetxattr(`${layers!.upper}/f`, 'trusted.overlay.overlay.layerfs.origin'))?.toString()).toBe('7');
    const again = await UnionFilesystem.open({ lowerDirs: layers!.lowers, upperDir: layers!.upper, workDir: layers!.work });
    expect((await again.getattr('/f')).ino).toBe(ino);
  });

  it('read-only union refuses writes with EROFS', async () => {
    const u = await union([{ f: 'x' }], true);
    await expect(u.open('/f', C.O_WRONLY, ROOT)).rejects.toSatisfy((e) => errno(e) === 'EROFS');
    await expect(u.mkdir('/d', 0o755, ROOT)).rejects.toSatisfy((e) => errno(e) === 'EROFS');
    expect(await readAll(u, '/f')).toBe('x');
  });

  it('new files belong to the caller; a non-root write clears setuid', async () => {
    const u = await union([{ 'd/': { mode: 0o777 } }]);
    const caller = { uid: 1000, gid: 1000, pid: 1, umask: 0o022 };
    const fh = await u.create('/d/mine', 0o4755, C.O_WRONLY, caller);
    expect((await u.getattr('/d/mine')).uid).toBe(1000);
    expect((await u.getattr('/d/mine')).mode & 0o7777).toBe(0o4755);
    await u.write('/d/mine', fh, Buffer.from('x'), 1, 0);
    await u.release('/d/mine', fh);
    expect((await u.getattr('/d/mine')).mode & 0o7777).toBe(0o755);
  });
});
