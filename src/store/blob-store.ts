/**
 * Blobs by digest (compressed layers exactly as they came, manifests): the content store.
 * Writes go to a staging file under `blobs/`, are verified by the caller's streaming
 * verifier, then renamed to `blobs/sha256/<hex>`; an existing blob with the same name is the
 * same bytes, so finding one counts as done (containerd's ingest, reduced).
 */
import { listDigestNames } from './digest-names.js';
import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { finished } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import { parseDigest, type Digest } from '../core/digest.js';
import { hasErrnoCode } from '../core/errors.js';
import { writeFileAtomic } from './atomic.js';
import { stagingName, type StorePaths } from './store-paths.js';

/** An open ingest: write the bytes to `stream`, then `commit` under their digest or `abort`. */
export interface Ingest {
  stream: WriteStream;
  /** Renames the ingest into place; resolves false when the blob was already stored. */
  commit(digest: Digest): Promise<boolean>;
  abort(): Promise<void>;
}

/** The blob store of one store root. */
export class BlobStore {
  constructor(private readonly paths: StorePaths) {}

  /** True when the blob is present. */
  async has(d: Digest): Promise<boolean> {
    return (await this.size(d)) !== undefined;
  }

  /** Size of a blob, or undefined when absent. */
  async size(d: Digest): Promise<number | undefined> {
    try {
      return (await stat(this.paths.blob(d))).size;
    } catch (err) {
      if (hasErrnoCode(err, 'ENOENT')) return undefined;
      throw err;
    }
  }

  /** Reads a blob's bytes as a stream. */
  open(d: Digest): Readable {
    return createReadStream(this.paths.blob(d), { highWaterMark: 1024 * 1024 });
  }

  /** Stores small, already-verified bytes (manifests) under `d`. */
  async putBytes(d: Digest, bytes: Uint8Array): Promise<void> {
    if (await this.has(d)) return;
    await writeFileAtomic(this.paths.blob(d), bytes);
  }

  /** Starts an ingest; the caller verifies what it writes and then commits. */
  async ingest(): Promise<Ingest> {
    await mkdir(this.paths.blobsDir, { recursive: true });
    const tmp = `${this.paths.blobsStaging}/${stagingName()}`;
    const stream = createWriteStream(tmp, { flags: 'wx', mode: 0o644, highWaterMark: 1024 * 1024 });
    // Write errors are reported by commit(); after abort() they are expected and ignored.
    let failure: Error | undefined;
    stream.on('error', (e) => (failure ??= e));
    return {
      stream,
      commit: async (digest: Digest) => {
        if (failure) throw failure;
        if (!stream.writableFinished) {
          stream.end();
          await finished(stream);
        }
        const existed = await this.has(digest);
        await rename(tmp, this.paths.blob(digest));
        return !existed;
      },
      abort: async () => {
        stream.destroy();
        // The stream opens its file asynchronously: removing it before the stream has
        // closed can run before the open, which then leaves an empty staging file behind.
        if (!stream.closed) await new Promise<void>((resolve) => stream.once('close', () => resolve()));
        await rm(tmp, { force: true });
      },
    };
  }

  /** Removes a blob; returns the bytes freed. */
  async remove(d: Digest): Promise<number> {
    const size = (await this.size(d)) ?? 0;
    await rm(this.paths.blob(d), { force: true });
    return size;
  }

  /** All stored blob digests. */
  async list(): Promise<Digest[]> {
    return listDigestNames(this.paths.blobsDir, parseDigest);
  }
}
