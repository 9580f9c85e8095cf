/**
 * The verified read path of one layer blob, as a chain of streams:
 *
 *   raw blob bytes ─► BlobVerifier ─► Decompressor ─► DiffVerifier ─► (tar consumer)
 *                     sha256 + size    gzip|zstd|plain   sha256 + expansion limit
 *                     (+ copy to the blob ingest file)
 *
 * Compression is detected from magic bytes, never from the media type (skopeo labels
 * plain tars `+gzip`). Digest, size and diff_id are all checked while streaming; the
 * verifiers fail in `flush`, i.e. before the consumer sees the end of the stream, so a
 * layer that does not match never gets committed.
 */
import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback, type Writable } from 'node:stream';
import { createGunzip, type Gunzip } from 'node:zlib';
import { Decompress as ZstdDecompress } from 'fzstd';
import { LayerfsError } from '../core/errors.js';
import type { Digest } from '../core/digest.js';
import { ZstdFrameGuard } from './zstd-guard.js';

/** Compression of a blob, from its first bytes. */
export type Compression = 'gzip' | 'zstd' | 'none';

/** Detects gzip (1f 8b) and zstd (28 b5 2f fd) magic. */
export function detectCompression(head: Uint8Array): Compression {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.length >= 4 && head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd) return 'zstd';
  return 'none';
}

/** What a verifier measured. */
export interface Measured {
  digest: Digest;
  size: number;
}

/**
 * Hashes and counts the bytes passing through; fails when they exceed `expectedSize`
 * (as soon as they do) or when, at the end, size or digest differ from what was expected.
 * With `sink`, every chunk is also written there (respecting its backpressure).
 */
export class Verifier extends Transform {
  private readonly hash: Hash = createHash('sha256');
  private count = 0;
  /** Filled in when the stream has been fully verified. */
  measured: Measured | undefined;

  constructor(
    private readonly opts: {
      what: string;
      expectedDigest?: string;
      expectedSize?: number;
      /** Fails with LIMIT_EXCEEDED beyond this many bytes. */
      limit?: number;
      sink?: Writable;
    },
  ) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.count += chunk.length;
    const { expectedSize, limit, what } = this.opts;
    if (expectedSize !== undefined && this.count > expectedSize) {
      cb(new LayerfsError('DIGEST_MISMATCH', `${what}: more than the ${expectedSize} bytes its descriptor declares`));
      return;
    }
    if (limit !== undefined && this.count > limit) {
      cb(new LayerfsError('LIMIT_EXCEEDED', `${what}: expands past the ${limit}-byte limit`, {
        hint: 'a decompression bomb or a very large layer; raise --max-layer-size if the image is trusted',
      }));
      return;
    }
    this.hash.update(chunk);
    const sink = this.opts.sink;
    if (sink && !sink.write(chunk)) {
      // Wait for the sink, but never forever: a sink that fails or closes ends the wait.
      const done = (err?: Error | null): void => {
        sink.off('drain', onDrain);
        sink.off('error', onError);
        sink.off('close', onClose);
        if (err) cb(err);
        else cb(null, chunk);
      };
      const onDrain = (): void => done();
      const onError = (e: Error): void => done(e);
      const onClose = (): void => done(new Error(`${what}: the blob file closed while writing`));
      sink.once('drain', onDrain);
      sink.once('error', onError);
      sink.once('close', onClose);
      return;
    }
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    const digest = ('sha256:' + this.hash.digest('hex')) as Digest;
    const { expectedSize, expectedDigest, what } = this.opts;
    if (expectedSize !== undefined && this.count !== expectedSize) {
      cb(new LayerfsError('DIGEST_MISMATCH', `${what}: ${this.count} bytes, but its descriptor declares ${expectedSize}`, { hint: 'the archive is truncated or corrupt' }));
      return;
    }
    if (expectedDigest !== undefined && digest !== expectedDigest) {
      cb(new LayerfsError('DIGEST_MISMATCH', `${what}: digest mismatch: expected ${expectedDigest}, got ${digest}`, { hint: 'the archive is corrupt or was tampered with' }));
      return;
    }
    this.measured = { digest, size: this.count };
    cb();
  }
}

