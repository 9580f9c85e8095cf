/**
 * One definition of each binary format, both sides: TypeScript writes (a lower-index cache
 * of a real tree, upper facts flags, packed file handles) and the C in src/engine/native/
 * reads, through a small program compiled here (test/helpers/formats-reader.c). Every
 * field C reports must be what the union itself would answer.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as fsp from 'node:fs/promises';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { packHandle } from '../../src/engine/formats/handle-bits.js';
import { HEADER_BYTES, U32_COLUMNS, F64_COLUMNS, HEADER } from '../../src/engine/formats/index-cache.js';
import { HIDES_LOWER, NO_XATTRS, OWN_STAT, upperFlags, WHITEOUT } from '../../src/engine/formats/upper-facts.js';
import { lowerIno, upperIno } from '../../src/overlay/index.js';
import { LowerIndex } from '../../src/union/lower-index.js';
import { lowerStat } from '../../src/union/union-view.js';
import { makeLayers, type LayerSpec, type TestLayers } from '../helpers/layers.js';
// @ts-expect-error: a plain .mjs build script without types
import { generateFormats } from '../../scripts/generate-formats.mjs';

const root = join(import.meta.dirname, '..', '..');
const native = join(root, 'src', 'engine', 'native');
const reader = join(root, 'node_modules', '.cache', 'layerfs-test', 'formats-reader');

/** Top first: whiteouts, an opaque dir, a merged dir, xattrs, symlinks, a non-UTF-8 name. */
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
  { 'w': 'hidden', 'd/b': 'b', 'o/old': 'gone', 'plain': 'p', 'deep/x/y/z': 'z', 'deep/l2': { symlink: '../plain' } },
];

const hex = (s: string | Buffer): string => (typeof s === 'string' ? Buffer.from(s, 'latin1') : s).toString('hex');

