/**
 * `layerfs save`: writes images as a docker-archive in the layout Docker 25 writes — an OCI
 * image layout (`oci-layout`, `index.json`, `blobs/sha256/…`) plus the classic
 * `manifest.json` beside it — so both docker-archive readers (skopeo, `docker load`) and
 * OCI readers accept it. Layer blobs, manifests and configs are copied byte for byte from
 * the store, so load → save → load keeps image ids, manifest digests and layer digests.
 * The archive is written to a staging file next to the target and renamed at the end.
 */
import { createWriteStream } from 'node:fs';
import { readFile, rename, rm } from 'node:fs/promises';
import { dirname, basename } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Writable } from 'node:stream';
import { pack } from 'tar-stream';
import { digestHex, parseDigest, type Digest } from '../core/digest.js';
import { LayerfsError } from '../core/errors.js';
import { MediaType, parseManifest, fullString, parseReference } from '../image/index.js';
import { stagingName } from './store-paths.js';
import type { Store } from './store.js';

interface SavedImage {
  id: Digest;
  manifestDigest: Digest;
  manifestBytes: Buffer;
  layers: Digest[];
  tags: string[];
}

async function collectImage(store: Store, ref: string): Promise<SavedImage> {
  const id = await store.resolveImage(ref);
  const m = await store.images.getMeta(id, 'manifest');
  if (!m) throw new LayerfsError('NOT_FOUND', `image ${ref} has no stored manifest`, { hint: 'load it again to record one' });
  const manifestDigest = parseDigest(m);
  const manifestBytes = await readFile(store.paths.blob(manifestDigest)).catch(() => {
    throw new LayerfsError('NOT_FOUND', `manifest ${manifestDigest} of ${ref} is missing from the store`);
  });
  const manifest = parseManifest(manifestBytes);
  for (const l of manifest.layers) {
    if (!(await store.blobs.has(l.digest))) throw new LayerfsError('NOT_FOUND', `layer blob ${l.digest} of ${ref} is missing from the store`, { hint: 'load the image again' });
  }
  // Tags: a tag named on the command line is saved as that tag; an id saves all its tags.
  let tags = await store.tags.tagsOf(id);
  if (!/^(sha256:)?[0-9a-f]{4,64}$/.test(ref)) tags = tags.filter((t) => fullString(parseReference(t)) === fullString(parseReference(ref)));
  return { id, manifestDigest, manifestBytes, layers: manifest.layers.map((l) => l.digest), tags };
}

/** Writes `refs` as one docker-archive to `out` (a path, or a stream such as stdout). */
export async function saveImages(store: Store, refs: string[], out: string | Writable): Promise<void> {
  const images: SavedImage[] = [];
  for (const r of refs) {
    const img = await collectImage(store, r);
    if (!images.some((i) => i.id === img.id)) images.push(img);
    else images.find((i) => i.id === img.id)!.tags.push(...img.tags.filter((t) => !images.find((i) => i.id === img.id)!.tags.includes(t)));
  }
  const tar = pack();
  const target = typeof out === 'string' ? `${dirname(out)}/.${basename(out)}.${stagingName()}` : undefined;
  const sink = target ? createWriteStream(target, { flags: 'wx' }) : (out as Writable);
  const done = pipeline(tar, sink);
  const mtime = new Date(0);
  const dir = (name: string): void => void tar.entry({ name, type: 'directory', mode: 0o755, mtime });
  const file = (name: string, data: Buffer): Promise<void> =>
    new Promise((resolve, reject) => tar.entry({ name, mode: 0o644, mtime }, data, (err) => (err ? reject(err) : resolve())));
  const blobFile = async (d: Digest): Promise<void> => {
    const size = (await store.blobs.size(d))!;
    await new Promise<void>((resolve, reject) => {
      const entry = tar.entry({ name: `blobs/sha256/${digestHex(d)}`, size, mode: 0o644, mtime }, (err) => (err ? reject(err) : resolve()));
      pipeline(store.blobs.open(d), entry).catch(reject);
    });
  };
  try {
    dir('blobs/');
    dir('blobs/sha256/');
    const written = new Set<Digest>();
    const index: unknown[] = [];
    const manifestJson: unknown[] = [];
    for (const img of images) {
      const { bytes: config } = await store.images.config(img.id);
      for (const [d, bytes] of [[img.id, config], [img.manifestDigest, img.manifestBytes]] as const) {
        if (!written.has(d)) await file(`blobs/sha256/${digestHex(d)}`, bytes);
        written.add(d);
      }
      for (const l of img.layers) {
        if (!written.has(l)) await blobFile(l);
        written.add(l);
      }
      const mediaType = parseManifest(img.manifestBytes).mediaType ?? MediaType.ociManifest;
      const entries = img.tags.length ? img.tags : [undefined];
      for (const t of entries) {
        const desc: Record<string, unknown> = { mediaType, digest: img.manifestDigest, size: img.manifestBytes.length };
        if (t) {
          const r = parseReference(t);
          desc.annotations = { 'io.containerd.image.name': fullString(r), 'org.opencontainers.image.ref.name': r.tag ?? 'latest' };
        }
        index.push(desc);
      }
      manifestJson.push({ Config: `blobs/sha256/${digestHex(img.id)}`, RepoTags: img.tags, Layers: img.layers.map((l) => `blobs/sha256/${digestHex(l)}`) });
    }
    await file('index.json', Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: index })));
    await file('manifest.json', Buffer.from(JSON.stringify(manifestJson)));
    await file('oci-layout', Buffer.from(JSON.stringify({ imageLayoutVersion: '1.0.0' })));
    tar.finalize();
    await done;
    if (target) await rename(target, out as string);
  } catch (err) {
    tar.destroy();
    if (target) await rm(target, { force: true });
    throw err;
  }
}
