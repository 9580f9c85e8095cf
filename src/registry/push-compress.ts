/**
 * What `push --compress` sends for a layer the store keeps as an uncompressed tar (an
 * image loaded from `docker save` keeps its layers as plain tar blobs): the tar is
 * compressed (gzip by default, zstd on request) into a work folder, the manifest names
 * the compressed blob with the media type to match, and everything else is pushed as
 * stored. Several registries refuse uncompressed layers, and gzip roughly halves them.
 *
 * Stable digests: gzip comes from Node's zlib (no file name, mtime 0, fixed level) and
 * zstd from the `zstd` program at a fixed level, so the same layer compresses to the
 * same bytes on every push, and the rewritten manifest (same key order, same layout) to
 * the same digest. Layers already compressed are never recompressed. A Docker schema-2
 * manifest has no zstd media type: with zstd it becomes an OCI manifest.
 */
import { spawn } from 'node:child_process';
import { createReadStream, createWriteStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { constants, createGzip } from 'node:zlib';
import type { Digest } from '../core/digest.js';
import { LayerfsError } from '../core/errors.js';
import { MediaType } from '../image/index.js';
import { HashTap } from '../store/index.js';

export type PushCompression = 'gzip' | 'zstd' | 'none';

/** Parses `--compress`. */
export function parseCompression(v: string): PushCompression {
  if (v === 'gzip' || v === 'zstd' || v === 'none') return v;
  throw new LayerfsError('INVALID_ARGUMENT', `invalid --compress ${JSON.stringify(v)}: expected gzip, zstd or none`);
}

/** A blob as it will be pushed. */
export interface PushBlob {
  digest: Digest;
  size: number;
  file: string;
}

const UNCOMPRESSED = new Set<string>([MediaType.dockerLayer, MediaType.ociLayer]);
const DOCKER_TO_OCI: Record<string, string> = {
  [MediaType.dockerManifest]: MediaType.ociManifest,
  [MediaType.dockerConfig]: MediaType.ociConfig,
  [MediaType.dockerLayer]: MediaType.ociLayer,
  [MediaType.dockerLayerGzip]: MediaType.ociLayerGzip,
};

/** zstd -3 of `src` into `dst`, by the program (Node 20's zlib has no zstd). */
async function zstdFile(src: string, dst: string): Promise<void> {
  const out = await open(dst, 'wx');
  try {
    await new Promise<void>((resolve, reject) => {
      const p = spawn('zstd', ['-3', '-q', '-c', '--no-progress', src], { stdio: ['ignore', out.fd, 'pipe'] });
      let err = '';
      p.stderr?.on('data', (d: Buffer) => (err += d.toString()));
      p.on('error', (e) => reject(new LayerfsError('FAILED_PRECONDITION', `cannot run zstd: ${e.message}`, { hint: 'install zstd (apt-get install zstd), or push with --compress gzip' })));
      p.on('close', (code) => (code === 0 ? resolve() : reject(new LayerfsError('IO', `zstd failed: ${err.trim() || `exit ${code}`}`))));
    });
  } finally {
    await out.close();
  }
}

async function compressFile(src: string, dst: string, how: 'gzip' | 'zstd'): Promise<{ digest: Digest; size: number }> {
  const tap = new HashTap();
  if (how === 'gzip') {
    await pipeline(createReadStream(src), createGzip({ level: constants.Z_DEFAULT_COMPRESSION }), tap, createWriteStream(dst, { flags: 'wx' }));
  } else {
    await zstdFile(src, dst);
    await pipeline(createReadStream(dst), tap, new Writable({ write: (_c, _e, cb) => cb() }));
  }
  return { digest: tap.digest(), size: tap.size };
}

/** The manifest and layer blobs to push: unchanged when nothing is to be compressed. */
export async function compressForPush(
  manifestBytes: Buffer,
  layers: PushBlob[],
  how: PushCompression,
  workDir: string,
  onLayer?: (index: number) => void,
): Promise<{ manifestBytes: Buffer; layers: PushBlob[] }> {
  const obj = JSON.parse(manifestBytes.toString('utf8')) as { mediaType?: string; config: { mediaType: string }; layers: { mediaType: string; digest: string; size: number }[] };
  if (how === 'none' || !obj.layers.some((l) => UNCOMPRESSED.has(l.mediaType))) return { manifestBytes, layers };
  const out: PushBlob[] = [];
  for (const [i, l] of obj.layers.entries()) {
    const blob = layers[i]!;
    if (!UNCOMPRESSED.has(l.mediaType)) {
      out.push(blob);
      continue;
    }
    onLayer?.(i);
    const file = `${workDir}/${i}.${how === 'gzip' ? 'gz' : 'zst'}`;
    const c = await compressFile(blob.file, file, how);
    const docker = l.mediaType === MediaType.dockerLayer;
    l.mediaType = how === 'gzip' ? (docker ? MediaType.dockerLayerGzip : MediaType.ociLayerGzip) : MediaType.ociLayerZstd;
    l.digest = c.digest;
    l.size = c.size;
    out.push({ digest: c.digest, size: c.size, file });
  }
  if (how === 'zstd' && obj.mediaType === MediaType.dockerManifest) {
    obj.mediaType = MediaType.ociManifest;
    obj.config.mediaType = DOCKER_TO_OCI[obj.config.mediaType] ?? obj.config.mediaType;
    for (const l of obj.layers) l.mediaType = DOCKER_TO_OCI[l.mediaType] ?? l.mediaType;
  }
  return { manifestBytes: Buffer.from(JSON.stringify(obj, null, 3)), layers: out };
}
