import { execFileSync } from 'node:child_process';
import * as fsp from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { toFsPath } from '../../src/core/filesystem.js';
import { LowerIndex, type LowerEntry } from '../../src/union/lower-index.js';
import { makeLayers, writeLayer, type LayerSpec, type TestLayers } from '../helpers/layers.js';

let layers: TestLayers | undefined;
afterEach(async () => {
  await layers?.cleanup();
  layers = undefined;
});

/** Top first: whiteouts, an opaque dir, a merged dir, xattrs, a symlink, a non-UTF-8 name. */
const SPECS: LayerSpec[] = [
  {
    'd/a': 'aa',
    'l': { symlink: 'd/a' },
    'w': { whiteout: true },
    'x': { content: 'x', xattrs: { 'user.k': 'v' } },
    'o/': { opaque: true },
    'o/new': 'n',
    'caf\xe9': 'latin1 name',
    'old': { content: 'o', mtime: { sec: -2, nsec: 5 } },
  },
  { 'w': 'hidden', 'd/b': 'b', 'o/old': 'gone', 'plain': 'p', 'deep/x/y/z': 'z' },
];

/** Everything an entry says, as plain data (lazy parts included). */
function plain(e: LowerEntry): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of ['mode', 'uid', 'gid', 'size', 'nlink', 'rdev', 'blksize', 'blocks', 'atimeSec', 'atimeNsec', 'mtimeSec', 'mtimeNsec', 'ctimeSec', 'ctimeNsec', 'layer', 'ino', 'xattrs', 'dirLayers', 'children', 'target'] as const) {
    out[k] = e[k];
  }
  return out;
}

/**
 * The whole index as plain data, in visit order. Comparing two builds: `atime: false`
 * leaves out access times (a walk updates those of dirs), `sorted` the order (rows are
 * numbered as the walk's stats complete).
 */
function dump(index: LowerIndex, { atime = true, sorted = false } = {}): [string, Record<string, unknown>][] {
  const out: [string, Record<string, unknown>][] = [];
  index.forEach((path, e) => {
    const p = plain(e);
    if (!atime) {
      delete p.atimeSec;
      delete p.atimeNsec;
    }
    out.push([path, p]);
  });
  return sorted ? out.sort((a, b) => (a[0] < b[0] ? -1 : 1)) : out;
}

async function fileId(path: string): Promise<string> {
  const st = await fsp.stat(path, { bigint: true });
  return `${st.ino}:${st.mtimeNs}`;
}

