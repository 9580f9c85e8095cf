/**
 * A full writable layer: the writer gets ENOSPC and nothing half-done becomes visible
 * (copy-up is built in the work dir and renamed only when complete).
 */
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { constants as C } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { UnionFilesystem } from '../../src/union/union-fs.js';
import { makeLayers, ROOT, type TestLayers } from '../helpers/layers.js';

const run = promisify(execFile);
let layers: TestLayers | undefined;
let tmpfs: string | undefined;

afterEach(async () => {
  if (tmpfs) await run('umount', [tmpfs]).catch(() => run('umount', ['-l', tmpfs!]).catch(() => undefined));
  tmpfs = undefined;
  await layers?.cleanup();
  layers = undefined;
});

const errno = (e: unknown): unknown => {
  const x = e as { errno?: unknown; code?: unknown };
  return typeof x.errno === 'string' ? x.errno : x.code;
};

describe('union on a full writable layer', () => {
  it('fails copy-up and writes with ENOSPC and keeps the layers consistent', async () => {
    layers = await makeLayers([{ 'd/small': 'small', 'd/big': 'x' }]);
    await fsp.writeFile(`${layers.lowers[0]}/d/big`, Buffer.alloc(3 * 2 ** 20, 7));
    tmpfs = path.join(layers.root, 'rw');
    await fsp.mkdir(tmpfs);
    await run('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', tmpfs]);
    const upper = path.join(tmpfs, 'upper');
    const work = path.join(tmpfs, 'work');
    await Promise.all([fsp.mkdir(upper), fsp.mkdir(work)]);
    const u = await UnionFilesystem.open({ lowerDirs: layers.lowers, upperDir: upper, workDir: work });

    await expect(u.open('/d/big', C.O_WRONLY | C.O_APPEND, ROOT)).rejects.toSatisfy((e) => errno(e) === 'ENOSPC');
    // No half copy anywhere; the lower file still shows, whole.
    expect(await fsp.readdir(upper + '/d')).toEqual([]);
    expect(await fsp.readdir(work + '/layerfs')).toEqual([]);
    expect(Number((await u.getattr('/d/big')).size)).toBe(3 * 2 ** 20);

    const fh = await u.create('/d/fill', 0o644, C.O_WRONLY, ROOT);
    const chunk = Buffer.alloc(256 * 1024, 1);
    let failure: unknown;
    for (let off = 0; off < 4 * 2 ** 20; off += chunk.length) {
      try {
        await u.write('/d/fill', fh, chunk, chunk.length, off);
      } catch (err) {
        failure = err;
        break;
      }
    }
    await u.release('/d/fill', fh);
    expect(errno(failure)).toBe('ENOSPC');
    // Removing the filler frees the space; the copy-up then succeeds.
    await u.unlink('/d/fill', ROOT);
    await u.unlink('/d/big', ROOT);
    await u.chmod('/d/small', 0o600, ROOT);
    expect((await u.readdir('/d')).map((e) => e.name)).toEqual(['small']);
    const again = await UnionFilesystem.open({ lowerDirs: layers.lowers, upperDir: upper, workDir: work });
    expect((await again.readdir('/d')).map((e) => e.name)).toEqual(['small']);
    expect((await again.getattr('/d/small')).mode & 0o7777).toBe(0o600);
  });
});
