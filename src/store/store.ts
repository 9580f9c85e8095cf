/**
 * The image store: one root folder laid out like Docker's overlay2 store (store-paths.ts),
 * with its parts — blobs, imagedb, layerdb, tags — and the lock that serialises changes.
 *
 * Lifecycle: `Store.open(root)` creates the folders and, if no other command holds the lock,
 * clears what an interrupted command left behind. Changes run inside `withLock`. Reads need
 * no lock: every change becomes visible through a single rename.
 *
 * For mounts: `resolveImage(ref)` then `layerDirs(id)` gives the overlay lowerdirs of an
 * image, bottom layer first.
 */
import { mkdir, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { shortId, type ChainId, type Digest, chainIds, parseDigest, isDigestString } from '../core/digest.js';
import { LayerfsError, hasErrnoCode } from '../core/errors.js';
import type { ImageConfig } from '../image/index.js';
import { parseReference } from '../image/index.js';
import { BlobStore } from './blob-store.js';
import { ImageDb } from './image-db.js';
import { LayerDb, type LayerRecord } from './layer-db.js';
import { acquireLock, tryLock } from './store-lock.js';
import { cleanupStore } from './store-cleanup.js';
import { tightenStore } from './store-permissions.js';
import { StorePaths, resolveRoot } from './store-paths.js';
import { TagStore } from './tag-store.js';

/** What `images` and `inspect` show about one image. */
export interface ImageSummary {
  id: Digest;
  tags: string[];
  created: string | undefined;
  /** Sum of the image's layer sizes (file content bytes). */
  size: number;
  config: ImageConfig;
  configBytes: Buffer;
  manifestDigest: Digest | undefined;
  layers: LayerRecord[];
}

/** Whether `p` is a directory; a store the caller may not enter is an error, not "no store". */
async function isDirectory(p: string, root: string): Promise<boolean> {
  try {
    return (await stat(p)).isDirectory();
  } catch (err) {
    if (hasErrnoCode(err, 'EACCES')) {
      throw new LayerfsError('IO', `cannot open the store at ${root}: permission denied (EACCES)`, { cause: err, hint: "a store is its owner's alone (mode 0700); use your own with --root DIR or LAYERFS_ROOT" });
    }
    return false;
  }
}

/** An open store root. */
export class Store {
  readonly blobs: BlobStore;
  readonly images: ImageDb;
  readonly layers: LayerDb;
  readonly tags: TagStore;
  /** Bytes this process's cleanups freed (leftovers of interrupted commands): `prune` reports them. */
  cleanedBytes = 0;

  private constructor(readonly paths: StorePaths) {
    this.blobs = new BlobStore(paths);
    this.images = new ImageDb(paths);
    this.layers = new LayerDb(paths);
    this.tags = new TagStore(paths);
  }

  /**
   * Opens the store at `root` (default: --root / LAYERFS_ROOT / /var/lib/layerfs), creating
   * it when `create` (the default). Without `create`, a root that holds no store is an
   * error: a mistyped --root must not quietly become a new, empty store.
   */
  static async open(root?: string, opts: { create?: boolean } = {}): Promise<Store> {
    const paths = new StorePaths(resolveRoot(root));
    if (opts.create === false && !(await isDirectory(paths.imagedb, paths.root))) {
      throw new LayerfsError('NOT_FOUND', `no layerfs store at ${paths.root}`, {
        hint: 'check --root or LAYERFS_ROOT; load, pull, import or build an image to create a store there',
      });
    }
    // Folders above the root keep the usual modes; the store's own are 0700 (store-permissions.ts).
    await mkdir(dirname(paths.root), { recursive: true }).catch(() => undefined);
    for (const d of [paths.root, paths.imageContentDir, paths.imageMetadataDir, paths.layerdbDir, paths.layersDir, paths.blobsDir, paths.tmpDir, paths.containersDir]) {
      try {
        await mkdir(d, { recursive: true, mode: 0o700 });
      } catch (err) {
        throw new LayerfsError('IO', `cannot create the store at ${paths.root}: ${(err as Error).message}`, { cause: err, hint: 'run as root, or choose another place with --root DIR or LAYERFS_ROOT' });
      }
    }
    await tightenStore(paths);
    const store = new Store(paths);
    const lock = await tryLock(paths.lockFile);
    if (lock) {
      try {
        store.cleanedBytes += (await cleanupStore(paths, store.layers)).bytes;
      } finally {
        await lock.release();
      }
    }
    return store;
  }

  /** Runs `fn` holding the store lock (after clearing leftovers of interrupted commands). */
  async withLock<T>(fn: () => Promise<T>, onWait?: (pid: number | undefined) => void): Promise<T> {
    const lock = await acquireLock(this.paths.lockFile, onWait ? { onWait } : {});
    try {
      this.cleanedBytes += (await cleanupStore(this.paths, this.layers)).bytes;
      return await fn();
    } finally {
      await lock.release();
    }
  }

  /**
   * Finds an image by tag (`debian`, `debian:12`), full or short id (`sha256:…`, `3f2a…`),
   * or `name@digest` (the manifest digest it was loaded with).
   */
  async resolveImage(ref: string): Promise<Digest> {
    const hex = ref.replace(/^sha256:/, '');
    if (/^[0-9a-f]{4,64}$/.test(hex)) {
      const ids = (await this.images.list()).filter((id) => id.slice(7).startsWith(hex));
      if (ids.length === 1) return ids[0]!;
      if (ids.length > 1) throw new LayerfsError('INVALID_ARGUMENT', `ambiguous image id ${ref}: matches ${ids.map(shortId).join(', ')}`);
      if (isDigestString(ref) || hex.length === 64) throw new LayerfsError('NOT_FOUND', `no such image: ${ref}`);
    }
    let parsed;
    try {
      parsed = parseReference(ref);
    } catch {
      throw new LayerfsError('NOT_FOUND', `no such image: ${ref}`);
    }
    if (parsed.digest !== undefined && parsed.tag === undefined) {
      for (const id of await this.images.list()) {
        if ((await this.images.getMeta(id, 'manifest')) === parsed.digest) return id;
      }
    }
    const id = await this.tags.resolve(parsed);
    if (!id) throw new LayerfsError('NOT_FOUND', `no such image: ${ref}`, { hint: 'see `layerfs images`' });
    return id;
  }

  /** The layers of an image, bottom first, as the layerdb has them. */
  async imageLayers(id: Digest, config?: ImageConfig): Promise<LayerRecord[]> {
    const cfg = config ?? (await this.images.config(id)).config;
    const out: LayerRecord[] = [];
    for (const chain of chainIds(cfg.rootfs.diff_ids)) {
      const rec = await this.layers.get(chain);
      if (!rec) {
        throw new LayerfsError('DAMAGED', `image ${shortId(id)}: layer ${chain} is missing from the store (no entry ${this.paths.layer(chain)})`, {
          hint: 'load the image again; `layerfs check` lists what else is affected',
        });
      }
      out.push(rec);
    }
    return out;
  }

  /** The extracted layer folders of an image (overlay lowerdirs), bottom first. */
  async layerDirs(id: Digest): Promise<string[]> {
    return (await this.imageLayers(id)).map((l) => this.paths.diff(l.cacheId));
  }

  /** Where the merged lower index of an image is cached; undefined for an image without layers. */
  async lowerIndexCache(id: Digest): Promise<string | undefined> {
    const top = (await this.imageLayers(id)).at(-1);
    return top === undefined ? undefined : this.paths.lowerIndex(top.chainId);
  }

  /** Everything `images`/`inspect` need about one image. */
  async summary(id: Digest): Promise<ImageSummary> {
    const { bytes, config } = await this.images.config(id);
    const layers = await this.imageLayers(id, config);
    const m = await this.images.getMeta(id, 'manifest');
    return {
      id,
      tags: await this.tags.tagsOf(id),
      created: config.created,
      size: layers.reduce((n, l) => n + l.size, 0),
      config,
      configBytes: bytes,
      manifestDigest: m ? parseDigest(m) : undefined,
      layers,
    };
  }
}
