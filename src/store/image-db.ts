/**
 * The image database: `image/imagedb/content/sha256/<id>` holds the image config, exactly
 * the bytes whose sha256 is the image id (immutable content), and
 * `image/imagedb/metadata/sha256/<id>/` the mutable facts about it (`manifest`: digest of
 * the manifest it was loaded with; `lastUpdated`). Content and metadata are kept apart as
 * moby does: the content can be verified at any time, the metadata can change.
 */
import { listDigestNames } from './digest-names.js';
import { readFile, readdir, rename, rm } from 'node:fs/promises';
import { digestOf, parseDigest, type Digest } from '../core/digest.js';
import { LayerfsError, hasErrnoCode } from '../core/errors.js';
import { parseImageConfig, type ImageConfig } from '../image/index.js';
import { writeFileAtomic } from './atomic.js';
import { stagingName, type StorePaths } from './store-paths.js';

/** Access to `image/imagedb`. */
export class ImageDb {
  constructor(private readonly paths: StorePaths) {}

  /** The config bytes of an image, or undefined when it is not stored. */
  async configBytes(id: Digest): Promise<Buffer | undefined> {
    try {
      return await readFile(this.paths.imageConfig(id));
    } catch (err) {
      if (hasErrnoCode(err, 'ENOENT')) return undefined;
      throw err;
    }
  }

  /** The parsed config of a stored image, verified against its id. */
  async config(id: Digest): Promise<{ bytes: Buffer; config: ImageConfig }> {
    const bytes = await this.configBytes(id);
    if (!bytes) throw new LayerfsError('NOT_FOUND', `no such image: ${id}`);
    if (digestOf(bytes) !== id) throw new LayerfsError('DIGEST_MISMATCH', `image ${id}: stored config does not match its id`, { hint: 'the store is damaged; rmi and load the image again' });
    return { bytes, config: parseImageConfig(bytes, `image config ${id}`) };
  }

  /** Stores config bytes (whose digest the caller verified) under their id. */
  async put(id: Digest, bytes: Uint8Array): Promise<void> {
    await writeFileAtomic(this.paths.imageConfig(id), bytes);
  }

  /** Reads one metadata value. */
  async getMeta(id: Digest, key: string): Promise<string | undefined> {
    try {
      return (await readFile(`${this.paths.imageMetadata(id)}/${key}`, 'utf8')).trim();
    } catch (err) {
      if (hasErrnoCode(err, 'ENOENT')) return undefined;
      throw err;
    }
  }

  /** Writes one metadata value. */
  async setMeta(id: Digest, key: string, value: string): Promise<void> {
    await writeFileAtomic(`${this.paths.imageMetadata(id)}/${key}`, value);
  }

  /** All image ids. */
  async list(): Promise<Digest[]> {
    return listDigestNames(this.paths.imageContentDir, parseDigest);
  }

  /** Removes an image's config (first: that is what makes it exist) and metadata. */
  async remove(id: Digest): Promise<void> {
    await rm(this.paths.imageConfig(id), { force: true });
    const gone = `${this.paths.imagedb}/${stagingName()}`;
    await rename(this.paths.imageMetadata(id), gone).catch(() => {});
    await rm(gone, { recursive: true, force: true });
  }
}
