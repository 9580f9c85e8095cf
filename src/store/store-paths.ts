/**
 * Where everything lives under a store root — Docker's overlay2 layout, so a reader of
 * Docker's docs recognises every folder:
 *
 *   <root>/image/imagedb/content/sha256/<image-id>        exact config bytes (id = their sha256)
 *   <root>/image/imagedb/metadata/sha256/<image-id>/      manifest (digest), lastUpdated
 *   <root>/image/layerdb/sha256/<chain-id>/               diff, size, cache-id, parent
 *   <root>/image/layerdb/sha256/<chain-id>/lower-index    merged index of the chain ending here
 *   <root>/image/repositories.json                        tags
 *   <root>/layers/<cache-id>/diff/                        extracted layer (overlayfs format)
 *   <root>/blobs/sha256/<digest>                          compressed layer blobs and manifests
 *   <root>/containers/<id>/                               owned by the supervisor
 *   <root>/tmp/                                           staging; cleared by the next command
 *   <root>/lock                                           the store lock (pid inside)
 *
 * Staging names (`tmp-<pid>-<random>`) sit next to their final place so each commit is a
 * rename within one filesystem.
 */
import { randomBytes } from 'node:crypto';
import { digestHex, type ChainId, type Digest } from '../core/digest.js';
import { defaultStoreRoot } from '../core/user-dirs.js';

/**
 * The root from `--root`, else `LAYERFS_ROOT`, else the default: /var/lib/layerfs for
 * root, $XDG_DATA_HOME/layerfs for anyone else (core/user-dirs.ts).
 */
export function resolveRoot(option?: string): string {
  return option ?? process.env.LAYERFS_ROOT ?? defaultStoreRoot();
}

/** A staging name: `tmp-<pid>-<random>` (the pid lets cleanup skip live owners). */
export function stagingName(): string {
  return `tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
}

/**
 * A staging folder in the layers directory written *without* the store lock (a commit's
 * new layer cache, extracted while the layer is written): the cleanup under the lock,
 * which removes every other staging name there, removes these only once their writer is gone.
 */
export function unlockedStagingName(): string {
  return `commit-${stagingName()}`;
}

/** Path computations for one store root. */
export class StorePaths {
  constructor(readonly root: string) {}
  get imagedb(): string {
    return `${this.root}/image/imagedb`;
  }
  get imageContentDir(): string {
    return `${this.imagedb}/content/sha256`;
  }
  get imageMetadataDir(): string {
    return `${this.imagedb}/metadata/sha256`;
  }
  get layerdbDir(): string {
    return `${this.root}/image/layerdb/sha256`;
  }
  get layerdbStaging(): string {
    return `${this.root}/image/layerdb`;
  }
  get repositories(): string {
    return `${this.root}/image/repositories.json`;
  }
  get layersDir(): string {
    return `${this.root}/layers`;
  }
  get blobsDir(): string {
    return `${this.root}/blobs/sha256`;
  }
  get blobsStaging(): string {
    return `${this.root}/blobs`;
  }
  get containersDir(): string {
    return `${this.root}/containers`;
  }
  get tmpDir(): string {
    return `${this.root}/tmp`;
  }
  get lockFile(): string {
    return `${this.root}/lock`;
  }
  imageConfig(id: Digest): string {
    return `${this.imageContentDir}/${digestHex(id)}`;
  }
  imageMetadata(id: Digest): string {
    return `${this.imageMetadataDir}/${digestHex(id)}`;
  }
  layer(chain: ChainId): string {
    return `${this.layerdbDir}/${digestHex(chain)}`;
  }
  /**
   * The cached merged index (union/lower-index-cache.ts) of the layer chain that ends at
   * `chain`: a chain ID names every layer below it, and layer caches never change after
   * import, so the file stays valid for as long as the layerdb entry exists (it goes with it).
   */
  lowerIndex(chain: ChainId): string {
    return `${this.layer(chain)}/lower-index`;
  }
  cache(cacheId: string): string {
    return `${this.layersDir}/${cacheId}`;
  }
  /** The directory to use as an overlay lowerdir for a layer cache. */
  diff(cacheId: string): string {
    return `${this.layersDir}/${cacheId}/diff`;
  }
  blob(d: Digest): string {
    return `${this.blobsDir}/${digestHex(d)}`;
  }
}
