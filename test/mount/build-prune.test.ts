/**
 * The build cache as stored things: a build's intermediate images are not `<none>` rows in
 * `images` (`images -a` shows them), `prune --dangling` leaves them to the cache, `builder
 * du` shows each entry and its layer, and `builder prune` — dangling only, `--filter
 * until=`, `--all` — removes entries, their intermediate images and the layers only they
 * kept, while tagged images stay whole and runnable.
 */
import { readdir, writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { cli, cliOk } from '../helpers/cli.js';
import { storeWithSampleImage } from '../helpers/sample-image.js';

const DOCKERFILE = `FROM sample
COPY app.txt /srv/
RUN echo built > /srv/built
ENV DONE=1
`;

interface Du {
  Entries: { ID: string; Step: string; Size: number; Dangling: boolean }[];
  Size: number;
  Reclaimable: number;
}

describe.skipIf(!inject('canMount'))('layerfs builder prune / du and hidden intermediates', () => {
  let root: string;
  let ctx: string;
  const build = async (args: string[]): Promise<string[]> => {
    const r = await cli(root, ['build', '--progress', 'plain', ...args, ctx]);
    expect(r.code, r.stderr).toBe(0);
    return r.stderr.split('\n').filter((l) => /^#\d+ (CACHED|MISS)/.test(l));
  };
  const images = async (all = false): Promise<{ Repository: string; ID: string }[]> => JSON.parse(await cliOk(root, ['images', '--json', ...(all ? ['-a'] : [])])) as { Repository: string; ID: string }[];
  const du = async (): Promise<Du> => JSON.parse(await cliOk(root, ['builder', 'du', '--json'])) as Du;
  const layerCount = async (): Promise<number> => (await readdir(join(root, 'image', 'layerdb', 'sha256'))).length;

  beforeAll(async () => {
    const s = await storeWithSampleImage();
    root = s.root;
    ctx = join(s.work, 'ctx');
    await mkdir(ctx);
    await writeFile(join(ctx, 'app.txt'), 'version 1\n');
    await writeFile(join(ctx, 'Dockerfile'), DOCKERFILE);
  });

  it('intermediate images are hidden from images, shown by images -a, and kept by prune --dangling', async () => {
    await build(['-t', 'app:1']);
    const shown = await images();
    expect(shown.map((i) => i.Repository).sort()).toEqual(['app', 'sample']);
    const all = await images(true);
    // The COPY and RUN results; the final image (ENV on the RUN result) is app:1.
    expect(all.filter((i) => i.Repository === '<none>')).toHaveLength(2);
    await cliOk(root, ['prune', '--dangling']);
    expect(await images(true)).toHaveLength(all.length);
    expect(await build([])).toEqual(['#2 CACHED', '#3 CACHED', '#4 CACHED']);
  });

  it('an untagged build result is a <none> row of images, as docker shows it', async () => {
    await writeFile(join(ctx, 'Dockerfile.untagged'), `${DOCKERFILE}LABEL untagged=1\n`);
    const r = await cli(root, ['build', '-f', join(ctx, 'Dockerfile.untagged'), ctx]);
    expect(r.code, r.stderr).toBe(0);
    const id = r.stdout.trim();
    expect((await images()).find((i) => i.ID === id)?.Repository).toBe('<none>');
    await cliOk(root, ['rmi', id]);
  });

  it('builder du lists the entries with the layers they made; none dangling while app:1 uses them', async () => {
    const u = await du();
    expect(u.Entries).toHaveLength(4);
    const copy = u.Entries.find((e) => e.Step.startsWith('COPY'))!;
    const env = u.Entries.find((e) => e.Step.startsWith('ENV'))!;
    expect(copy.Size).toBeGreaterThan(0);
    expect(env.Size).toBe(0);
    expect(u.Entries.filter((e) => e.Dangling)).toEqual([]);
    // Every layer the cache uses is also app:1's or sample's: nothing only the cache keeps.
    expect(u.Reclaimable).toBe(0);
  });

  it('builder prune without -f refuses when it cannot ask', async () => {
    const r = await cli(root, ['builder', 'prune']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('confirm with -f');
  });

  it('after an edit the old entries are dangling; builder prune removes them (and their layers), the new ones stay cached', async () => {
    await writeFile(join(ctx, 'app.txt'), 'version 2\n');
    await build(['-t', 'app:1']);
    // The old app:1 is now an untagged build result (an image of its own, not cache):
    // `prune --dangling` removes it, as `docker image prune` would.
    await cliOk(root, ['prune', '--dangling']);
    const before = await du();
    const dangling = before.Entries.filter((e) => e.Dangling);
    expect(dangling.map((e) => e.Step.split(' ')[0]).sort()).toEqual(['COPY', 'ENV', 'LABEL', 'RUN']);
    expect(before.Reclaimable).toBeGreaterThan(0);
    const layers = await layerCount();
    const kept = JSON.parse(await cliOk(root, ['builder', 'prune', '-f', '--filter', 'until=1h', '--json'])) as { CachesDeleted: string[] };
    expect(kept.CachesDeleted).toEqual([]);
    const r = JSON.parse(await cliOk(root, ['builder', 'prune', '-f', '--json'])) as { CachesDeleted: string[]; ImagesDeleted: string[]; SpaceReclaimed: number };
    expect(r.CachesDeleted.sort()).toEqual(dangling.map((e) => e.ID).sort());
    expect(r.ImagesDeleted).toHaveLength(2);
    expect(r.SpaceReclaimed).toBeGreaterThan(0);
    expect(await layerCount()).toBe(layers - 2);
    expect(await build([])).toEqual(['#2 CACHED', '#3 CACHED', '#4 CACHED']);
    await writeFile(join(ctx, 'app.txt'), 'version 1\n');
    const again = await build([]);
    expect(again[0]).toBe('#2 MISS: source files differ (changed: app.txt)');
    await writeFile(join(ctx, 'app.txt'), 'version 2\n');
  });

  it('builder prune --all empties the cache; tagged images stay whole and run', async () => {
    const r = JSON.parse(await cliOk(root, ['builder', 'prune', '--all', '-f', '--json'])) as { CachesDeleted: string[] };
    expect(r.CachesDeleted.length).toBeGreaterThan(0);
    expect((await du()).Entries).toEqual([]);
    // What is left untagged are build results (untagged builds above), no intermediates.
    expect(await images(true)).toEqual(await images());
    const run = await cli(root, ['run', '--rm', 'app:1', 'cat', '/srv/app.txt', '/srv/built']);
    expect(run.stdout).toBe('version 2\nbuilt\n');
    const lines = await build([]);
    expect(lines[0]).toBe('#2 MISS: not in the cache (never built)');
  });
});
