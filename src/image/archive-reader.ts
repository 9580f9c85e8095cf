/**
 * Reads what to load from an archive: docker-archive (classic `manifest.json`, or Docker 25's
 * OCI layout with a `manifest.json` beside it) and OCI image layouts (directory or tar).
 * Returns one `ImageToLoad` per image; layer bytes are not read here (see store/image-loader).
 *
 * An OCI `index.json` is preferred when present, because it carries the manifests as exact
 * bytes (so the loaded image keeps its manifest and layer digests). Indexes may nest (Docker
 * exports index → index → index → manifest); each top-level entry is one image, and inside a
 * nested index one manifest is chosen for the platform.
 */
import { LayerfsError } from '../core/errors.js';
import { digestHex, digestOf, type Digest } from '../core/digest.js';
import type { ArchiveSource } from './archive-source.js';
import { type Descriptor, type ImageConfig, type Platform, isIndexDocument, parseImageConfig, parseIndex, parseJsonObject, parseManifest } from './oci-types.js';
import { formatPlatform, platformMatches, selectForPlatform } from './platform.js';
import type { LoadLimits } from './limits.js';
import { fullString, parseReference } from './reference.js';

/** One layer of an image to load. */
export interface LayerToLoad {
  /** Path of the blob inside the archive. */
  path: string;
  /** Known for OCI manifests; for a classic docker-archive the digest is measured on load. */
  descriptor?: Descriptor;
}

/** One image found in an archive. */
export interface ImageToLoad {
  config: ImageConfig;
  configBytes: Buffer;
  configDigest: Digest;
  /** Exact manifest bytes when the archive has them (OCI layouts). */
  manifestBytes?: Buffer;
  manifestDigest?: Digest;
  manifestMediaType?: string;
  layers: LayerToLoad[];
  /** Fully qualified references to tag the image with. */
  names: string[];
}

/** How to read an archive. */
export interface ReadOptions {
  platform: Platform;
  limits: LoadLimits;
  /** Repository for OCI entries whose `ref.name` is a bare tag (e.g. umoci's "latest"). */
  repository?: string;
}

const MAX_DEPTH = 8;

function blobPath(d: Descriptor): string {
  return `blobs/${d.digest.slice(0, d.digest.indexOf(':'))}/${digestHex(d.digest)}`;
}

async function readBlob(src: ArchiveSource, d: Descriptor, what: string, limits: LoadLimits): Promise<Buffer> {
  if (d.size > limits.maxJsonSize) throw new LayerfsError('LIMIT_EXCEEDED', `${what} ${d.digest} declares ${d.size} bytes, over the ${limits.maxJsonSize}-byte limit`);
  const bytes = await src.read(blobPath(d), limits.maxJsonSize);
  if (bytes.length !== d.size) throw new LayerfsError('DIGEST_MISMATCH', `${what} ${d.digest}: ${bytes.length} bytes, but its descriptor declares ${d.size}`);
  const got = digestOf(bytes);
  if (got !== d.digest) throw new LayerfsError('DIGEST_MISMATCH', `${what}: digest mismatch: expected ${d.digest}, got ${got}`);
  return bytes;
}

function refName(ann: Record<string, string> | undefined, repository: string | undefined): string | undefined {
  const full = ann?.['io.containerd.image.name'];
  const ref = ann?.['org.opencontainers.image.ref.name'];
  for (const cand of [full, ref]) {
    if (cand === undefined) continue;
    if (cand.includes('/') || cand.includes(':') || cand.includes('@')) {
      try {
        return fullString(parseReference(cand));
      } catch {
        /* not a reference: try the next form */
      }
    }
  }
  if (ref !== undefined && repository !== undefined) {
    try {
      return fullString(parseReference(`${repository}:${ref}`));
    } catch {
      return undefined;
    }
  }
  return undefined;
}

