import { LayerfsError } from '../core/errors.js';

/**
 * Resource limits for reading images, so that a hostile archive cannot exhaust memory or
 * disk (decompression bombs, huge tar headers, huge zstd windows, absurd layer counts).
 */

/** Limits applied while loading. All sizes in bytes. */
export interface LoadLimits {
  /** Maximum uncompressed size of one layer (its tar stream). */
  maxLayerSize: number;
  /** Maximum zstd window a frame may declare. */
  maxZstdWindow: number;
  /** Maximum size of a JSON document (manifest, index, config). */
  maxJsonSize: number;
  /** Maximum number of layers in one image (Docker's layer store allows 125). */
  maxLayers: number;
}

/** Defaults; `LAYERFS_MAX_LAYER_SIZE` (bytes) overrides the layer size limit. */
export function defaultLimits(): LoadLimits {
  const env = Number(process.env.LAYERFS_MAX_LAYER_SIZE);
  return {
    maxLayerSize: Number.isSafeInteger(env) && env > 0 ? env : 64 * 1024 ** 3,
    maxZstdWindow: 128 * 1024 ** 2,
    maxJsonSize: 32 * 1024 ** 2,
    maxLayers: 125,
  };
}

/** Parses a size like `10G`, `512M`, `4096` (binary units). */
export function parseSize(s: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?$/i.exec(s.trim());
  if (!m) throw new LayerfsError('INVALID_ARGUMENT', `invalid size ${JSON.stringify(s)}: expected e.g. 512M, 10G`);
  const mult = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g' | 't'];
  return Math.floor(Number(m[1]) * mult);
}
