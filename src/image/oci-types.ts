/**
 * The JSON documents of an image — descriptor, manifest, index, config — as types plus
 * validating parsers. Docker and OCI media types are interchangeable (image-formats.md);
 * a manifest is told from an index by its keys when `mediaType` is missing (umoci omits it).
 * Parsers throw INVALID_IMAGE with the document and the field that is wrong.
 */
import { LayerfsError } from '../core/errors.js';
import { parseDiffId, parseDigest, type DiffId, type Digest } from '../core/digest.js';

/** Media types layerfs reads and writes. */
export const MediaType = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayer: 'application/vnd.docker.image.rootfs.diff.tar',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
} as const;

/**
 * The PATH a container gets when neither its image nor `-e` sets one, and the one an empty
 * image (`FROM scratch`) starts with: Docker's and BuildKit's. Image-config vocabulary,
 * so the builder reads it without loading the sandbox.
 */
export const DEFAULT_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** Platform of a manifest in an index. */
export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

/** A content descriptor (OCI image spec, descriptor.md). */
export interface Descriptor {
  mediaType: string;
  digest: Digest;
  size: number;
  platform?: Platform;
  annotations?: Record<string, string>;
}

/** An image manifest: one config and its layers, bottom first. */
export interface Manifest {
  mediaType?: string;
  config: Descriptor;
  layers: Descriptor[];
}

/** An image index (or Docker manifest list). */
export interface Index {
  mediaType?: string;
  manifests: Descriptor[];
}

/** One entry of the config's `history`. */
export interface HistoryEntry {
  created?: string;
  created_by?: string;
  author?: string;
  comment?: string;
  empty_layer?: boolean;
}

/** The parts of an image config layerfs uses; the exact bytes are kept separately. */
export interface ImageConfig {
  architecture: string;
  os: string;
  variant?: string;
  created?: string;
  author?: string;
  config?: Record<string, unknown>;
  rootfs: { type: 'layers'; diff_ids: DiffId[] };
  history?: HistoryEntry[];
}

function bad(doc: string, why: string): LayerfsError {
  return new LayerfsError('INVALID_IMAGE', `invalid ${doc}: ${why}`);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Parses JSON bytes into an object, with a one-line error naming the document. */
export function parseJsonObject(bytes: Uint8Array | string, doc: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(typeof bytes === 'string' ? bytes : Buffer.from(bytes).toString('utf8'));
  } catch (err) {
    throw new LayerfsError('INVALID_IMAGE', `invalid ${doc}: not valid JSON (${(err as Error).message})`, { cause: err });
  }
  if (!isObject(v)) throw bad(doc, 'expected a JSON object');
  return v;
}

/** Validates a descriptor object (digest form, non-negative integer size). */
export function parseDescriptor(v: unknown, doc: string): Descriptor {
  if (!isObject(v)) throw bad(doc, 'descriptor is not an object');
  if (typeof v.mediaType !== 'string') throw bad(doc, 'descriptor lacks "mediaType"');
  let digest: Digest;
  try {
    digest = parseDigest(v.digest);
  } catch (err) {
    throw bad(doc, `descriptor digest: ${(err as Error).message}`);
  }
  const size = v.size;
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) {
    throw bad(doc, `descriptor ${digest} has size ${JSON.stringify(size)}; expected a non-negative integer`);
  }
  const d: Descriptor = { mediaType: v.mediaType, digest, size };
  if (isObject(v.platform)) {
    const p = v.platform;
    if (typeof p.os === 'string' && typeof p.architecture === 'string') {
      d.platform = { os: p.os, architecture: p.architecture };
      if (typeof p.variant === 'string') d.platform.variant = p.variant;
    }
  }
  if (isObject(v.annotations)) {
    d.annotations = Object.fromEntries(Object.entries(v.annotations).filter(([, x]) => typeof x === 'string')) as Record<string, string>;
  }
  return d;
}

/** True when a manifest-or-index document is an index (by media type, else by keys). */
export function isIndexDocument(obj: Record<string, unknown>, descriptorMediaType?: string): boolean {
  const mt = typeof obj.mediaType === 'string' ? obj.mediaType : descriptorMediaType;
  if (mt === MediaType.ociIndex || mt === MediaType.dockerList) return true;
  if (mt === MediaType.ociManifest || mt === MediaType.dockerManifest) return false;
  return Array.isArray(obj.manifests) && !('layers' in obj);
}

/** Parses and validates an image manifest. */
export function parseManifest(bytes: Uint8Array, doc = 'manifest'): Manifest {
  const obj = parseJsonObject(bytes, doc);
  if (obj.schemaVersion !== undefined && obj.schemaVersion !== 2) throw bad(doc, `unsupported schemaVersion ${JSON.stringify(obj.schemaVersion)}`);
  if (!('config' in obj)) throw bad(doc, 'lacks "config"');
  if (!Array.isArray(obj.layers)) throw bad(doc, 'lacks "layers"');
  const m: Manifest = {
    config: parseDescriptor(obj.config, `${doc} config`),
    layers: obj.layers.map((l, i) => parseDescriptor(l, `${doc} layer ${i}`)),
  };
  if (typeof obj.mediaType === 'string') m.mediaType = obj.mediaType;
  return m;
}

/** Parses and validates an image index / manifest list. */
export function parseIndex(bytes: Uint8Array, doc = 'index'): Index {
  const obj = parseJsonObject(bytes, doc);
  if (!Array.isArray(obj.manifests)) throw bad(doc, 'lacks "manifests"');
  const idx: Index = { manifests: obj.manifests.map((m, i) => parseDescriptor(m, `${doc} entry ${i}`)) };
  if (typeof obj.mediaType === 'string') idx.mediaType = obj.mediaType;
  return idx;
}

/** Parses and validates an image config (the fields layerfs depends on). */
export function parseImageConfig(bytes: Uint8Array, doc = 'image config'): ImageConfig {
  const obj = parseJsonObject(bytes, doc);
  if (typeof obj.architecture !== 'string') throw bad(doc, 'lacks "architecture"');
  if (typeof obj.os !== 'string') throw bad(doc, 'lacks "os"');
  const rootfs = obj.rootfs;
  if (!isObject(rootfs) || rootfs.type !== 'layers' || !Array.isArray(rootfs.diff_ids)) {
    throw bad(doc, 'lacks "rootfs" with type "layers" and "diff_ids"');
  }
  const diffIds = rootfs.diff_ids.map((d) => {
    try {
      return parseDiffId(d);
    } catch (err) {
      throw bad(doc, (err as Error).message);
    }
  });
  const cfg: ImageConfig = { architecture: obj.architecture, os: obj.os, rootfs: { type: 'layers', diff_ids: diffIds } };
  if (typeof obj.variant === 'string') cfg.variant = obj.variant;
  if (typeof obj.created === 'string') cfg.created = obj.created;
  if (typeof obj.author === 'string') cfg.author = obj.author;
  if (isObject(obj.config)) cfg.config = obj.config;
  if (Array.isArray(obj.history)) cfg.history = obj.history.filter(isObject) as HistoryEntry[];
  return cfg;
}
