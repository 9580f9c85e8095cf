/**
 * Copy-up's data path (src/union/copy-up.ts): sparse files copied extent by extent with
 * SEEK_DATA/SEEK_HOLE (the holes' map must come out identical, not merely "smaller"),
 * dense files byte for byte, and the lower file untouched by writes after the copy-up.
 * Durability (the flush before the rename) is observed on a real mount in
 * test/mount/copy-up-durability.test.ts. Small files inline (one native call) and on the
 * general path must come out the same.
 */
import { createHash, randomBytes } from 'node:crypto';
import { constants as C } from 'node:fs';
import * as fsp from 'node:fs/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { lseek, SEEK_DATA, SEEK_HOLE } from '../../src/sys/native.js';
import { runBackingCallsInline } from '../../src/union/backing-calls.js';
import { UnionFilesystem } from '../../src/union/union-fs.js';
import { makeLayers, ROOT, type TestLayers } from '../helpers/layers.js';

const KiB = 1024;
const MiB = 1024 * KiB;

let layers: TestLayers | undefined;
afterEach(async () => {
  await layers?.cleanup();
  layers = undefined;
});

/** The data extents of a file as [start, end) pairs, from SEEK_DATA/SEEK_HOLE. */
async function dataMap(path: string): Promise<Array<[number, number]>> {
  const fh = await fsp.open(path, 'r');
  try {
    const size = (await fh.stat()).size;
    const map: Array<[number, number]> = [];
    let off = 0;
    while (off < size) {
      let start: number;
      try {
        start = await lseek(fh.fd, off, SEEK_DATA);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENXIO') break;
        throw err;
      }
      const end = await lseek(fh.fd, start, SEEK_HOLE);
      map.push([start, end]);
      off = end;
    }
    return map;
  } finally {
    await fh.close();
  }
}

/** Writes `pieces` (offset → bytes) into a new file of `size` bytes; the rest stays holes. */
async function sparseFile(path: string, size: number, pieces: Array<[number, Buffer]>): Promise<void> {
  const fh = await fsp.open(path, 'w');
  try {
    for (const [off, data] of pieces) await fh.write(data, 0, data.length, off);
    await fh.truncate(size);
  } finally {
    await fh.close();
  }
}

const sha = async (path: string): Promise<string> => createHash('sha256').update(await fsp.readFile(path)).digest('hex');

async function open(specsOf: (lower: string) => Promise<void>, volatile = false): Promise<UnionFilesystem> {
  layers = await makeLayers([{ 'keep': 'k' }]);
  await specsOf(layers.lowers[0]!);
  return UnionFilesystem.open({ lowerDirs: layers.lowers, upperDir: layers.upper, workDir: layers.work, volatile });
}

describe('copy-up data', () => {
  it('copies a sparse file extent by extent: same bytes, the same holes, a trailing hole kept', async () => {
    const pieces: Array<[number, Buffer]> = [
      [0, randomBytes(64 * KiB)],
      [20 * MiB, randomBytes(128 * KiB)],
      [40 * MiB + 4 * KiB, randomBytes(4 * KiB)],
    ];
    const u = await open((lower) => sparseFile(`${lower}/sparse`, 64 * MiB, pieces));
    const lower = `${layers!.lowers[0]}/sparse`;
    const upper = `${layers!.upper}/sparse`;
    await u.chmod('/sparse', 0o600, ROOT);
    const st = await fsp.stat(upper);
    expect(st.size).toBe(64 * MiB);
    expect(await dataMap(upper)).toEqual(await dataMap(lower));
    expect(await dataMap(upper)).toEqual([[0, 64 * KiB], [20 * MiB, 20 * MiB + 128 * KiB], [40 * MiB + 4 * KiB, 40 * MiB + 8 * KiB]]);
    expect(st.blocks * 512).toBeLessThan(1 * MiB);
    expect(await sha(upper)).toBe(await sha(lower));
  });

  it('keeps data that runs to the end of a sparse file, and a file that is all hole', async () => {
    const tail = randomBytes(8 * KiB);
    const u = await open(async (lower) => {
      await sparseFile(`${lower}/tail`, 16 * MiB, [[16 * MiB - tail.length, tail]]);
      await sparseFile(`${lower}/empty`, 16 * MiB, []);
    });
    await u.chmod('/tail', 0o600, ROOT);
    await u.chmod('/empty', 0o600, ROOT);
    const upperTail = `${layers!.upper}/tail`;
    expect((await fsp.stat(upperTail)).size).toBe(16 * MiB);
    expect(await dataMap(upperTail)).toEqual([[16 * MiB - tail.length, 16 * MiB]]);
    const back = Buffer.alloc(tail.length);
    const fh = await fsp.open(upperTail, 'r');
    await fh.read(back, 0, back.length, 16 * MiB - tail.length);
    await fh.close();
    expect(back.equals(tail)).toBe(true);
    const empty = await fsp.stat(`${layers!.upper}/empty`);
    expect([empty.size, empty.blocks]).toEqual([16 * MiB, 0]);
    expect(await dataMap(`${layers!.upper}/empty`)).toEqual([]);
  });

  it('copies a dense file byte for byte and leaves the lower file as it was after writes', async () => {
    const content = randomBytes(3 * MiB + 123);
    const u = await open((lower) => fsp.writeFile(`${lower}/dense`, content));
    const lower = `${layers!.lowers[0]}/dense`;
    const lowerBefore = await fsp.stat(lower, { bigint: true });
    const fh = await u.open('/dense', C.O_WRONLY | C.O_APPEND, ROOT);
    // O_APPEND reaches the backing fd, so the position given here is ignored.
    await u.write('/dense', fh, Buffer.from('+'), 1, 0);
    await u.write('/dense', fh, Buffer.from('XY'), 2, 0);
    await u.release('/dense', fh);
    const upper = await fsp.readFile(`${layers!.upper}/dense`);
    expect(upper.length).toBe(content.length + 3);
    expect(upper.subarray(0, content.length).equals(content)).toBe(true);
    expect(upper.subarray(content.length).toString()).toBe('+XY');
    expect((await fsp.readFile(lower)).equals(content)).toBe(true);
    const lowerAfter = await fsp.stat(lower, { bigint: true });
    expect([lowerAfter.mtimeNs, lowerAfter.ctimeNs, lowerAfter.size]).toEqual([lowerBefore.mtimeNs, lowerBefore.ctimeNs, lowerBefore.size]);
  });
});