/** Decompresses gzip or zstd (detected from magic bytes) or passes plain bytes through. */
export class Decompressor extends Transform {
  compression: Compression | undefined;
  private head: Buffer[] = [];
  private headLen = 0;
  private gunzip: Gunzip | undefined;
  private zstd: ZstdDecompress | undefined;
  private guard: ZstdFrameGuard | undefined;
  private failed: Error | undefined;
  private wantRead: (() => void) | undefined;

  constructor(private readonly what: string, private readonly maxZstdWindow: number) {
    super();
  }

  /** Push with backpressure: pause the inner decoder when the consumer is behind. */
  private emit_(d: Buffer): void {
    if (!this.push(d)) this.gunzip?.pause();
  }

  override _read(size: number): void {
    this.gunzip?.resume();
    const w = this.wantRead;
    this.wantRead = undefined;
    w?.();
    super._read(size);
  }

  /** Resolves when the consumer has drained our readable side below its high-water mark. */
  private async drained(): Promise<void> {
    while (this.readableLength >= this.readableHighWaterMark && !this.destroyed) {
      await new Promise<void>((resolve) => {
        this.wantRead = resolve;
      });
    }
  }

  private corrupt(kind: string, err: unknown): LayerfsError {
    const msg = err instanceof Error ? err.message : String(err);
    return new LayerfsError('INVALID_IMAGE', `${this.what}: corrupt ${kind} stream (${msg})`, { cause: err, hint: 'the archive is truncated or corrupt' });
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (this.compression === undefined) {
      this.head.push(chunk);
      this.headLen += chunk.length;
      if (this.headLen < 4) {
        cb();
        return;
      }
      this.start(Buffer.concat(this.head));
      chunk = Buffer.concat(this.head);
      this.head = [];
    }
    this.feed(chunk, cb);
  }

  private start(head: Buffer): void {
    this.compression = detectCompression(head);
    if (this.compression === 'gzip') {
      const g = createGunzip({ chunkSize: 256 * 1024 });
      g.on('data', (d: Buffer) => this.emit_(d));
      g.on('error', (e) => {
        this.failed = this.corrupt('gzip', e);
        this.destroy(this.failed);
      });
      this.gunzip = g;
    } else if (this.compression === 'zstd') {
      this.guard = new ZstdFrameGuard(this.maxZstdWindow, this.what);
      // fzstd hands out views of its window buffer, which it reuses: copy them.
      this.zstd = new ZstdDecompress((data) => {
        if (data.length) this.push(Buffer.from(data));
      });
    }
  }

  private feed(chunk: Buffer, cb: TransformCallback): void {
    if (this.gunzip) {
      this.gunzip.write(chunk, () => cb(this.failed));
    } else if (this.zstd) {
      this.feedZstd(chunk).then(() => cb(), (e: unknown) => cb(e instanceof LayerfsError ? e : this.corrupt('zstd', e)));
    } else {
      cb(null, chunk);
    }
  }

  /**
   * fzstd decodes synchronously and cannot pause mid-push, and a few bytes of RLE blocks
   * expand to megabytes: feed it small slices and wait for the consumer between them, so
   * memory stays bounded however the stream expands.
   */
  private async feedZstd(chunk: Buffer): Promise<void> {
    this.guard!.push(chunk);
    const SLICE = 1024;
    for (let off = 0; off < chunk.length; off += SLICE) {
      this.zstd!.push(chunk.subarray(off, off + SLICE));
      await this.drained();
    }
  }

  override _flush(cb: TransformCallback): void {
    if (this.compression === undefined) {
      // Fewer than 4 bytes in all: only a (tiny, invalid) plain stream can be that short.
      this.compression = detectCompression(Buffer.concat(this.head));
      if (this.compression !== 'none') {
        cb(this.corrupt(this.compression, new Error('unexpected end of stream')));
        return;
      }
      cb(null, Buffer.concat(this.head));
      return;
    }
    if (this.gunzip) {
      const g = this.gunzip;
      g.once('end', () => cb(this.failed));
      g.end();
      g.resume();
    } else if (this.zstd) {
      try {
        this.zstd.push(new Uint8Array(0), true);
      } catch (e) {
        cb(this.corrupt('zstd', e));
        return;
      }
      cb();
    } else {
      cb();
    }
  }
}
