/**
 * `ADD https://…` sources. A build reaches the network only when asked (`--allow-network`);
 * then the file is downloaded while the step is planned — its content is part of the
 * step's cache key, as in BuildKit — into the build's own staging folder, hashed on the
 * way, and checked against `ADD --checksum=sha256:…` when given: a mismatch fails the step
 * before anything is written. As Docker does: the file is named after the URL's last path
 * segment, gets mode 600 (unless --chmod), the Last-Modified time, and is never unpacked.
 */
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { posix } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { isDigestString } from '../core/digest.js';
import { LayerfsError } from '../core/errors.js';

/** A downloaded source. */
export interface RemoteFile {
  url: string;
  /** Where it was saved (inside the build's staging folder). */
  path: string;
  /** The name it gets in the image. */
  name: string;
  digest: string;
  mtime: Date | undefined;
}

/** Whether an ADD source is a URL. */
export const isUrl = (s: string): boolean => /^[a-z][a-z0-9+.-]*:\/\//i.test(s);

/** The file name a URL gives: its last path segment (`index.html`-less: Docker refuses an empty one). */
function nameOf(url: URL): string {
  const base = posix.basename(decodeURIComponent(url.pathname));
  if (base === '' || base === '/' || base === '.' || base === '..') {
    throw new LayerfsError('INVALID_ARGUMENT', `ADD ${url.href}: cannot determine a file name from the URL (give a destination file name)`);
  }
  return base;
}

/** Checks an `--checksum` value (sha256 only, as BuildKit's). */
export function parseChecksum(v: string): string {
  if (!isDigestString(v)) throw new LayerfsError('INVALID_ARGUMENT', `ADD --checksum=${v}: expected sha256:<64 hex digits>`);
  return v;
}

/** Downloads `href` into `dir`; verified against `checksum` when given. */
export async function download(href: string, dir: string, checksum: string | undefined, signal: AbortSignal): Promise<RemoteFile> {
  let url: URL;
  try {
    url = new URL(href);
  } catch {
    throw new LayerfsError('INVALID_ARGUMENT', `ADD ${href}: not a valid URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new LayerfsError('INVALID_ARGUMENT', `ADD ${href}: only http and https URLs are supported`);
  const name = nameOf(url);
  let res: Response;
  try {
    res = await fetch(url, { redirect: 'follow', signal });
  } catch (err) {
    throw new LayerfsError('IO', `ADD ${href}: ${(err as Error).cause instanceof Error ? ((err as Error).cause as Error).message : (err as Error).message}`, { cause: err });
  }
  if (!res.ok || !res.body) throw new LayerfsError('IO', `ADD ${href}: the server answered ${res.status} ${res.statusText}`);
  await mkdir(dir, { recursive: true });
  const path = `${dir}/${createHash('sha256').update(href).digest('hex').slice(0, 16)}`;
  const hash = createHash('sha256');
  const tap = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      cb(null, chunk);
    },
  });
  try {
    await pipeline(Readable.fromWeb(res.body as unknown as WebReadableStream<Uint8Array>), tap, createWriteStream(path, { mode: 0o600 }));
  } catch (err) {
    await rm(path, { force: true });
    throw new LayerfsError('IO', `ADD ${href}: the download failed: ${(err as Error).message}`, { cause: err });
  }
  const digest = `sha256:${hash.digest('hex')}`;
  if (checksum !== undefined && digest !== checksum) {
    await rm(path, { force: true });
    throw new LayerfsError('DIGEST_MISMATCH', `ADD ${href}: checksum mismatch: expected ${checksum}, got ${digest}`);
  }
  const lm = res.headers.get('last-modified');
  const mtime = lm ? new Date(lm) : undefined;
  return { url: href, path, name, digest, mtime: mtime && !Number.isNaN(mtime.getTime()) ? mtime : undefined };
}