function run(args: string[], input = ''): Record<string, unknown>[] {
  const r = spawnSync(reader, args, { input, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`formats-reader ${args.join(' ')}: exit ${r.status}: ${r.stderr}`);
  return r.stdout
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

let layers: TestLayers;
let cacheFile: string;
let index: LowerIndex;

beforeAll(async () => {
  await generateFormats();
  mkdirSync(join(reader, '..'), { recursive: true });
  const sources = ['lower-index.c', 'upper-set.c', 'resolve.c'].map((f) => join(native, f));
  execFileSync('cc', ['-std=gnu11', '-Wall', '-Wextra', '-Werror', '-O1', '-g', '-pthread', '-I', native, '-o', reader, join(root, 'test', 'helpers', 'formats-reader.c'), ...sources, '-lz']);
  layers = await makeLayers(SPECS);
  cacheFile = join(layers.root, 'index.cache');
  index = await LowerIndex.open(layers.lowers, { cacheFile });
  expect(index.origin.loaded).toBe(false);
  expect(index.origin.writeError).toBeUndefined();
}, 120_000); // compiling C on a busy machine

afterAll(async () => {
  await layers?.cleanup();
});

describe('lower-index cache written by TypeScript, read by C', () => {
  it('gives every row exactly as UnionView answers it', () => {
    const out = run(['dump', cacheFile]);
    const rows = out.filter((o) => 'row' in o);
    expect(rows.length).toBe(index.size);
    index.forEach((path, entry, id) => {
      const st = lowerStat(entry);
      const expected: Record<string, unknown> = {
        row: id,
        path: hex(path),
        layer: entry.layer,
        xattrs: entry.xattrs,
        mode: st.mode,
        uid: st.uid,
        gid: st.gid,
        nlink: st.nlink,
        size: Number(st.size),
        blocks: Number(st.blocks),
        blksize: st.blksize,
        rdev: st.rdev,
        ino: String(st.ino),
        atime: [st.atime.sec, st.atime.nsec],
        mtime: [st.mtime.sec, st.mtime.nsec],
        ctime: [st.ctime.sec, st.ctime.nsec],
        backing: hex(index.realPath(entry.layer, path)),
      };
      if (entry.target !== undefined) expected.target = hex(entry.target);
      if (entry.children !== undefined) expected.children = entry.children.map(hex);
      expect(rows[id], path).toEqual(expected);
    });
    expect(out.filter((o) => 'root' in o).map((o) => o.root)).toEqual(layers.lowers.map(hex));
    // The cases the tree is made of really are in it.
    const byPath = new Map(rows.map((r) => [Buffer.from(r.path as string, 'hex').toString('latin1'), r]));
    expect(byPath.has('/w')).toBe(false);
    expect(byPath.has('/o/old')).toBe(false);
    expect(byPath.get('/d')!.nlink).toBe(1);
    expect(byPath.get('/x')!.xattrs).toBe(true);
    expect(byPath.get('/old')!.mtime).toEqual([-2, 5]);
    expect(byPath.get('/caf\xe9')).toBeDefined();
  });

  it('resolves paths against upper facts flagged by TypeScript', async () => {
    const upperFile = join(layers.upper, 'made');
    await fsp.writeFile(upperFile, 'u');
    const upperSt = await fsp.lstat(upperFile, { bigint: true });
    const dRow = index.get('/d')!;
    const flags = (f: Parameters<typeof upperFlags>[0]) => upperFlags(f);
    const cmds = [
      `resolve ${hex('/d/a')}`,
      `resolve ${hex('/nothing')}`,
      `resolve ${hex('/' + 'n'.repeat(256))}`,
      `set ${flags({ kind: 'other', hidesLower: true, noXattrs: false, ownStat: true })} 0 ${hex('/made')}`,
      `resolve ${hex('/made')}`,
      `rm 0 ${hex('/made')}`,
      `root ${hex(layers.upper)}`,
      `set ${flags({ kind: 'whiteout', hidesLower: true, noXattrs: false, ownStat: false })} 0 ${hex('/d')}`,
      `resolve ${hex('/d')}`,
      `resolve ${hex('/d/a')}`,
      `resolve ${hex('/d/nothing')}`,
      `rm 0 ${hex('/d')}`,
      `resolve ${hex('/d/a')}`,
      `set ${flags({ kind: 'other', hidesLower: true, noXattrs: true, ownStat: true })} 0 ${hex('/made')}`,
      `resolve ${hex('/made')}`,
      `set ${flags({ kind: 'other', hidesLower: true, noXattrs: false, ownStat: true })} 12345 ${hex('/made')}`,
      `resolve ${hex('/made')}`,
      `set ${flags({ kind: 'dir', hidesLower: false, noXattrs: false, ownStat: false })} 0 ${hex('/deep')}`,
      `set ${flags({ kind: 'dir', hidesLower: false, noXattrs: false, ownStat: false })} 0 ${hex('/deep/x')}`,
      `resolve ${hex('/deep/x/y')}`,
      `rm 1 ${hex('/deep')}`,
      `set ${flags({ kind: 'dir', hidesLower: true, noXattrs: false, ownStat: false })} 0 ${hex('/')}`,
      `resolve ${hex('/plain')}`,
      `rm 1 ${hex('/')}`,
      `resolve ${hex('/plain')}`,
    ];
    const out = run(['script', cacheFile], cmds.join('\n') + '\n');
    const da = { answer: 'found', row: expect.any(Number), ino: String(lowerStat(index.get('/d/a')!).ino) };
    expect(out).toEqual([
      da,
      { answer: 'missing' },
      { answer: 'defer' }, // a name over NAME_MAX: JS says ENAMETOOLONG
      { set: 0 },
      { answer: 'upper', flags: HIDES_LOWER | OWN_STAT, origin: '0', lstatRc: 1 }, // no upper root yet: LF_ASK_JS
      { count: 0 },
      { root: 0 },
      { set: 0 },
      { answer: 'upper', flags: WHITEOUT | HIDES_LOWER, origin: '0' },
      { answer: 'defer' }, // below a path that hides the lower layers
      { answer: 'defer' },
      { count: 0 },
      da,
      { set: 0 },
      { answer: 'upper', flags: HIDES_LOWER | NO_XATTRS | OWN_STAT, origin: '0', lstatRc: 0, lstatIno: String(upperIno(upperSt.ino)), lstatMode: Number(upperSt.mode) },
      { set: 0 },
      { answer: 'upper', flags: HIDES_LOWER | OWN_STAT, origin: '12345', lstatRc: 0, lstatIno: '12345', lstatMode: Number(upperSt.mode) },
      { set: 0 },
      { set: 0 },
      { answer: 'found', row: expect.any(Number), ino: String(lowerStat(index.get('/deep/x/y')!).ino) },
      { count: 1 }, // /made: the two /deep paths went with their subtree
      { set: 0 },
      { answer: 'defer' },
      { count: 0 },
      { answer: 'found', row: expect.any(Number), ino: String(lowerIno(1, Number(index.get('/plain')!.ino))) },
    ]);
    expect(dRow.dirLayers!.length).toBe(2);
  });

  it('packs and unpacks file handles with the same bits', () => {
    const cases = [
      { js: 7, fd: 3, write: true, native: false, upperIno: false },
      { js: 0xffffffff, fd: 2 ** 24 - 2, write: false, native: false, upperIno: true },
      { js: 2, fd: 10, write: false, native: true, upperIno: false },
      { js: 9, fd: -1, write: true, native: false, upperIno: true }, // no fd: its bits are left out too
      { js: 9, fd: 2 ** 24 - 1, write: true, native: false, upperIno: false }, // too big for the field
    ];
    const input = cases
      .flatMap((c) => [`fh ${packHandle(c.js, c.fd, c).toString(16)}`, `pack ${c.js} ${c.fd} ${+c.write} ${+c.native} ${+c.upperIno}`])
      .join('\n');
    const out = run(['script', cacheFile], input + '\n');
    cases.forEach((c, i) => {
      const fits = c.fd >= 0 && c.fd < 2 ** 24 - 1;
      expect(out[2 * i], JSON.stringify(c)).toEqual({ js: c.js, fd: fits ? c.fd : -1, write: fits && c.write, native: c.native, upperIno: fits && c.upperIno });
      expect(out[2 * i + 1]).toEqual({ fh: packHandle(c.js, c.fd, c).toString(16) });
    });
    expect(packHandle(1, 5, { write: true })).toBe((1n | (6n << 32n)) | (1n << 62n));
  });

  it('rejects damaged, foreign and stale files without reading out of bounds', async () => {
    const good = await fsp.readFile(cacheFile);
    const variant = async (name: string, edit: (b: Buffer) => Buffer) => {
      const f = join(layers.root, name);
      await fsp.writeFile(f, edit(Buffer.from(good)));
      return f;
    };
    expect(run(['open', cacheFile, 'crc'])).toEqual([{ ok: true, code: 0, err: '' }]);
    const rows = good.readUInt32LE(HEADER.rows);
    const rootsBytes = good.readUInt32LE(HEADER.rootsBytes);
    const u32At = (col: (typeof U32_COLUMNS)[number], row: number) => HEADER_BYTES + rootsBytes + rows * 8 * F64_COLUMNS.length + (U32_COLUMNS.indexOf(col) * rows + row) * 4;
    const flipped = await variant('flip', (b) => {
      b[b.length - 1]! ^= 1;
      return b;
    });
    expect(run(['open', flipped, 'crc'])[0]).toMatchObject({ ok: false, err: 'checksum mismatch' });
    const far = await variant('far', (b) => {
      b.writeUInt32LE(0xfffffff0, u32At('pathOff', 1));
      return b;
    });
    expect(run(['open', far])[0]).toMatchObject({ ok: false, err: 'row 1: path out of range' });
    const kids = await variant('kids', (b) => {
      b.writeUInt32LE(rows, u32At('aux0', 0));
      return b;
    });
    expect(run(['open', kids])[0]).toMatchObject({ ok: false, err: 'row 0: children out of range' });
    const cut = await variant('cut', (b) => b.subarray(0, b.length - 1));
    expect(run(['open', cut])[0]).toMatchObject({ ok: false, code: -22 });
    const old = await variant('old', (b) => {
      b.writeUInt32LE(2, HEADER.version);
      return b;
    });
    expect(run(['open', old])[0]).toMatchObject({ ok: false, err: expect.stringMatching(/^cache version 2/) });
    // A layer root that changed (here: its ctime) makes the file stale.
    await fsp.chmod(layers.lowers[1]!, 0o700);
    expect(run(['open', cacheFile])[0]).toMatchObject({ ok: false, code: -116, err: 'layer 1 changed since the cache was written' });
  });
});
