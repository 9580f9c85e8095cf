/**
 * `layerfs import`: a root filesystem tarball (what `export` writes, plain, gzip or zstd)
 * becomes a one-layer image, as `docker import` makes one: the tar is hashed as it passes
 * (diff_id), gzipped into the layer blob (digest), and stored through the loader with a
 * config of this host's platform, a history entry, and the Dockerfile-style changes given.
 * The staging layout lives in the store's downloads/ folder (same filesystem; not tmp/,
 * which the loader clears when it takes the lock) and is removed whatever happens.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { digestHex, type Digest } from '../core/digest.js';
import { LayerfsError } from '../core/errors.js';
import { defaultLimits, Decompressor, MediaType, hostPlatform } from '../image/index.js';
import type { Reference } from '../image/index.js';
import { HashTap, loadLayoutImage } from './layout-import.js';
import { stagingName } from './store-paths.js';
import type { Store } from './store.js';

export interface ImportRequest {
  /** A file, or '-' for `stdin`. */
  input: string;
  stdin?: Readable;
  ref: Reference | undefined;
  /** The image config's `config` (Cmd, Env… from --change). */
  config: Record<string, unknown> | undefined;
  message?: string;
}

/** Imports the tarball; resolves the new image id. */
export async function importTarball(store: Store, req: ImportRequest): Promise<Digest> {
  const layout = `${store.paths.root}/downloads/import-${stagingName()}`;
  const blobs = `${layout}/blobs/sha256`;
  await mkdir(blobs, { recursive: true });
  try {
    let input: Readable;
    try {
      input = req.input === '-' ? (req.stdin ?? process.stdin) : createReadStream(req.input);
      if (req.input !== '-') await new Promise<void>((res, rej) => (input as ReturnType<typeof createReadStream>).once('open', () => res()).once('error', rej));
    } catch (err) {
      throw new LayerfsError('NOT_FOUND', `cannot open ${req.input}: ${(err as Error).message}`, { cause: err });
    }
    const tarTap = new HashTap();
    const gzTap = new HashTap();
    const tmp = `${blobs}/layer.tmp`;
    await pipeline(input, new Decompressor('archive', defaultLimits().maxZstdWindow), tarTap, createGzip(), gzTap, createWriteStream(tmp, { flags: 'wx' }));
    if (tarTap.size === 0) throw new LayerfsError('INVALID_ARGUMENT', 'the archive to import is empty');
    const diffId = tarTap.digest();
    const blob = gzTap.digest();
    await rename(tmp, `${blobs}/${digestHex(blob)}`);
    const now = new Date().toISOString();
    const platform = hostPlatform();
    const config = {
      architecture: platform.architecture,
      ...(platform.variant ? { variant: platform.variant } : {}),
      os: platform.os,
      created: now,
      config: req.config ?? {},
      rootfs: { type: 'layers', diff_ids: [diffId] },
      history: [{ created: now, created_by: 'layerfs import', ...(req.message ? { comment: req.message } : {}) }],
    };
    return await loadLayoutImage(store, {
      layout,
      configBytes: Buffer.from(JSON.stringify(config)),
      layers: [{ mediaType: MediaType.ociLayerGzip, digest: blob, size: gzTap.size }],
      docker: false,
      ref: req.ref,
    });
  } finally {
    await rm(layout, { recursive: true, force: true });
  }
}