async function imageFromManifest(src: ArchiveSource, d: Descriptor, opts: ReadOptions): Promise<ImageToLoad> {
  const manifestBytes = await readBlob(src, d, 'manifest', opts.limits);
  const manifest = parseManifest(manifestBytes, `manifest ${d.digest}`);
  const configBytes = await readBlob(src, manifest.config, 'image config', opts.limits);
  const config = parseImageConfig(configBytes, `image config ${manifest.config.digest}`);
  checkLayers(config, manifest.layers.length, opts.limits);
  const img: ImageToLoad = {
    config,
    configBytes,
    configDigest: manifest.config.digest,
    manifestBytes,
    manifestDigest: d.digest,
    layers: manifest.layers.map((l) => ({ path: blobPath(l), descriptor: l })),
    names: [],
  };
  const mt = manifest.mediaType ?? d.mediaType;
  if (mt) img.manifestMediaType = mt;
  return img;
}

function checkLayers(config: ImageConfig, layers: number, limits: LoadLimits): void {
  const n = config.rootfs.diff_ids.length;
  if (n !== layers) throw new LayerfsError('INVALID_IMAGE', `image has ${layers} layer blobs but its config lists ${n} diff_ids`);
  if (n > limits.maxLayers) {
    throw new LayerfsError('LIMIT_EXCEEDED', `image has ${n} layers; the store supports at most ${limits.maxLayers}`, { hint: 'squash the image into fewer layers' });
  }
}

/** Resolves a descriptor (manifest or index) to the manifest for the platform, or undefined. */
async function resolve(src: ArchiveSource, d: Descriptor, opts: ReadOptions, depth: number, seen: string[]): Promise<Descriptor | undefined> {
  if (depth > MAX_DEPTH) throw new LayerfsError('INVALID_IMAGE', `indexes nested more than ${MAX_DEPTH} deep`);
  const bytes = await readBlob(src, d, 'index or manifest', opts.limits);
  const obj = parseJsonObject(bytes, `manifest ${d.digest}`);
  if (!isIndexDocument(obj, d.mediaType)) return d;
  const idx = parseIndex(bytes, `index ${d.digest}`);
  const candidates = selectForPlatform(idx.manifests, opts.platform);
  // Prefer an exact platform (incl. variant) match, then any match, then platform-less entries.
  const exact = candidates.filter((c) => c.platform && c.platform.variant === opts.platform.variant);
  const ordered = [...exact, ...candidates.filter((c) => c.platform && !exact.includes(c)), ...candidates.filter((c) => !c.platform)];
  for (const c of ordered) {
    const m = await resolve(src, c, opts, depth + 1, seen);
    if (m) return m;
  }
  for (const m of idx.manifests) if (m.platform) seen.push(formatPlatform(m.platform));
  return undefined;
}

async function readOciLayout(src: ArchiveSource, opts: ReadOptions): Promise<ImageToLoad[]> {
  const layout = await src.size('oci-layout');
  if (layout !== undefined) {
    const obj = parseJsonObject(await src.read('oci-layout', 4096), 'oci-layout');
    if (typeof obj.imageLayoutVersion !== 'string') throw new LayerfsError('INVALID_IMAGE', 'invalid oci-layout: lacks "imageLayoutVersion"');
  }
  const indexBytes = await src.read('index.json', opts.limits.maxJsonSize);
  const index = parseIndex(indexBytes, 'index.json');
  const tags = await dockerRepoTags(src, opts);
  const byManifest = new Map<string, ImageToLoad>();
  const seen: string[] = [];
  for (const entry of index.manifests) {
    if (entry.platform && !platformMatches(opts.platform, entry.platform)) {
      seen.push(formatPlatform(entry.platform));
      continue;
    }
    const md = await resolve(src, entry, opts, 0, seen);
    if (!md) continue;
    let img = byManifest.get(md.digest);
    if (!img) {
      img = await imageFromManifest(src, md, opts);
      byManifest.set(md.digest, img);
    }
    const name = refName(entry.annotations, opts.repository);
    if (name && !img.names.includes(name)) img.names.push(name);
    for (const t of tags.get(img.configDigest) ?? []) if (!img.names.includes(t)) img.names.push(t);
  }
  if (byManifest.size === 0) {
    const avail = [...new Set(seen)].join(', ') || 'none';
    throw new LayerfsError('NOT_FOUND', `no image for platform ${formatPlatform(opts.platform)} in ${src.name} (available: ${avail})`, { hint: 'choose one with --platform os/arch[/variant]' });
  }
  return [...byManifest.values()];
}

