/**
 * What a build fetches: a FROM image the store lacks is pulled from its registry (the real
 * docker-registry on loopback, the sample image pushed with skopeo), `--pull never` only
 * looks in the store, COPY --from an image pulls it too; `ADD http://…` from a loopback
 * HTTP server only with --allow-network, verified against --checksum (a mismatch fails the
 * step and caches nothing), the file named after the URL with mode 600 and the server's
 * Last-Modified time, a changed remote file named as the cache miss.
 */
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import http from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { cli } from '../helpers/cli.js';
import { unionMounts } from '../helpers/mounts.js';
import { freePort, skopeoCopy, startRegistry, type Registry } from '../helpers/registry.js';
import { storeWithSampleImage } from '../helpers/sample-image.js';
import { tempDir } from '../helpers/temp.js';

const LAST_MODIFIED = 'Wed, 21 Oct 2015 07:28:00 GMT';

describe.skipIf(!inject('canMount'))('layerfs build: pulled bases and remote ADD', () => {
  let reg: Registry;
  let server: http.Server;
  let base: string;
  let body = 'remote content v1\n';
  let requests = 0;
  let work: string;
  let ctx: string;
  let root: string;

  const sha = (s: string): string => `sha256:${createHash('sha256').update(s).digest('hex')}`;
  const build = (dockerfile: string, args: string[] = []) =>
    writeFile(join(ctx, 'Dockerfile'), dockerfile).then(() => cli(root, ['build', '--progress', 'plain', ...args, ctx]));
  const steps = (stderr: string): string[] => stderr.split('\n').filter((l) => /^#\d+ (CACHED|MISS)/.test(l));

  beforeAll(async () => {
    const s = await storeWithSampleImage();
    work = s.work;
    reg = await startRegistry(join(work, 'registry'));
    await skopeoCopy(`oci:${join(work, 'oci')}:latest`, `docker://${reg.host}/base/sample:1`);
    const port = await freePort();
    server = http.createServer((req, res) => {
      requests++;
      if (req.url === '/files/data.txt') res.writeHead(200, { 'Content-Type': 'text/plain', 'Last-Modified': LAST_MODIFIED }).end(body);
      else res.writeHead(404).end('not here');
    });
    await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
    base = `http://127.0.0.1:${port}`;
    // A store without the sample image: the build must pull it.
    root = join(await tempDir(), 'store');
    ctx = join(work, 'ctx');
    await mkdir(ctx);
  });

  afterAll(async () => {
    await reg?.stop();
    await new Promise((r) => server?.close(r));
  });

  it('FROM an image the store lacks is pulled, then found in the store', async () => {
    const df = `FROM ${reg.host}/base/sample:1\nRUN cat /app/hello.txt > /copied\n`;
    const never = await build(df, ['--pull', 'never']);
    expect(never.code).not.toBe(0);
    expect(never.stderr).toContain(`FROM ${reg.host}/base/sample:1: no such image in the store`);
    const r = await build(df, ['-t', 'pulled:1']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`#1 pulling ${reg.host}/base/sample:1`);
    expect(r.stderr).toMatch(/#1 pulled .*base\/sample:1 \([0-9a-f]{12}, sha256:/);
    const run = await cli(root, ['run', '--rm', 'pulled:1', 'cat', '/copied']);
    expect(run.stdout).toBe('hello from the app layer\n');
    const again = await build(df);
    expect(again.stderr).not.toContain('pulling');
    expect(steps(again.stderr)).toEqual(['#2 CACHED']);
  });

  it('COPY --from an image that is not a stage pulls it too; an unknown one names the registry error', async () => {
    await cli(root, ['rmi', '-f', `${reg.host}/base/sample:1`]);
    const r = await build(`FROM scratch\nCOPY --from=${reg.host}/base/sample:1 /app/hello.txt /hello.txt\n`);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`pulling ${reg.host}/base/sample:1`);
    const missing = await build(`FROM ${reg.host}/base/nothing:1\n`);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toContain(`FROM ${reg.host}/base/nothing:1: not in the store, and the pull failed`);
  });

  it('ADD of a URL needs --allow-network; with it the file is fetched, named, 600, with Last-Modified', async () => {
    const df = `FROM ${reg.host}/base/sample:1\nADD ${base}/files/data.txt /srv/\n`;
    const before = requests;
    const refused = await build(df);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain('a build reaches the network only with --allow-network');
    expect(requests).toBe(before);
    const r = await build(df, ['--allow-network', '-t', 'added:1']);
    expect(r.code, r.stderr).toBe(0);
    const look = await cli(root, ['run', '--rm', 'added:1', 'sh', '-c', 'stat -c "%a %u:%g %Y" /srv/data.txt; cat /srv/data.txt']);
    expect(look.stdout).toBe(`600 0:0 ${Date.parse(LAST_MODIFIED) / 1000}\nremote content v1\n`);
  });

  it('--checksum verifies the download: a match builds (and caches), a mismatch fails and leaves nothing', async () => {
    const good = await build(`FROM ${reg.host}/base/sample:1\nADD --checksum=${sha(body)} ${base}/files/data.txt /data\n`, ['--allow-network']);
    expect(good.code, good.stderr).toBe(0);
    const cached = await build(`FROM ${reg.host}/base/sample:1\nADD --checksum=${sha(body)} ${base}/files/data.txt /data\n`, ['--allow-network']);
    expect(steps(cached.stderr)).toEqual(['#2 CACHED']);
    const entries = (await readdir(join(root, 'build-cache', 'entries'))).length;
    const wrong = sha('something else');
    const bad = await build(`FROM ${reg.host}/base/sample:1\nADD --checksum=${wrong} ${base}/files/data.txt /data\n`, ['--allow-network']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain(`checksum mismatch: expected ${wrong}, got ${sha(body)}`);
    expect((await readdir(join(root, 'build-cache', 'entries'))).length).toBe(entries);
    // No download or container is left behind.
    expect((await readdir(join(root, 'build-cache'))).filter((n) => n.startsWith('tmp-'))).toEqual([]);
    expect(await readdir(join(root, 'containers')).catch(() => [])).toEqual([]);
    expect(unionMounts().filter((m) => m.mountpoint.startsWith(root))).toEqual([]);
    const notFound = await build(`FROM ${reg.host}/base/sample:1\nADD ${base}/files/missing.txt /m\n`, ['--allow-network']);
    expect(notFound.stderr).toContain('the server answered 404');
  });

  it('a changed remote file misses at its ADD and the miss names the URL', async () => {
    const df = `FROM ${reg.host}/base/sample:1\nADD ${base}/files/data.txt /srv/\n`;
    expect(steps((await build(df, ['--allow-network'])).stderr)).toEqual(['#2 CACHED']);
    body = 'remote content v2\n';
    const r = await build(df, ['--allow-network']);
    expect(r.code, r.stderr).toBe(0);
    expect(steps(r.stderr), r.stderr).toEqual([`#2 MISS: source files differ (changed: ${base}/files/data.txt)`]);
  });
});
