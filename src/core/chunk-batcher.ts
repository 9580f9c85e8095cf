/**
 * Passes bytes on in chunks of at least `size` (the last one may be smaller). tar-stream
 * emits each 512-byte header and each small file as its own chunk; zlib, hashing and the
 * extractor all pay per chunk (zlib one thread-pool round trip each), which for a layer of
 * thousands of small files cost more than the compression itself.
 */
import { Transform, type TransformCallback } from 'node:stream';

export class ChunkBatcher extends Transform {
  private parts: Buffer[] = [];
  private bytes = 0;

  constructor(private readonly size = 64 * 1024) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.parts.push(chunk);
    this.bytes += chunk.length;
    if (this.bytes >= this.size) this.pushParts();
    cb();
  }

  override _flush(cb: TransformCallback): void {
    this.pushParts();
    cb();
  }

  private pushParts(): void {
    if (this.bytes === 0) return;
    this.push(this.parts.length === 1 ? this.parts[0] : Buffer.concat(this.parts, this.bytes));
    this.parts = [];
    this.bytes = 0;
  }
}
