/**
 * `layerfs push IMAGE [REGISTRY/]REPO[:TAG]`: sends a stored image to a registry exactly as
 * the store keeps it — the compressed layer blobs, the config bytes and the original
 * manifest bytes — so pull → push → pull keeps every digest. Per blob: a HEAD finds what
 * the registry already has; a blob this store pulled from another repository of the same
 * registry is mounted from there (no upload); the rest is uploaded, in one PUT up to the
 * chunk size and as PATCH chunks beyond it. The manifest goes last, so a failed push
 * never leaves a tag pointing at missing blobs. Layers stored as uncompressed tar are
 * compressed on the way unless asked not to (push-compress.ts); then the manifest is
 * rewritten to name them, and its digest is no longer the stored one.
 * Progress names each layer by its short id (layerShortId: the DiffID's), as every verb does.
 */
import { createReadStream } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { Readable } from 'node:stream';
import { digestOf, layerShortId, parseDigest, type Digest } from '../core/digest.js';
import { LayerfsError } from '../core/errors.js';
import { familiarName, MediaType, parseManifest, parseReference, type Reference } from '../image/index.js';
import type { Store } from '../store/index.js';
import { blobSources, recordBlobSources } from './blob-sources.js';
import { drain, type RequestBody } from './http-transport.js';
import { pool } from './pool.js';
import { compressForPush, type PushCompression } from './push-compress.js';
import { RegistryClient, registryError, type ClientOptions } from './registry-client.js';

/** Statuses of one blob, as docker prints them. */
export type PushStatus = 'Preparing' | 'Compressing' | 'Pushing' | 'Pushed' | 'Layer already exists' | `Mounted from ${string}`;

/** Progress of a push. */
export type PushEvent =
  | { type: 'start'; repository: string }
  | { type: 'layer'; id: string; status: PushStatus }
  | { type: 'done'; tag: string; digest: Digest; size: number };

/** Options for a push. */
export interface PushOptions extends ClientOptions {
  /** Blobs larger than this are uploaded in PATCH chunks of this size (default 16 MiB). */
  chunkSize?: number;
  /** Parallel blob uploads (default 3). */
  jobs?: number;
  /** How layers stored as uncompressed tar are sent (default gzip). */
  compress?: PushCompression;
  onEvent?: (e: PushEvent) => void;
}

interface BlobToPush {
  digest: Digest;
  size: number;
  file: string;
  /** Progress id (the layer's short id); the config has none. */
  id?: string;
}

function fileBody(file: string, start: number, length: number): RequestBody {
  return { length, open: () => (length === 0 ? Readable.from([]) : createReadStream(file, { start, end: start + length - 1 })) };
}