describe('lower index', () => {
  it('records stats, xattr presence and symlink targets at build, merged as overlayfs does', async () => {
    layers = await makeLayers(SPECS);
    const idx = await LowerIndex.build(layers.lowers);
    expect(idx.get('/w')).toBeUndefined();
    expect(idx.get('/o')?.children).toEqual(['new']);
    expect(idx.get('/d')?.children?.sort()).toEqual(['a', 'b']);
    expect(idx.get('/d')?.dirLayers).toEqual([0, 1]);
    expect(idx.get('/o')?.dirLayers).toEqual([0]);
    expect(idx.get('/d/b')?.layer).toBe(1);
    // The target is known without a readlink of the layer.
    expect(idx.get('/l')?.target).toBe('d/a');
    expect(idx.get('/d/a')?.target).toBeUndefined();
    expect(idx.get('/x')?.xattrs).toBe(true);
    // The opaque marker is an xattr too: probes of /o must go to the layer.
    expect(idx.get('/o')?.xattrs).toBe(true);
    expect(idx.get('/plain')?.xattrs).toBe(false);
    expect(idx.get('/caf\xe9')?.size).toBe('latin1 name'.length);
    expect(idx.get('/')?.children).toContain('caf\xe9');

    const real = Buffer.concat([Buffer.from(layers.lowers[1]!), toFsPath('/deep/x/y/z')]);
    const st = await fsp.lstat(real, { bigint: true });
    const e = idx.get('/deep/x/y/z')!;
    expect([e.ino, e.mode, e.size, e.nlink, e.mtimeSec, e.mtimeNsec]).toEqual([
      Number(st.ino),
      Number(st.mode),
      1,
      1,
      Number(st.mtimeNs / 1_000_000_000n),
      Number(st.mtimeNs % 1_000_000_000n),
    ]);
    // Before 1970: whole seconds round down and nanoseconds stay positive, as in a timespec.
    expect([idx.get('/old')?.mtimeSec, idx.get('/old')?.mtimeNsec]).toEqual([-2, 5]);
  });

  it('visits every path once, parents first, children as one run from firstChildId', async () => {
    layers = await makeLayers(SPECS);
    const idx = await LowerIndex.build(layers.lowers);
    const paths: string[] = [];
    const entries: LowerEntry[] = [];
    idx.forEach((path, e, id) => {
      expect(id).toBe(paths.length);
      paths.push(path);
      entries.push(e);
    });
    expect(paths.length).toBe(idx.size);
    expect(new Set(paths).size).toBe(paths.length);
    expect(paths[0]).toBe('/');
    entries.forEach((e, id) => {
      if (e.children === undefined) return;
      const first = idx.firstChildId(id);
      e.children.forEach((name, i) => {
        expect(paths[first + i]).toBe(paths[id] === '/' ? `/${name}` : `${paths[id]}/${name}`);
        expect(first + i).toBeGreaterThan(id);
      });
    });
    expect([...paths].sort()).toEqual(
      ['/', '/caf\xe9', '/d', '/d/a', '/d/b', '/deep', '/deep/x', '/deep/x/y', '/deep/x/y/z', '/l', '/o', '/o/new', '/old', '/plain', '/x'].sort(),
    );
  });

  it('finds every path of a larger tree and misses near names', async () => {
    const spec: LayerSpec = {};
    for (let d = 0; d < 10; d++) for (let f = 0; f < 120; f++) spec[`d${d}/f${f}`] = '';
    layers = await makeLayers([spec]);
    const idx = await LowerIndex.build(layers.lowers);
    expect(idx.size).toBe(1 + 10 + 10 * 120);
    const wrong: string[] = [];
    for (let d = 0; d < 10; d++) {
      for (let f = 0; f < 120; f++) if (idx.get(`/d${d}/f${f}`)?.size !== 0) wrong.push(`/d${d}/f${f}`);
      for (const miss of [`/d${d}/f120`, `/d${d}/f1/`, `/d${d}f1`, `d${d}/f1`]) if (idx.has(miss)) wrong.push(miss);
    }
    expect(wrong).toEqual([]);
    expect(idx.get('/d3/f\u0131')).toBeUndefined();
  });

  it('gives an empty index for no layers', async () => {
    const idx = await LowerIndex.build([]);
    expect(idx.size).toBe(0);
    expect(idx.get('/')).toBeUndefined();
  });
});

