/**
 * The AUFS whiteout format (src/overlay/aufs-whiteouts.ts), as containers-storage writes
 * layers for a mount_program: `.wh.NAME` files and `.wh..wh..opq` markers, in lower layers
 * and in the writable layer, read only when the union is asked to (`aufsWhiteouts`).
 */
import * as fsp from 'node:fs/promises';
import { join } from 'node:path';
import { constants as C } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { UnionFilesystem } from '../../src/union/union-fs.js';
import { OPAQUE_XATTR } from '../../src/overlay/index.js';
import { sys } from '../../src/union/sys.js';
import { makeLayers, ROOT, writeLayer, type LayerSpec, type TestLayers } from '../helpers/layers.js';

let layers: TestLayers | undefined;
afterEach(async () => {
  await layers?.cleanup();
  layers = undefined;
});

async function union(lowers: LayerSpec[], upper: LayerSpec = {}, aufsWhiteouts = true): Promise<UnionFilesystem> {
  layers = await makeLayers(lowers);
  await writeLayer(layers.upper, upper);
  return UnionFilesystem.open({ lowerDirs: layers.lowers, upperDir: layers.upper, workDir: layers.work, aufsWhiteouts });
}

async function names(u: UnionFilesystem, p: string): Promise<string[]> {
  return (await u.readdir(p)).map((e) => e.name).sort();
}

const errno = (e: unknown): unknown => {
  const x = e as { errno?: unknown; code?: unknown };
  return typeof x.errno === 'string' ? x.errno : x.code;
};

const BASE: LayerSpec = { 'etc/motd': 'm', 'etc/os-release': 'o', 'app/a': 'a', 'app/b': 'b', 'keep/k': 'k', 'x/y': 'y' };

describe('AUFS whiteouts in the lower layers', () => {
  it('hide names below, make directories opaque, and never show themselves', async () => {
    const u = await union([
      { 'etc/.wh.os-release': '', 'app/.wh..wh..opq': '', 'app/c': 'c', '.wh..wh.plnk/': {}, 'keep/.wh.k': '', 'keep/k': 'again' },
      BASE,
    ]);
    expect(await names(u, '/')).toEqual(['app', 'etc', 'keep', 'x']);
    expect(await names(u, '/etc')).toEqual(['motd']);
    expect(await names(u, '/app')).toEqual(['c']);
    // A real name beside its whiteout file in one layer is that layer's own.
    expect(await names(u, '/keep')).toEqual(['k']);
    expect((await u.getattr('/keep/k')).size).toBe(5);
    for (const p of ['/etc/os-release', '/etc/.wh.os-release', '/app/a', '/app/.wh..wh..opq', '/.wh..wh.plnk']) {
      await expect(u.getattr(p), p).rejects.toSatisfy((e) => errno(e) === 'ENOENT');
    }
  });

  it('a whiteout file stops a directory above from merging with the one below it', async () => {
    const u = await union([{ 'x/new': 'n' }, { '.wh.x': '' }, BASE]);
    expect(await names(u, '/x')).toEqual(['new']);
  });

  it('are plain files when the union is not asked to read them (the kernel format only)', async () => {
    const u = await union([{ 'etc/.wh.os-release': '' }, BASE], {}, false);
    expect(await names(u, '/etc')).toEqual(['.wh.os-release', 'motd', 'os-release']);
  });
});

describe('AUFS whiteouts in the writable layer', () => {
  it('hide lower names and make directories opaque', async () => {
    const u = await union([BASE], { 'etc/.wh.motd': '', 'app/.wh..wh..opq': '', 'app/z': 'z' });
    expect(await names(u, '/etc')).toEqual(['os-release']);
    expect(await names(u, '/app')).toEqual(['z']);
    await expect(u.getattr('/etc/motd')).rejects.toSatisfy((e) => errno(e) === 'ENOENT');
  });

  it('a name made over a whiteout file replaces it with the kernel format, and shows only itself', async () => {
    const u = await union([BASE], { 'etc/.wh.motd': '', '.wh.app': '' });
    await u.mkdir('/app', 0o755, ROOT);
    expect(await names(u, '/app')).toEqual([]);
    const fh = await u.create('/etc/motd', 0o644, C.O_WRONLY | C.O_CREAT | C.O_EXCL, ROOT);
    await u.release('/etc/motd', fh);
    expect((await u.getattr('/etc/motd')).size).toBe(0);
    const upper = layers!.upper;
    expect((await fsp.readdir(join(upper, 'etc'))).sort()).toEqual(['motd']);
    expect((await fsp.readdir(upper)).sort()).toEqual(['app', 'etc']);
    expect((await sys.lgetxattr(Buffer.from(join(upper, 'app')), OPAQUE_XATTR))?.toString()).toBe('y');
  });

  it('a renamed file lands over a whiteout file; a directory holding only whiteout files is removed', async () => {
    const u = await union([BASE], { 'etc/.wh.motd': '', 'etc/new': 'n', 'x/.wh.y': '', 'x/.wh..wh..opq': '' });
    await u.rename('/etc/new', '/etc/motd', 0, ROOT);
    expect(await names(u, '/etc')).toEqual(['motd', 'os-release']);
    expect((await u.getattr('/etc/motd')).size).toBe(1);
    expect(await names(u, '/x')).toEqual([]);
    await u.rmdir('/x', ROOT);
    await expect(u.getattr('/x')).rejects.toSatisfy((e) => errno(e) === 'ENOENT');
    expect(await names(u, '/')).toEqual(['app', 'etc', 'keep']);
  });

  it('names of the format cannot be made through the mount (they would read back as markers)', async () => {
    const u = await union([BASE]);
    await expect(u.mkdir('/.wh.app', 0o755, ROOT)).rejects.toSatisfy((e) => errno(e) === 'EINVAL');
    await expect(u.create('/etc/.wh..wh..opq', 0o644, C.O_WRONLY | C.O_CREAT, ROOT)).rejects.toSatisfy((e) => errno(e) === 'EINVAL');
    await expect(u.rename('/etc/motd', '/etc/.wh.os-release', 0, ROOT)).rejects.toSatisfy((e) => errno(e) === 'EINVAL');
  });
});
