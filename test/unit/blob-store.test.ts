/** The blob store's ingest: an aborted ingest leaves nothing behind, however early. */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BlobStore } from '../../src/store/blob-store.js';
import { StorePaths } from '../../src/store/store-paths.js';

const roots: string[] = [];
afterAll(async () => {
  await Promise.all(roots.map((r) => rm(r, { recursive: true, force: true })));
});

describe('blob ingest', () => {
  it('leaves no staging file when aborted right away (before its file is even open)', async () => {
    const root = await mkdtemp(join(tmpdir(), 'layerfs-blobs-'));
    roots.push(root);
    const paths = new StorePaths(root);
    const blobs = new BlobStore(paths);
    // A bad archive fails the load at once; the write stream opens its file
    // asynchronously, so a removal that does not wait for it races the open.
    for (let i = 0; i < 100; i++) {
      const ingest = await blobs.ingest();
      await ingest.abort();
    }
    await new Promise((r) => setTimeout(r, 50));
    const left = (await readdir(paths.blobsStaging)).filter((n) => n.startsWith('tmp-') || n.startsWith('.tmp-'));
    expect(left).toEqual([]);
  });
});
