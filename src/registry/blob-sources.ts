/**
 * Which registry repositories a blob is known to exist in (Docker keeps the same as
 * `distribution/v2metadata-by-diffid`). `pull` records the repository every blob came
 * from; `push` to another repository of the same registry then asks the registry to
 * mount the blob from there instead of uploading it. One small JSON file per blob under
 * `<root>/image/distribution/sources/`; a lost or stale record only costs an upload.
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { digestHex, type Digest } from '../core/digest.js';

function dir(root: string): string {
  return `${root}/image/distribution/sources`;
}

/** Repositories (`host/repo`) the blob was seen in, most recent first. */
export async function blobSources(root: string, d: Digest): Promise<string[]> {
  try {
    const v = JSON.parse(await readFile(`${dir(root)}/${digestHex(d)}`, 'utf8')) as unknown;
    return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
  } catch {
    return [];
  }
}

/** Records that the blobs exist in `repo` (`host/path`). */
export async function recordBlobSources(root: string, digests: Iterable<Digest>, repo: string): Promise<void> {
  await mkdir(dir(root), { recursive: true });
  for (const d of new Set(digests)) {
    const known = await blobSources(root, d);
    const next = [repo, ...known.filter((r) => r !== repo)].slice(0, 8);
    const file = `${dir(root)}/${digestHex(d)}`;
    const tmp = `${file}.${process.pid}.tmp`;
    await writeFile(tmp, JSON.stringify(next));
    await rename(tmp, file);
  }
}