describe('lower index cache', () => {
  it('is written by the first open and loaded, equal, by the next', async () => {
    layers = await makeLayers(SPECS);
    const cacheFile = `${layers.root}/cache/index`;
    const built = await LowerIndex.open(layers.lowers, { cacheFile });
    expect(built.origin).toEqual({ loaded: false, reason: 'no cache file' });
    const id = await fileId(cacheFile);
    const loaded = await LowerIndex.open(layers.lowers, { cacheFile });
    expect(loaded.origin).toEqual({ loaded: true });
    expect(dump(loaded)).toEqual(dump(built));
    expect(dump(loaded, { atime: false, sorted: true })).toEqual(dump(await LowerIndex.build(layers.lowers), { atime: false, sorted: true }));
    expect(loaded.get('/w')).toBeUndefined();
    expect(await loaded.readlink('/l', loaded.get('/l')!)).toBe('d/a');
    expect(await fileId(cacheFile)).toBe(id);
    expect((await fsp.readdir(`${layers.root}/cache`)).filter((n) => n !== 'index')).toEqual([]);
  });

  const damage: [string, (buf: Buffer) => Buffer, RegExp][] = [
    ['a flipped byte', (b) => (b.writeUInt8(b.readUInt8(b.length >> 1) ^ 0x40, b.length >> 1), b), /checksum/],
    ['a truncated file', (b) => b.subarray(0, b.length - 100), /size/],
    ['an empty file', () => Buffer.alloc(0), /truncated/],
    ['another file', () => Buffer.from('{"not":"an index"}'.repeat(10)), /not an index cache/],
    ['an older version', (b) => (b.writeUInt32LE(1, 4), b), /version 1/],
  ];
  for (const [what, mutate, reason] of damage) {
    it(`is rebuilt and replaced when it is ${what}`, async () => {
      layers = await makeLayers(SPECS);
      const cacheFile = `${layers.root}/index`;
      const good = await LowerIndex.open(layers.lowers, { cacheFile });
      await fsp.writeFile(cacheFile, mutate(await fsp.readFile(cacheFile)));
      const rebuilt = await LowerIndex.open(layers.lowers, { cacheFile });
      expect(rebuilt.origin.loaded).toBe(false);
      expect(rebuilt.origin.reason).toMatch(reason);
      expect(dump(rebuilt, { atime: false, sorted: true })).toEqual(dump(good, { atime: false, sorted: true }));
      expect((await LowerIndex.open(layers.lowers, { cacheFile })).origin.loaded).toBe(true);
    });
  }

  it('is not used for other layers, or for a layer that was replaced', async () => {
    layers = await makeLayers(SPECS);
    const cacheFile = `${layers.root}/index`;
    await LowerIndex.open(layers.lowers, { cacheFile });
    const other = await LowerIndex.open([layers.lowers[1]!], { cacheFile });
    expect(other.origin.reason).toBe('other layers');
    expect(other.get('/x')).toBeUndefined();
    expect(other.get('/w')?.size).toBe('hidden'.length);

    await LowerIndex.open(layers.lowers, { cacheFile });
    // Same path, same content, new directory: what a re-extracted layer looks like.
    const top = layers.lowers[0]!;
    await fsp.rename(top, `${top}.old`);
    await fsp.mkdir(top);
    await writeLayer(top, SPECS[0]!);
    const again = await LowerIndex.open(layers.lowers, { cacheFile });
    expect(again.origin.reason).toMatch(/layer 0 changed/);
  });

  it('is not used when it was built reading the layers by other conventions (AUFS whiteouts, user.overlay xattrs)', async () => {
    layers = await makeLayers(SPECS);
    const cacheFile = `${layers.root}/index`;
    const aufs = await LowerIndex.open(layers.lowers, { cacheFile, aufsWhiteouts: true });
    expect(aufs.origin.loaded).toBe(false);
    const plainRead = await LowerIndex.open(layers.lowers, { cacheFile });
    expect(plainRead.origin.reason).toMatch(/AUFS whiteouts, this mount reads trusted\.overlay xattrs$/);
    expect((await LowerIndex.open(layers.lowers, { cacheFile })).origin.loaded).toBe(true);

    // A rootless process (or one in a user namespace) reads user.overlay.opaque, so it sees
    // /o as plain and /o/old through it: its cache must never serve a root mount (it did: a
    // find through such a mount listed what opaque directories hide).
    const dist = join(import.meta.dirname, '..', '..', 'dist', 'union', 'index.js');
    execFileSync(process.execPath, ['--input-type=module', '-e', `const { LowerIndex } = await import(${JSON.stringify(dist)}); await LowerIndex.ensureCache(${JSON.stringify(layers.lowers)}, ${JSON.stringify(cacheFile)});`], {
      env: { ...process.env, LAYERFS_OVERLAY_XATTRS: 'user' },
    });
    const asRoot = await LowerIndex.open(layers.lowers, { cacheFile });
    expect(asRoot.origin.reason).toMatch(/^cache built reading user\.overlay xattrs/);
    expect(asRoot.get('/o/old')).toBeUndefined();
    expect(asRoot.get('/o/new')).toBeDefined();
  });

  it('that cannot be written does not fail the open', async () => {
    layers = await makeLayers(SPECS);
    await fsp.writeFile(`${layers.root}/file`, '');
    const idx = await LowerIndex.open(layers.lowers, { cacheFile: `${layers.root}/file/index` });
    expect(idx.origin.writeError).toMatch(/ENOTDIR|EEXIST/);
    expect(idx.get('/d/a')?.size).toBe(2);
  });

  it('is built by ensureCache only when missing or stale', async () => {
    layers = await makeLayers(SPECS);
    const cacheFile = `${layers.root}/index`;
    expect(await LowerIndex.ensureCache(layers.lowers, cacheFile)).toEqual({ built: true, reason: 'no cache file' });
    const id = await fileId(cacheFile);
    expect(await LowerIndex.ensureCache(layers.lowers, cacheFile)).toEqual({ built: false });
    expect(await fileId(cacheFile)).toBe(id);
    const b = await fsp.readFile(cacheFile);
    b.writeUInt32LE(1, 4);
    await fsp.writeFile(cacheFile, b);
    expect((await LowerIndex.ensureCache(layers.lowers, cacheFile)).built).toBe(true);
    expect((await LowerIndex.open(layers.lowers, { cacheFile })).origin.loaded).toBe(true);
  });
});
