/**
 * Content digests, as branded strings so that the three kinds of layer hash can never be
 * mixed up (moby keeps them as distinct types for the same reason):
 *
 * - `Digest`  — the sha256 of some stored bytes: a compressed layer blob, a manifest, a config.
 * - `DiffId`  — the sha256 of a layer's *uncompressed* tar stream (config `rootfs.diff_ids`).
 * - `ChainId` — identifies a layer *together with all layers below it* (OCI image spec,
 *               "Layer ChainID"): ChainID(L0) = DiffID(L0),
 *               ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln)).
 *
 * All three share the textual form `sha256:<64 lowercase hex>`; only sha256 is accepted
 * because that is all the image formats layerfs reads produce.
 */
import { createHash } from 'node:crypto';
import { LayerfsError } from './errors.js';

declare const digestBrand: unique symbol;
declare const diffIdBrand: unique symbol;
declare const chainIdBrand: unique symbol;

/** sha256 of stored bytes (blob, manifest, config). */
export type Digest = string & { readonly [digestBrand]: true };
/** sha256 of a layer's uncompressed tar stream. */
export type DiffId = string & { readonly [diffIdBrand]: true };
/** A layer identified with its whole parent chain. */
export type ChainId = string & { readonly [chainIdBrand]: true };

const DIGEST_RE = /^sha256:[0-9a-f]{64}$/;

/** True when `s` is a well-formed `sha256:<64 hex>` string. */
export function isDigestString(s: unknown): s is string {
  return typeof s === 'string' && DIGEST_RE.test(s);
}

function parseAs(s: unknown, what: string): string {
  if (!isDigestString(s)) {
    const shown = typeof s === 'string' ? JSON.stringify(s.length > 80 ? s.slice(0, 80) + '…' : s) : typeof s;
    throw new LayerfsError('INVALID_IMAGE', `invalid ${what} ${shown}: expected sha256:<64 lowercase hex digits>`);
  }
  return s;
}

/** Validates and brands a blob/manifest/config digest. */
export function parseDigest(s: unknown): Digest {
  return parseAs(s, 'digest') as Digest;
}

/** Validates and brands a layer diff_id. */
export function parseDiffId(s: unknown): DiffId {
  return parseAs(s, 'diff_id') as DiffId;
}

/** Validates and brands a chain id. */
export function parseChainId(s: unknown): ChainId {
  return parseAs(s, 'chain id') as ChainId;
}

/** The 64 hex digits of a digest (its file name in `sha256/` folders). */
export function digestHex(d: Digest | DiffId | ChainId): string {
  return d.slice('sha256:'.length);
}

/** sha256 of in-memory bytes, as a Digest. */
export function digestOf(bytes: Uint8Array | string): Digest {
  return ('sha256:' + createHash('sha256').update(bytes).digest('hex')) as Digest;
}

/** Chain id of the layer whose parent chain id is `parent` (undefined for a base layer). */
export function chainIdOf(parent: ChainId | undefined, diffId: DiffId): ChainId {
  if (parent === undefined) return diffId as string as ChainId;
  return ('sha256:' + createHash('sha256').update(`${parent} ${diffId}`).digest('hex')) as ChainId;
}

/** Chain ids of every layer of an image, bottom first (same length as `diffIds`). */
export function chainIds(diffIds: readonly DiffId[]): ChainId[] {
  const out: ChainId[] = [];
  let parent: ChainId | undefined;
  for (const d of diffIds) {
    parent = chainIdOf(parent, d);
    out.push(parent);
  }
  return out;
}

/** Docker's short form of an id: the first 12 hex digits. */
export function shortId(d: string): string {
  return d.replace(/^sha256:/, '').slice(0, 12);
}

/**
 * A layer's short id, the same in every verb (load, pull and push progress, layers,
 * explain, events, inspect's Layers): Docker's short form of its DiffID — the digest of
 * its uncompressed tar, the one id a layer keeps whatever blob (gzip, zstd, plain tar)
 * carries it, and the one `inspect` lists in RootFS.Layers.
 */
export function layerShortId(diffId: string): string {
  return shortId(diffId);
}
