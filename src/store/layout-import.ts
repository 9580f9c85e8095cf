/**
 * Storing an image that layerfs made (commit, import): its config, manifest and index are
 * written beside its blobs as an OCI image layout in a staging folder, and the layout is
 * loaded by the same loader `layerfs load` uses — so new layers are verified, extracted
 * and recorded exactly like any loaded layer, all or nothing. Also the hashing tap both
 * use to get a layer's diff_id (over the tar) and digest (over the compressed bytes).
 */
import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { Transform, type TransformCallback } from 'node:stream';
import { digestHex, digestOf, parseDigest, type Digest, type DiffId } from '../core/digest.js';
import { LayerfsError } from '../core/errors.js';
import { MediaType, type Descriptor, fullString, type Reference } from '../image/index.js';
import { loadImages } from './image-loader.js';
import type { PreExtracted } from './layer-ingest.js';
import type { Store } from './store.js';

/** sha256 and byte count of whatever passes through. */
export class HashTap extends Transform {
  private readonly hash = createHash('sha256');
  size = 0;
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hash.update(chunk);
    this.size += chunk.length;
    cb(null, chunk);
  }
  digest(): Digest {
    return parseDigest(`sha256:${this.hash.digest('hex')}`);
  }
}

/** What goes into the layout besides the layer blobs already in `<layout>/blobs/sha256/`. */
export interface LayoutImage {
  layout: string;
  configBytes: Buffer;
  layers: Descriptor[];
  /** Docker media types (else OCI). */
  docker: boolean;
  ref: Reference | undefined;
  /** Layers already extracted from the tar their blob was written from (image-loader.ts). */
  extracted?: Map<DiffId, PreExtracted>;
}

/** Writes config, manifest, index.json and oci-layout, then loads the layout; resolves the image id. */
export async function loadLayoutImage(store: Store, img: LayoutImage): Promise<Digest> {
  const blobs = `${img.layout}/blobs/sha256`;
  const configDigest = digestOf(img.configBytes);
  await writeFile(`${blobs}/${digestHex(configDigest)}`, img.configBytes);
  const manifestType = img.docker ? MediaType.dockerManifest : MediaType.ociManifest;
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: manifestType,
    config: { mediaType: img.docker ? MediaType.dockerConfig : MediaType.ociConfig, digest: configDigest, size: img.configBytes.length },
    layers: img.layers,
  }));
  const mDigest = digestOf(manifest);
  await writeFile(`${blobs}/${digestHex(mDigest)}`, manifest);
  const desc: Record<string, unknown> = { mediaType: manifestType, digest: mDigest, size: manifest.length };
  if (img.ref) desc.annotations = { 'io.containerd.image.name': fullString(img.ref), 'org.opencontainers.image.ref.name': img.ref.tag ?? 'latest' };
  await writeFile(`${img.layout}/index.json`, JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [desc] }));
  await writeFile(`${img.layout}/oci-layout`, JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  const result = await loadImages(store, { input: img.layout, ...(img.extracted ? { extracted: img.extracted } : {}) });
  if (!result.images.some((i) => i.id === configDigest)) throw new LayerfsError('IO', 'internal: the new image was not loaded');
  return configDigest;
}
