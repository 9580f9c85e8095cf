/**
 * Downloads one blob into the pull download folder (`<root>/downloads/`), verified before
 * anything else sees it: bytes go to `<hex>.partial`, hashed as they arrive; a complete,
 * matching file is renamed to `<hex>`. An interrupted transfer keeps its `.partial` and
 * continues with `Range: bytes=N-` — within this pull (a few retries) and in the next pull
 * if this one gave up. A blob whose bytes do not match is deleted, never resumed.
 * A per-blob lock file keeps two concurrent pulls from writing the same download.
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { finished } from 'node:stream/promises';
import { digestHex, type Digest } from '../core/digest.js';
import { LayerfsError, hasErrnoCode } from '../core/errors.js';
import type { Descriptor } from '../image/index.js';
import { acquireLock } from '../store/index.js';
import { drain } from './http-transport.js';
import { registryError, type RegistryClient } from './registry-client.js';

/** Options for one download. */
export interface DownloadOptions {
  /** Called as bytes arrive (total includes bytes resumed from an earlier attempt). */
  onProgress?: (done: number, total: number) => void;
  /** Attempts within this call before giving up (default 3). */
  attempts?: number;
}

async function sizeOf(file: string): Promise<number | undefined> {
  try {
    return (await stat(file)).size;
  } catch (err) {
    if (hasErrnoCode(err, 'ENOENT')) return undefined;
    throw err;
  }
}

async function hashFile(file: string, hash: Hash): Promise<void> {
  for await (const c of createReadStream(file) as AsyncIterable<Buffer>) hash.update(c);
}

/** Downloads `desc` from `repo` into `dir`; resolves the path of the verified file. */
export async function downloadBlob(client: RegistryClient, repo: string, desc: Descriptor, dir: string, opts: DownloadOptions = {}): Promise<string> {
  await mkdir(dir, { recursive: true });
  const hex = digestHex(desc.digest);
  const final = `${dir}/${hex}`;
  const partial = `${final}.partial`;
  const lock = await acquireLock(`${final}.lock`);
  try {
    if ((await sizeOf(final)) === desc.size) return final;
    const attempts = opts.attempts ?? 3;
    let lastError: unknown;
    for (let attempt = 0; attempt < attempts; attempt++) {
      try {
        await transfer(client, repo, desc, partial, opts);
        await rename(partial, final);
        return final;
      } catch (err) {
        lastError = err;
        // Wrong bytes or a refusal from the registry: retrying the same request cannot help.
        if (!(err instanceof LayerfsError) || err.code !== 'REGISTRY' || (err as { retry?: boolean }).retry === false) throw err;
      }
    }
    throw lastError;
  } finally {
    await lock.release();
  }
}

async function transfer(client: RegistryClient, repo: string, desc: Descriptor, partial: string, opts: DownloadOptions): Promise<void> {
  let offset = (await sizeOf(partial)) ?? 0;
  if (offset > desc.size) {
    await rm(partial, { force: true });
    offset = 0;
  }
  const hash = createHash('sha256');
  if (offset > 0) await hashFile(partial, hash);
  if (offset === desc.size) return verify(desc, hash.digest('hex'), partial);
  const headers: Record<string, string> = {};
  if (offset > 0) headers.Range = `bytes=${offset}-`;
  const res = await client.call('GET', `/v2/${repo}/blobs/${desc.digest}`, { scopes: [`repository:${repo}:pull`], headers });
  if (res.status === 200 && offset > 0) {
    // The server ignored the Range: start over.
    await rm(partial, { force: true });
    return write(res.body, 0, createHash('sha256'));
  }
  if (res.status !== 200 && res.status !== 206) {
    const e = await registryError(res, `blob ${desc.digest}`);
    Object.assign(e, { retry: false });
    throw e;
  }
  if (res.status === 206) {
    const cr = String(res.headers['content-range'] ?? '');
    if (!cr.startsWith(`bytes ${offset}-`)) {
      drain(res);
      await rm(partial, { force: true });
      throw new LayerfsError('REGISTRY', `blob ${desc.digest}: the registry answered range ${JSON.stringify(cr)} for bytes=${offset}-`);
    }
  }
  return write(res.body, offset, hash);

  async function write(body: NodeJS.ReadableStream & { destroy(e?: Error): void }, start: number, h: Hash): Promise<void> {
    const out = createWriteStream(partial, { flags: start > 0 ? 'a' : 'w' });
    let done = start;
    try {
      for await (const c of body as AsyncIterable<Buffer>) {
        done += c.length;
        if (done > desc.size) {
          body.destroy();
          throw new LayerfsError('DIGEST_MISMATCH', `blob ${desc.digest}: more than the ${desc.size} bytes its descriptor declares`);
        }
        h.update(c);
        if (!out.write(c)) await new Promise<void>((r) => out.once('drain', () => r()));
        opts.onProgress?.(done, desc.size);
      }
    } catch (err) {
      out.end();
      await finished(out).catch(() => {});
      if (err instanceof LayerfsError && err.code === 'DIGEST_MISMATCH') await rm(partial, { force: true });
      if (err instanceof LayerfsError) throw err;
      throw new LayerfsError('REGISTRY', `blob ${desc.digest}: the transfer broke off after ${done} of ${desc.size} bytes (${(err as Error).message})`, { cause: err, hint: 'run the command again: the download resumes where it stopped' });
    }
    out.end();
    await finished(out);
    if (done < desc.size) {
      throw new LayerfsError('REGISTRY', `blob ${desc.digest}: the registry sent ${done} of ${desc.size} bytes`, { hint: 'run the command again: the download resumes where it stopped' });
    }
    return verify(desc, h.digest('hex'), partial);
  }
}

async function verify(desc: Descriptor, hex: string, partial: string): Promise<void> {
  const got = `sha256:${hex}` as Digest;
  if (got !== desc.digest) {
    await rm(partial, { force: true });
    throw new LayerfsError('DIGEST_MISMATCH', `blob ${desc.digest}: digest mismatch: the bytes received hash to ${got}`, { hint: 'the registry or something between it and you altered the blob' });
  }
}

/**
 * Removes downloads (complete or partial) untouched for `maxAgeMs` (default 7 days) whose
 * blob no pull holds a lock on: what abandoned pulls left behind.
 */
export async function pruneStaleDownloads(dir: string, maxAgeMs = 7 * 24 * 3600 * 1000): Promise<void> {
  const names = await readdir(dir).catch(() => [] as string[]);
  const now = Date.now();
  for (const n of names) {
    const m = /^([0-9a-f]{64})(\.partial)?$/.exec(n);
    if (!m || names.includes(`${m[1]}.lock`)) continue;
    const st = await stat(`${dir}/${n}`).catch(() => undefined);
    if (st && now - st.mtimeMs > maxAgeMs) await rm(`${dir}/${n}`, { force: true });
  }
}