describe('small files, inline (one native call) and on the general path', () => {
  const T = (sec: number, nsec: number) => ({ sec, nsec });
  /** Lower: d/ with an empty file, a small one, one with an xattr (never the one-call path) and a sparse one. */
  async function lowerTree(lower: string): Promise<void> {
    await fsp.mkdir(`${lower}/d`);
    await fsp.writeFile(`${lower}/d/empty`, '');
    await fsp.writeFile(`${lower}/d/small`, 'small data');
    await fsp.writeFile(`${lower}/d/xattr`, 'has one');
    await sparseFile(`${lower}/d/sparse`, 48 * KiB, [[0, Buffer.from('head')]]);
    const { lsetxattr, utimens } = await import('../../src/sys/native.js');
    await lsetxattr(`${lower}/d/xattr`, 'user.keep', Buffer.from('kept'));
    for (const [i, name] of ['empty', 'small', 'xattr', 'sparse'].entries()) {
      await fsp.chown(`${lower}/d/${name}`, 1000 + i, 2000 + i);
      await fsp.chmod(`${lower}/d/${name}`, 0o2640 + i);
      await utimens(`${lower}/d/${name}`, T(1_300_000_000 + i, 111 + i), T(1_200_000_000 + i, 222 + i));
    }
    await utimens(`${lower}/d`, T(1_100_000_000, 5), T(1_100_000_000, 6));
  }

  for (const inline of [false, true]) {
    it(`copies owner, mode, times, xattrs, st_ino and data, keeps the parent's times and the lower intact (inline ${inline})`, async () => {
      // volatile: no flush, so the small file with data qualifies for the one call too.
      const u = await open(lowerTree, true);
      const lower = layers!.lowers[0]!;
      const names = ['empty', 'small', 'xattr', 'sparse'];
      const before = new Map<string, number | bigint>();
      for (const n of names) before.set(n, (await u.getattr(`/d/${n}`)).ino);
      const lowerBefore = await Promise.all(names.map((n) => fsp.stat(`${lower}/d/${n}`, { bigint: true })));
      runBackingCallsInline(inline);
      try {
        for (const n of names) await u.release(`/d/${n}`, await u.open(`/d/${n}`, C.O_WRONLY | C.O_APPEND, ROOT));
      } finally {
        runBackingCallsInline(false);
      }
      const { lgetxattr } = await import('../../src/sys/native.js');
      for (const [i, n] of names.entries()) {
        const up = await fsp.lstat(`${layers!.upper}/d/${n}`, { bigint: true });
        const low = lowerBefore[i]!;
        expect([up.mode, up.uid, up.gid, up.size, up.atimeNs, up.mtimeNs]).toEqual([low.mode, low.uid, low.gid, low.size, low.atimeNs, low.mtimeNs]);
        expect(await fsp.readFile(`${layers!.upper}/d/${n}`)).toEqual(await fsp.readFile(`${lower}/d/${n}`));
      }
      expect((await lgetxattr(`${layers!.upper}/d/xattr`, 'user.keep'))?.toString()).toBe('kept');
      expect(await dataMap(`${layers!.upper}/d/sparse`)).toEqual(await dataMap(`${lower}/d/sparse`));
      const d = await fsp.lstat(`${layers!.upper}/d`, { bigint: true });
      expect([d.atimeNs, d.mtimeNs]).toEqual([1_100_000_000_000_000_005n, 1_100_000_000_000_000_006n]);
      expect(await fsp.readdir(`${layers!.work}/layerfs`)).toEqual([]);
      // A union opened afresh reads the origin back: the same st_ino as before the copy-up.
      const again = await UnionFilesystem.open({ lowerDirs: layers!.lowers, upperDir: layers!.upper, workDir: layers!.work });
      for (const n of names) expect((await again.getattr(`/d/${n}`)).ino).toBe(before.get(n));
      // Writes after the copy-up reach the upper file only.
      const fh = await again.open('/d/small', C.O_WRONLY | C.O_APPEND, ROOT);
      await again.write('/d/small', fh, Buffer.from('+'), 1, 0);
      await again.release('/d/small', fh);
      expect(await fsp.readFile(`${layers!.upper}/d/small`, 'utf8')).toBe('small data+');
      expect(await fsp.readFile(`${lower}/d/small`, 'utf8')).toBe('small data');
    });
  }
});