/** Pushes stored image `image` to `target`; resolves the manifest digest. */
export async function pushImage(store: Store, image: string, target: string, opts: PushOptions = {}): Promise<Digest> {
  const emit = opts.onEvent ?? (() => {});
  const dest: Reference = parseReference(target);
  if (dest.digest !== undefined) throw new LayerfsError('INVALID_ARGUMENT', `cannot push to a digest (${target}): give a tag`);
  const id = await store.resolveImage(image);
  const m = await store.images.getMeta(id, 'manifest');
  if (!m) throw new LayerfsError('NOT_FOUND', `image ${image} has no stored manifest`, { hint: 'load or pull it again to record one' });
  const manifestDigest = parseDigest(m);
  const storedManifest = await readFile(store.paths.blob(manifestDigest)).catch(() => {
    throw new LayerfsError('NOT_FOUND', `manifest ${manifestDigest} of ${image} is missing from the store`);
  });
  if (digestOf(storedManifest) !== manifestDigest) throw new LayerfsError('DIGEST_MISMATCH', `stored manifest ${manifestDigest} of ${image} is damaged`);
  const manifest = parseManifest(storedManifest, `manifest of ${image}`);
  if (manifest.config.digest !== id) throw new LayerfsError('INVALID_IMAGE', `stored manifest ${manifestDigest} does not describe image ${id}`);
  const diffIds = (await store.images.config(id)).config.rootfs.diff_ids;

  const stored: BlobToPush[] = [];
  for (const [i, l] of manifest.layers.entries()) {
    const size = await store.blobs.size(l.digest);
    if (size === undefined) throw new LayerfsError('NOT_FOUND', `layer blob ${l.digest} of ${image} is missing from the store`, { hint: 'pull or load the image again' });
    if (size !== l.size) throw new LayerfsError('DIGEST_MISMATCH', `stored layer blob ${l.digest} is ${size} bytes, the manifest says ${l.size}`);
    stored.push({ digest: l.digest, size, file: store.paths.blob(l.digest), id: layerShortId(diffIds[i] ?? l.digest) });
  }
  const work = await mkdtemp(`${tmpdir()}/layerfs-push-`);
  try {
    const sent = await compressForPush(storedManifest, stored, opts.compress ?? 'gzip', work, (i) => emit({ type: 'layer', id: stored[i]!.id!, status: 'Compressing' }));
    const layers = sent.layers.map((b, i) => ({ ...b, id: stored[i]!.id! }));
    return await uploadImage(store, { id, manifestBytes: sent.manifestBytes, layers, configSize: manifest.config.size, dest, emit, opts });
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** Uploads the blobs, then the manifest; resolves the manifest digest. */
async function uploadImage(
  store: Store,
  a: { id: Digest; manifestBytes: Buffer; layers: BlobToPush[]; configSize: number; dest: Reference; emit: (e: PushEvent) => void; opts: PushOptions },
): Promise<Digest> {
  const { id, manifestBytes, dest, emit, opts } = a;
  const manifestDigest = digestOf(manifestBytes);
  // A manifest without mediaType (umoci writes those) is an OCI manifest.
  const mediaType = parseManifest(manifestBytes).mediaType ?? MediaType.ociManifest;
  const blobs: BlobToPush[] = [];
  for (const b of a.layers) if (!blobs.some((x) => x.digest === b.digest)) blobs.push(b);
  const config: BlobToPush = { digest: id, size: a.configSize, file: store.paths.imageConfig(id) };

  const repo = dest.path;
  const scopes = [`repository:${repo}:pull,push`];
  const chunk = opts.chunkSize ?? 16 * 1024 * 1024;
  const client = await RegistryClient.connect(dest.domain, opts);
  try {
    emit({ type: 'start', repository: familiarName(dest) });
    for (const b of blobs) emit({ type: 'layer', id: b.id!, status: 'Preparing' });

    const pushBlob = async (b: BlobToPush, quiet: boolean): Promise<void> => {
      const say = (status: PushStatus): void => void (quiet || emit({ type: 'layer', id: b.id ?? '', status }));
      const head = await client.call('HEAD', `/v2/${repo}/blobs/${b.digest}`, { scopes });
      drain(head);
      if (head.status === 200) return say('Layer already exists');
      if (head.status !== 404) throw await registryError(head, `blob ${b.digest}`);
      let location: URL | undefined;
      for (const src of await blobSources(store.paths.root, b.digest)) {
        const r = parseReference(src);
        if (r.domain !== dest.domain || r.path === repo) continue;
        const res = await client.call('POST', `/v2/${repo}/blobs/uploads/?mount=${encodeURIComponent(b.digest)}&from=${encodeURIComponent(r.path)}`, { scopes: [...scopes, `repository:${r.path}:pull`] });
        drain(res);
        if (res.status === 201) return say(`Mounted from ${r.path}`);
        if (res.status === 202 && res.headers.location) {
          location = client.url(res.headers.location);
          break;
        }
      }
      say('Pushing');
      if (!location) {
        const start = await client.call('POST', `/v2/${repo}/blobs/uploads/`, { scopes });
        if (start.status !== 202 || !start.headers.location) throw await registryError(start, `upload of ${b.digest} to ${repo}`);
        drain(start);
        location = client.url(start.headers.location);
      }
      let sent = 0;
      if (b.size > chunk) {
        // Chunked upload: each PATCH answers the Location of the next.
        while (sent < b.size) {
          const n = Math.min(chunk, b.size - sent);
          const res = await client.call('PATCH', location, {
            scopes,
            headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': `${sent}-${sent + n - 1}` },
            body: fileBody(b.file, sent, n),
          });
          if (res.status !== 202 || !res.headers.location) throw await registryError(res, `upload of ${b.digest} (chunk at ${sent})`);
          drain(res);
          location = client.url(res.headers.location);
          sent += n;
        }
      }
      const put = new URL(location);
      put.searchParams.set('digest', b.digest);
      const res = await client.call('PUT', put, {
        scopes,
        headers: { 'Content-Type': 'application/octet-stream' },
        body: fileBody(b.file, sent, b.size - sent),
      });
      if (res.status !== 201) throw await registryError(res, `upload of ${b.digest}`);
      drain(res);
      say('Pushed');
    };

    await pool(blobs, opts.jobs ?? 3, (b) => pushBlob(b, false));
    await pushBlob(config, true);

    const tag = dest.tag ?? 'latest';
    const res = await client.call('PUT', `/v2/${repo}/manifests/${tag}`, { scopes, headers: { 'Content-Type': mediaType }, body: manifestBytes });
    if (res.status !== 201) throw await registryError(res, `manifest for ${familiarName(dest)}:${tag}`);
    drain(res);
    const got = res.headers['docker-content-digest'];
    if (typeof got === 'string' && got !== '' && got !== manifestDigest) {
      throw new LayerfsError('DIGEST_MISMATCH', `the registry stored the manifest as ${got}, not ${manifestDigest}`);
    }
    await recordBlobSources(store.paths.root, [id, ...blobs.map((b) => b.digest)], `${dest.domain}/${repo}`).catch(() => {});
    emit({ type: 'done', tag, digest: manifestDigest, size: manifestBytes.length });
    return manifestDigest;
  } finally {
    client.close();
  }
}
