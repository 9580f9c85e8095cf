/**
 * The stat-keyed content hashes of build-context files (src/build/digest-cache.ts): files
 * hashed once are remembered and give the same source digest, a file edited so that its
 * size and mtime are as before is still seen (its ctime moved), a file too fresh to trust
 * is not remembered.
 */
import { execFile } from 'node:child_process';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { BuildContext } from '../../src/build/build-context.js';
import { DigestCache } from '../../src/build/digest-cache.js';
import { tempDir } from '../helpers/temp.js';

const exec = promisify(execFile);

describe('build context digests remembered by stat', () => {
  let ctx: string;
  let store: string;

  const digest = async (): Promise<{ digest: string; cache: DigestCache }> => {
    const c = await BuildContext.open(ctx);
    const cache = await DigestCache.open(store, c.root!);
    const sources = await c.resolve(['.'], 'COPY');
    const d = await c.digestSources(sources, 5000, cache);
    await cache.save(c.root!);
    return { digest: d.digest, cache };
  };
  const remembered = async (): Promise<string[]> => {
    const [f] = await readdir(store);
    return Object.keys((JSON.parse(await readFile(join(store, f!), 'utf8')) as { files: Record<string, unknown> }).files).map((p) => p.slice(p.lastIndexOf('/') + 1)).sort();
  };

  beforeAll(async () => {
    const dir = await tempDir();
    ctx = join(dir, 'ctx');
    store = join(dir, 'digests');
    await exec('mkdir', ['-p', join(ctx, 'sub')]);
    await writeFile(join(ctx, 'a.txt'), 'alpha\n');
    await writeFile(join(ctx, 'sub', 'b.txt'), 'bravo\n');
    // Older than the two seconds a stat must have stood still to be trusted.
    await new Promise((r) => setTimeout(r, 2100));
  });

  it('remembers hashed files, and the digest is the same when read from the cache', async () => {
    const first = await digest();
    expect(await remembered()).toEqual(['a.txt', 'b.txt']);
    const second = await digest();
    expect(second.digest).toBe(first.digest);
  });

  it('an edit that keeps size and mtime is still seen (ctime moved), and the fresh file is not remembered', async () => {
    const before = (await digest()).digest;
    const { stdout: mtime } = await exec('stat', ['-c', '%y', join(ctx, 'a.txt')]);
    await writeFile(join(ctx, 'a.txt'), 'ALPHA\n');
    await exec('touch', ['-d', mtime.trim(), join(ctx, 'a.txt')]);
    const after = (await digest()).digest;
    expect(after).not.toBe(before);
    // a.txt's new hash is not kept (its ctime is too fresh); its old entry no longer matches.
    expect(await remembered()).toEqual(['a.txt', 'b.txt']);
    const again = (await digest()).digest;
    expect(again).toBe(after);
  });
});
