/**
 * Without layerfs's syscall addon (not built, or a dist/ copied out of its package) every
 * xattr read fails with NATIVE_BINDING. Those reads once answered "absent": an index built
 * so merged opaque directories with the layers below them and marked every entry as having
 * xattrs, and was written to the cache file that later mounts trust (found when a copy of
 * dist/ outside the package rebuilt the bench's cache). Now the open fails, says why, and
 * writes no cache.
 */
import * as fsp from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { LayerfsError } from '../../src/core/errors.js';
import { makeLayers, type TestLayers } from '../helpers/layers.js';

vi.mock('../../src/sys/native.js', async (importOriginal) => {
  const real = await importOriginal<typeof import('../../src/sys/native.js')>();
  const notBuilt = (): LayerfsError => new LayerfsError('NATIVE_BINDING', "layerfs's syscall addon is not built");
  const missing = (): Promise<never> => Promise.reject(notBuilt());
  return {
    ...real,
    lgetxattr: missing,
    llistxattr: missing,
    mapIndexCache: () => {
      throw notBuilt();
    },
  };
});

const { LowerIndex } = await import('../../src/union/lower-index.js');
const { isOpaqueDir } = await import('../../src/overlay/overlay-format.js');

let layers: TestLayers | undefined;
afterEach(async () => {
  await layers?.cleanup();
  layers = undefined;
});

describe('without the native addon', () => {
  it('an index build fails with NATIVE_BINDING and leaves no cache file', async () => {
    layers = await makeLayers([{ 'o/': { opaque: true }, 'o/new': 'n' }, { 'o/old': 'hidden by the opaque dir' }]);
    const cacheFile = join(layers.root, 'index.cache');
    await expect(LowerIndex.open(layers.lowers, { cacheFile })).rejects.toMatchObject({ code: 'NATIVE_BINDING' });
    await expect(fsp.access(cacheFile)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('an xattr read is not taken for "absent"', async () => {
    layers = await makeLayers([{ 'o/': { opaque: true } }]);
    await expect(isOpaqueDir(Buffer.from(join(layers.lowers[0]!, 'o')))).rejects.toBeInstanceOf(LayerfsError);
  });
});
