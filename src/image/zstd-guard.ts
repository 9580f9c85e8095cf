/**
 * Walks the frame and block structure of a zstd stream *without decompressing it*, to
 * refuse a frame that declares a window larger than the limit before the decoder
 * allocates that window (fzstd allocates the whole declared window up front, up to 2 GiB).
 * Each frame header is checked; block headers (3 bytes: last flag, type, size) and
 * skippable frames (explicit length) are used only to find the next frame.
 * Format: RFC 8878 §3.1.
 */
import { LayerfsError } from '../core/errors.js';

const ZSTD_MAGIC = 0xfd2fb528;

/** Incremental zstd frame-structure checker; `push` throws on an oversized window. */
export class ZstdFrameGuard {
  private buf: Buffer = Buffer.alloc(0);
  /** Bytes still to skip before the next structure starts. */
  private skip = 0;
  private state: 'frame' | 'block' = 'frame';
  private checksum = false;

  constructor(private readonly maxWindow: number, private readonly what: string) {}

  /** Feeds the next compressed chunk. */
  push(chunk: Buffer): void {
    let data = chunk;
    if (this.skip > 0) {
      const n = Math.min(this.skip, data.length);
      this.skip -= n;
      data = data.subarray(n);
      if (data.length === 0) return;
    }
    this.buf = this.buf.length ? Buffer.concat([this.buf, data]) : data;
    for (;;) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, this.buf.length);
        this.skip -= n;
        this.buf = this.buf.subarray(n);
        if (this.skip > 0) return;
      }
      const used = this.state === 'frame' ? this.frameHeader() : this.blockHeader();
      if (used === 0) return; // need more bytes
      this.buf = this.buf.subarray(used);
    }
  }

  private frameHeader(): number {
    const b = this.buf;
    if (b.length < 4) return 0;
    const magic = b.readUInt32LE(0);
    if ((magic & 0xfffffff0) >>> 0 === 0x184d2a50) {
      if (b.length < 8) return 0;
      this.skip = b.readUInt32LE(4);
      return 8;
    }
    if (magic !== ZSTD_MAGIC) throw new LayerfsError('INVALID_IMAGE', `${this.what}: corrupt zstd stream (bad frame magic)`);
    if (b.length < 5) return 0;
    const fhd = b[4]!;
    const fcsFlag = fhd >> 6;
    const single = (fhd >> 5) & 1;
    const dictFlag = fhd & 3;
    this.checksum = ((fhd >> 2) & 1) === 1;
    const fcsBytes = fcsFlag === 0 ? single : 1 << fcsFlag;
    const dictBytes = dictFlag === 3 ? 4 : dictFlag;
    const headerLen = 5 + (single ? 0 : 1) + dictBytes + fcsBytes;
    if (b.length < headerLen) return 0;
    let window: number;
    if (!single) {
      const wd = b[5]!;
      const base = 2 ** (10 + (wd >> 3));
      window = base + (base / 8) * (wd & 7);
    } else {
      const off = 5 + dictBytes;
      let fcs = 0;
      for (let i = fcsBytes - 1; i >= 0; i--) fcs = fcs * 256 + b[off + i]!;
      if (fcsBytes === 2) fcs += 256;
      window = fcs;
    }
    if (window > this.maxWindow) {
      throw new LayerfsError('LIMIT_EXCEEDED', `${this.what}: zstd frame declares a ${window}-byte window, over the ${this.maxWindow}-byte limit`, {
        hint: 'such a frame makes the decoder allocate that much memory; recompress with a smaller window',
      });
    }
    this.state = 'block';
    return headerLen;
  }

  private blockHeader(): number {
    const b = this.buf;
    if (b.length < 3) return 0;
    const h = b[0]! | (b[1]! << 8) | (b[2]! << 16);
    const last = h & 1;
    const type = (h >> 1) & 3;
    const size = h >>> 3;
    if (type === 3) throw new LayerfsError('INVALID_IMAGE', `${this.what}: corrupt zstd stream (reserved block type)`);
    this.skip = type === 1 ? 1 : size; // RLE blocks carry one byte
    if (last) {
      this.state = 'frame';
      if (this.checksum) this.skip += 4;
    }
    return 3;
  }
}
