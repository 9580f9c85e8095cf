/**
 * Fetching manifests and indexes from a registry and choosing the one for a platform.
 * Every document is checked before it is parsed: at most 4 MiB (what registries accept),
 * `Docker-Content-Digest` equal to the sha256 of the body, and — when fetched by digest,
 * as every child of an index is — the body's sha256 equal to the digest asked for.
 */
import { digestOf, type Digest } from '../core/digest.js';
import { LayerfsError } from '../core/errors.js';
import { type Descriptor, formatPlatform, isIndexDocument, MediaType, parseIndex, parseJsonObject, type Platform, selectForPlatform } from '../image/index.js';
import { readBody } from './http-transport.js';
import { registryError, type RegistryClient } from './registry-client.js';

/** Largest manifest or index accepted (distribution's own limit). */
export const MAX_MANIFEST_SIZE = 4 * 1024 * 1024;

/** All four manifest types: without the OCI ones an OCI index answers 404. */
export const MANIFEST_ACCEPT = [MediaType.ociManifest, MediaType.ociIndex, MediaType.dockerManifest, MediaType.dockerList].join(', ');

/** A fetched, verified manifest or index document. */
export interface FetchedDocument {
  bytes: Buffer;
  digest: Digest;
  mediaType: string;
  isIndex: boolean;
}

/** GETs `/v2/<repo>/manifests/<tag|digest>` and verifies it. */
export async function fetchManifest(client: RegistryClient, repo: string, reference: string, what: string): Promise<FetchedDocument> {
  const res = await client.call('GET', `/v2/${repo}/manifests/${reference}`, { scopes: [`repository:${repo}:pull`], headers: { Accept: MANIFEST_ACCEPT } });
  if (res.status !== 200) throw await registryError(res, what);
  const bytes = await readBody(res, MAX_MANIFEST_SIZE, `manifest of ${what}`);
  const digest = digestOf(bytes);
  const header = res.headers['docker-content-digest'];
  if (typeof header === 'string' && header !== '' && header !== digest) {
    throw new LayerfsError('DIGEST_MISMATCH', `manifest of ${what}: the registry says ${header} but the body is ${digest}`);
  }
  if (reference.startsWith('sha256:') && reference !== digest) {
    throw new LayerfsError('DIGEST_MISMATCH', `manifest of ${what}: digest mismatch: asked for ${reference}, got ${digest}`);
  }
  const obj = parseJsonObject(bytes, `manifest of ${what}`);
  const ctype = String(res.headers['content-type'] ?? '').split(';')[0]!.trim();
  const isIndex = isIndexDocument(obj, ctype || undefined);
  const mediaType = typeof obj.mediaType === 'string' ? obj.mediaType : ctype || (isIndex ? MediaType.ociIndex : MediaType.ociManifest);
  return { bytes, digest, mediaType, isIndex };
}

/** The manifest chosen for a reference: the top document's digest and the image manifest. */
export interface ResolvedManifest {
  /** Digest of what the reference names (an index for multi-platform images). */
  topDigest: Digest;
  manifest: FetchedDocument;
}

/** Fetches the reference's document and, through indexes (nested too), the platform's manifest. */
export async function resolveManifest(client: RegistryClient, repo: string, reference: string, platform: Platform, what: string): Promise<ResolvedManifest> {
  const top = await fetchManifest(client, repo, reference, what);
  let doc = top;
  for (let depth = 0; doc.isIndex; depth++) {
    if (depth >= 4) throw new LayerfsError('INVALID_IMAGE', `${what}: indexes nested more than 4 deep`);
    const idx = parseIndex(doc.bytes, `index of ${what}`);
    const candidates = selectForPlatform(idx.manifests, platform);
    const exact = candidates.filter((c) => c.platform && c.platform.variant === platform.variant);
    const ordered: Descriptor[] = [...exact, ...candidates.filter((c) => c.platform && !exact.includes(c)), ...candidates.filter((c) => !c.platform)];
    const pick = ordered[0];
    if (!pick) {
      const avail = [...new Set(idx.manifests.filter((m) => m.platform && m.platform.os !== 'unknown').map((m) => formatPlatform(m.platform!)))].join(', ') || 'none';
      throw new LayerfsError('NOT_FOUND', `${what}: no image for platform ${formatPlatform(platform)} (available: ${avail})`, { hint: 'choose one with --platform os/arch[/variant]' });
    }
    if (pick.size > MAX_MANIFEST_SIZE) throw new LayerfsError('LIMIT_EXCEEDED', `${what}: manifest ${pick.digest} declares ${pick.size} bytes, over the ${MAX_MANIFEST_SIZE}-byte limit`);
    doc = await fetchManifest(client, repo, pick.digest, what);
    if (doc.bytes.length !== pick.size) throw new LayerfsError('DIGEST_MISMATCH', `${what}: manifest ${pick.digest} is ${doc.bytes.length} bytes, the index declares ${pick.size}`);
  }
  return { topDigest: top.digest, manifest: doc };
}