interface DockerEntry {
  Config: string;
  RepoTags: string[];
  Layers: string[];
}

async function readDockerManifest(src: ArchiveSource, opts: ReadOptions): Promise<DockerEntry[]> {
  const bytes = await src.read('manifest.json', opts.limits.maxJsonSize);
  let v: unknown;
  try {
    v = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new LayerfsError('INVALID_IMAGE', `invalid manifest.json: not valid JSON (${(err as Error).message})`);
  }
  if (!Array.isArray(v)) throw new LayerfsError('INVALID_IMAGE', 'invalid manifest.json: expected a JSON array');
  return v.map((e: unknown, i) => {
    const o = e as Record<string, unknown>;
    if (typeof o !== 'object' || o === null || typeof o.Config !== 'string' || !Array.isArray(o.Layers) || !o.Layers.every((l) => typeof l === 'string')) {
      throw new LayerfsError('INVALID_IMAGE', `invalid manifest.json entry ${i}: needs "Config" and "Layers"`);
    }
    const tags = Array.isArray(o.RepoTags) ? o.RepoTags.filter((t): t is string => typeof t === 'string') : [];
    return { Config: o.Config, RepoTags: tags, Layers: o.Layers as string[] };
  });
}

function normalizeTags(tags: string[]): string[] {
  const out: string[] = [];
  for (const t of tags) {
    try {
      out.push(fullString(parseReference(t)));
    } catch {
      throw new LayerfsError('INVALID_IMAGE', `invalid manifest.json: bad RepoTag ${JSON.stringify(t)}`);
    }
  }
  return out;
}

/** RepoTags of a Docker 25 archive's manifest.json, by config digest. */
async function dockerRepoTags(src: ArchiveSource, opts: ReadOptions): Promise<Map<string, string[]>> {
  const m = new Map<string, string[]>();
  if ((await src.size('manifest.json')) === undefined) return m;
  for (const e of await readDockerManifest(src, opts)) {
    const hex = /([0-9a-f]{64})(?:\.json)?$/.exec(e.Config)?.[1];
    if (hex) m.set(`sha256:${hex}`, normalizeTags(e.RepoTags));
  }
  return m;
}

async function readClassicDocker(src: ArchiveSource, opts: ReadOptions): Promise<ImageToLoad[]> {
  const out: ImageToLoad[] = [];
  for (const e of await readDockerManifest(src, opts)) {
    const configBytes = await src.read(e.Config, opts.limits.maxJsonSize);
    const configDigest = digestOf(configBytes);
    const named = /([0-9a-f]{64})(?:\.json)?$/.exec(e.Config)?.[1];
    if (named && `sha256:${named}` !== configDigest) {
      throw new LayerfsError('DIGEST_MISMATCH', `image config ${e.Config}: digest mismatch: expected sha256:${named}, got ${configDigest}`);
    }
    const config = parseImageConfig(configBytes, `image config ${e.Config}`);
    checkLayers(config, e.Layers.length, opts.limits);
    out.push({ config, configBytes, configDigest, layers: e.Layers.map((path) => ({ path })), names: normalizeTags(e.RepoTags) });
  }
  return out;
}

/** Lists the images of an archive, for the requested platform. */
export async function readArchive(src: ArchiveSource, opts: ReadOptions): Promise<ImageToLoad[]> {
  if ((await src.size('index.json')) !== undefined) return readOciLayout(src, opts);
  if ((await src.size('manifest.json')) !== undefined) return readClassicDocker(src, opts);
  throw new LayerfsError('INVALID_IMAGE', `${src.name}: not an image archive (no index.json or manifest.json)`, {
    hint: 'layerfs loads docker-archive (docker save) and OCI layouts (oci-archive tar or directory)',
  });
}

