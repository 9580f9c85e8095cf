import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LayerfsError } from '../../src/core/errors.js';
import { EXPECTED_PATCH_LEVEL, checkPatchLevel, loadFuseNative } from '../../src/sys/fuse-native.js';

const require = createRequire(import.meta.url);

describe('the patched fuse-native', () => {
  it('is the build that loads: patch level matches, prebuilds are gone, libfuse is the system one', () => {
    const mod = loadFuseNative();
    expect(mod.PATCH_LEVEL).toBe(EXPECTED_PATCH_LEVEL);
    const dir = dirname(require.resolve('fuse-native'));
    expect(existsSync(join(dir, 'prebuilds'))).toBe(false);
    expect(existsSync(join(dir, 'build', 'Release', 'fuse.node'))).toBe(true);
  });

  it('refuses an unpatched binding and says how to fix it', () => {
    for (const level of [undefined, 0, 1, 2, 3, 5]) {
      let caught: unknown;
      try {
        checkPatchLevel({ PATCH_LEVEL: level });
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(LayerfsError);
      expect((caught as LayerfsError).code).toBe('NATIVE_BINDING');
      expect((caught as LayerfsError).message).toMatch(/not layerfs's patched build/);
      expect((caught as LayerfsError).hint).toMatch(/npm install/);
    }
  });
});
