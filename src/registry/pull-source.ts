/**
 * A pulled image seen as an OCI image layout, so `pull` hands it to the very loader `load`
 * uses (store/image-loader.ts) and a pulled image is byte for byte what `load` of the same
 * image stores. The layout is virtual: `oci-layout`, `index.json` and the manifest and
 * config blobs are the verified bytes in memory; layer blobs are files already verified —
 * in the download folder, or in the store itself for layers the store already has.
 */
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { digestHex, type Digest } from '../core/digest.js';
import { LayerfsError, hasErrnoCode } from '../core/errors.js';
import type { ArchiveSource } from '../image/index.js';

/** What the virtual layout contains. */
export interface PullSourceParts {
  name: string;
  manifest: { bytes: Buffer; digest: Digest; mediaType: string };
  config: { bytes: Buffer; digest: Digest };
  /** Layer blob digest → file holding its verified bytes. */
  layerFiles: Map<Digest, string>;
  /**
   * Where the store keeps a blob: the fallback when a download file is gone because a
   * concurrent pull of the same blob imported it and cleared the download.
   */
  storeBlob: (d: Digest) => string;
  /** Full reference to tag the image with (`host/repo:tag`), if any. */
  tag?: string;
}

/** An ArchiveSource over a pull's verified pieces. */
export class PullSource implements ArchiveSource {
  private readonly memory = new Map<string, Buffer>();
  private readonly files = new Map<string, string[]>();

  constructor(private readonly parts: PullSourceParts) {
    const blob = (d: Digest): string => `blobs/sha256/${digestHex(d)}`;
    const entry: Record<string, unknown> = { mediaType: parts.manifest.mediaType, digest: parts.manifest.digest, size: parts.manifest.bytes.length };
    if (parts.tag) entry.annotations = { 'io.containerd.image.name': parts.tag };
    this.memory.set('oci-layout', Buffer.from(JSON.stringify({ imageLayoutVersion: '1.0.0' })));
    this.memory.set('index.json', Buffer.from(JSON.stringify({ schemaVersion: 2, manifests: [entry] })));
    this.memory.set(blob(parts.manifest.digest), parts.manifest.bytes);
    this.memory.set(blob(parts.config.digest), parts.config.bytes);
    for (const [d, f] of parts.layerFiles) this.files.set(blob(d), [f, parts.storeBlob(d)]);
  }

  get name(): string {
    return this.parts.name;
  }

  /** The first candidate file of a layer blob that exists, with its size. */
  private async locate(path: string): Promise<{ file: string; size: number } | undefined> {
    for (const f of this.files.get(path) ?? []) {
      try {
        return { file: f, size: (await stat(f)).size };
      } catch (err) {
        if (!hasErrnoCode(err, 'ENOENT')) throw err;
      }
    }
    return undefined;
  }

  async size(path: string): Promise<number | undefined> {
    const m = this.memory.get(path);
    if (m) return m.length;
    return (await this.locate(path))?.size;
  }

  async read(path: string, maxSize: number): Promise<Buffer> {
    const m = this.memory.get(path);
    const found = m ? undefined : await this.locate(path);
    if (!m && !found) throw new LayerfsError('INVALID_IMAGE', `${this.name}: missing ${path}`);
    if ((m?.length ?? found!.size) > maxSize) throw new LayerfsError('LIMIT_EXCEEDED', `${this.name}: ${path} is larger than ${maxSize} bytes`);
    return m ?? readFile(found!.file);
  }

  async stream(path: string): Promise<Readable> {
    const m = this.memory.get(path);
    if (m) return Readable.from([m]);
    const found = await this.locate(path);
    if (!found) throw new LayerfsError('INVALID_IMAGE', `${this.name}: missing ${path}`);
    return createReadStream(found.file, { highWaterMark: 1024 * 1024 });
  }

  async close(): Promise<void> {}
}
