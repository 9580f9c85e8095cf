/**
 * `layerfs pull` against the real distribution registry on loopback (plain HTTP): images
 * pushed with skopeo, pulled with layerfs, compared with `skopeo copy` of the same
 * reference into an OCI layout loaded by `layerfs load`; layers the store has are not
 * downloaded again; multi-platform indexes; pull by digest.
 */
import { execFile, spawn } from 'node:child_process';
import { gunzipSync } from 'node:zlib';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, cliOk, LAYERFS, REPO } from '../helpers/cli.js';
import { skopeoCopy, startProxy, startRegistry, type Registry } from '../helpers/registry.js';
import { tempDir } from '../helpers/temp.js';

const run = promisify(execFile);
const sha = (b: Buffer | string): string => 'sha256:' + createHash('sha256').update(b).digest('hex');

interface Inspected {
  Id: string;
  RepoTags: string[];
  RootFS: { Layers: string[] };
  Architecture: string;
}

async function inspect(root: string, ref: string): Promise<Inspected> {
  const v = JSON.parse(await cliOk(root, ['inspect', ref])) as Inspected[] | Inspected;
  return Array.isArray(v) ? v[0]! : v;
}

/** PUTs a blob into the registry monolithically (test setup only, not the code under test). */
async function putBlob(host: string, repo: string, bytes: Buffer): Promise<string> {
  const digest = sha(bytes);
  const post = await fetch(`http://${host}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  const loc = new URL(post.headers.get('location')!, `http://${host}`);
  loc.searchParams.set('digest', digest);
  const put = await fetch(loc, { method: 'PUT', body: new Uint8Array(bytes), headers: { 'Content-Type': 'application/octet-stream' } });
  if (put.status !== 201) throw new Error(`blob PUT ${put.status}`);
  return digest;
}

async function putManifest(host: string, repo: string, ref: string, bytes: Buffer, type: string): Promise<string> {
  const r = await fetch(`http://${host}/v2/${repo}/manifests/${ref}`, { method: 'PUT', body: new Uint8Array(bytes), headers: { 'Content-Type': type } });
  if (r.status !== 201) throw new Error(`manifest PUT ${r.status}: ${await r.text()}`);
  return sha(bytes);
}

/** Pushes the layout's image with its layers decompressed or recompressed with zstd. */
async function pushRecompressed(host: string, layout: string, repo: string, kind: 'none' | 'zstd'): Promise<void> {
  const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
  const blob = (d: string): Promise<Buffer> => readFile(join(layout, 'blobs', 'sha256', d.slice(7)));
  const manifest = JSON.parse((await blob(index.manifests[0]!.digest)).toString()) as { config: { digest: string }; layers: { mediaType: string; digest: string; size: number }[] };
  for (const l of manifest.layers) {
    let bytes: Buffer = gunzipSync(await blob(l.digest));
    if (kind === 'zstd') bytes = (await runBuffer('zstd', ['-q', '-c'], bytes));
    l.digest = await putBlob(host, repo, bytes);
    l.size = bytes.length;
    l.mediaType = kind === 'zstd' ? 'application/vnd.oci.image.layer.v1.tar+zstd' : 'application/vnd.oci.image.layer.v1.tar';
  }
  await putBlob(host, repo, await blob(manifest.config.digest));
  await putManifest(host, repo, '1', Buffer.from(JSON.stringify(manifest)), 'application/vnd.oci.image.manifest.v1+json');
}

function runBuffer(cmd: string, args: string[], input: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'inherit'] });
    const chunks: Buffer[] = [];
    p.stdout.on('data', (c: Buffer) => chunks.push(c));
    p.on('error', reject);
    p.on('close', (code) => (code === 0 ? resolve(Buffer.concat(chunks)) : reject(new Error(`${cmd} exited ${code}`))));
    p.stdin.end(input);
  });
}

describe('layerfs pull from a plain loopback registry', () => {
  let work: string;
  let reg: Registry;

  beforeAll(async () => {
    work = await tempDir();
    await run(join(REPO, 'scripts', 'make-sample-image'), [join(work, 'oci')]);
    reg = await startRegistry(join(work, 'registry'));
    await skopeoCopy(`oci:${join(work, 'oci')}:latest`, `docker://${reg.host}/sample:1`);
  });

  afterAll(async () => {
    await reg?.stop();
  });

  it('stores the same image id, layers and manifest as skopeo copy + layerfs load', async () => {
    const root = join(work, 'pull-1');
    const out = await cliOk(root, ['pull', `${reg.host}/sample:1`]);
    expect(out).toMatch(/^1: Pulling from 127\.0\.0\.1:\d+\/sample$/m);
    expect(out).toMatch(/^[0-9a-f]{12}: Pulling fs layer$/m);
    expect(out).toMatch(/^[0-9a-f]{12}: Download complete$/m);
    expect(out.match(/: Pull complete$/gm)).toHaveLength(3);
    expect(out).toMatch(/^Digest: sha256:[0-9a-f]{64}$/m);
    expect(out).toMatch(new RegExp(`^Status: Downloaded newer image for ${reg.host.replace(/\./g, '\\.')}/sample:1$`, 'm'));

    await skopeoCopy(`docker://${reg.host}/sample:1`, `oci:${join(work, 'copy')}:1`);
    const root2 = join(work, 'load-1');
    await cliOk(root2, ['load', '-i', join(work, 'copy'), '--name', `${reg.host}/sample`]);
    const pulled = await inspect(root, `${reg.host}/sample:1`);
    const loaded = await inspect(root2, `${reg.host}/sample:1`);
    expect(pulled.Id).toBe(loaded.Id);
    expect(pulled.RootFS.Layers).toEqual(loaded.RootFS.Layers);
    expect(pulled.RootFS.Layers).toHaveLength(3);
    // The manifest digest printed is the registry's, and the stored manifest is those bytes.
    const digest = /^Digest: (sha256:[0-9a-f]{64})$/m.exec(out)![1]!;
    const index = JSON.parse(await readFile(join(work, 'copy', 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
    expect(index.manifests[0]!.digest).toBe(digest);
    expect(sha(await readFile(join(root, 'blobs', 'sha256', digest.slice(7))))).toBe(digest);
    // The files are there: the image mounts' lowerdirs hold busybox.
    const { stdout } = await run('sh', ['-c', `ls ${root}/layers/*/diff/bin/busybox`]);
    expect(stdout.trim()).not.toBe('');
  });

  it('does not download layers the store already has', async () => {
    const root = join(work, 'pull-2');
    await cliOk(root, ['pull', `${reg.host}/sample:1`]);
    const again = await cliOk(root, ['pull', `${reg.host}/sample:1`]);
    expect(again.match(/: Already exists$/gm)).toHaveLength(3);
    expect(again).not.toMatch(/Downloading/);
    expect(again).toMatch(/^Status: Image is up to date for /m);
    // Another tag of the same image: nothing downloaded either.
    await skopeoCopy(`docker://${reg.host}/sample:1`, `docker://${reg.host}/other:2`);
    const other = await cliOk(root, ['pull', '--jobs', '1', `${reg.host}/other:2`]);
    expect(other.match(/: Already exists$/gm)).toHaveLength(3);
    expect((await inspect(root, `${reg.host}/other:2`)).Id).toBe((await inspect(root, `${reg.host}/sample:1`)).Id);
  });

  it('pulls by digest and verifies it', async () => {
    const root = join(work, 'pull-3');
    const first = await cliOk(root, ['pull', `${reg.host}/sample:1`]);
    const digest = /^Digest: (sha256:[0-9a-f]{64})$/m.exec(first)![1]!;
    const root2 = join(work, 'pull-3b');
    const out = await cliOk(root2, ['pull', '--jobs', '1', `${reg.host}/sample@${digest}`]);
    // One download at a time: the other two layers wait.
    expect(out.match(/: Waiting$/gm)).toHaveLength(2);
    expect(out).toContain(`Status: Downloaded newer image for ${reg.host}/sample@${digest}`);
    expect((await inspect(root2, `${reg.host}/sample@${digest}`)).Id).toBe((await inspect(root, `${reg.host}/sample:1`)).Id);
  });

  it('picks the requested platform from a multi-platform index and lists the platforms it has', async () => {
    // An arm64 twin of the sample: same layers, a config saying arm64.
    const root = join(work, 'pull-4');
    await cliOk(root, ['pull', `${reg.host}/sample:1`]);
    const res = await fetch(`http://${reg.host}/v2/sample/manifests/1`, { headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' } });
    const amdManifest = Buffer.from(await res.arrayBuffer());
    const m = JSON.parse(amdManifest.toString()) as { config: { digest: string; size: number; mediaType: string } };
    const cfgRes = await fetch(`http://${reg.host}/v2/sample/blobs/${m.config.digest}`);
    const cfg = JSON.parse(Buffer.from(await cfgRes.arrayBuffer()).toString()) as Record<string, unknown>;
    const armConfig = Buffer.from(JSON.stringify({ ...cfg, architecture: 'arm64', variant: 'v8' }));
    const armConfigDigest = await putBlob(reg.host, 'multi', armConfig);
    const armManifest = Buffer.from(JSON.stringify({ ...JSON.parse(amdManifest.toString()), config: { ...m.config, digest: armConfigDigest, size: armConfig.length } }));
    await skopeoCopy(`docker://${reg.host}/sample:1`, `docker://${reg.host}/multi:amd`);
    const type = 'application/vnd.oci.image.manifest.v1+json';
    const armDigest = await putManifest(reg.host, 'multi', 'arm', armManifest, type);
    const index = Buffer.from(JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [
        { mediaType: type, digest: sha(amdManifest), size: amdManifest.length, platform: { os: 'linux', architecture: 'amd64' } },
        { mediaType: type, digest: armDigest, size: armManifest.length, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
      ],
    }));
    const indexDigest = await putManifest(reg.host, 'multi', 'both', index, 'application/vnd.oci.image.index.v1+json');

    const out = await cliOk(root, ['pull', '--platform', 'linux/arm64', `${reg.host}/multi:both`]);
    expect(out).toContain(`Digest: ${indexDigest}`);
    expect(out.match(/: Already exists$/gm)).toHaveLength(3);
    const img = await inspect(root, `${reg.host}/multi:both`);
    expect(img.Id).toBe(armConfigDigest);
    expect(img.Architecture).toBe('arm64');
    const amd = await cliOk(root, ['pull', '--platform', 'linux/amd64', `${reg.host}/multi:both`]);
    expect(amd).toContain('Status: Downloaded newer image');
    expect((await inspect(root, `${reg.host}/multi:both`)).Id).toBe(m.config.digest);

    const before = await cliOk(root, ['images', '--json']);
    const missing = await cli(root, ['pull', '--platform', 'linux/s390x', `${reg.host}/multi:both`]);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toMatch(/^layerfs: .*no image for platform linux\/s390x \(available: linux\/amd64, linux\/arm64\/v8\)$/m);
    expect(await cliOk(root, ['images', '--json'])).toBe(before);
  });

  it('pulls Docker schema2 manifests, zstd and uncompressed layers, and follows blob redirects', async () => {
    await cliOk(join(work, 'want'), ['load', '-i', join(work, 'oci'), '--name', 'want']);
    const want = await inspect(join(work, 'want'), 'want:latest');
    // Docker schema2, gzip layers.
    await skopeoCopy(`oci:${join(work, 'oci')}:latest`, `docker://${reg.host}/v2s2:1`, ['--format', 'v2s2']);
    const root = join(work, 'pull-5');
    await cliOk(root, ['pull', `${reg.host}/v2s2:1`]);
    const v2 = await inspect(root, `${reg.host}/v2s2:1`);
    expect(v2.Id).toBe(want.Id);
    const stored = (await run('sh', ['-c', `cat ${root}/blobs/sha256/* | grep -a -o 'application/vnd.docker.distribution.manifest.v2+json' | head -1`])).stdout.trim();
    expect(stored).toBe('application/vnd.docker.distribution.manifest.v2+json');
    // Uncompressed and zstd layers, pushed blob by blob (skopeo 1.9 reuses the gzip blobs).
    for (const [repo, kind] of [['plain', 'none'], ['zstd', 'zstd']] as const) {
      await pushRecompressed(reg.host, join(work, 'oci'), repo, kind);
      const r = join(work, `pull-${repo}`);
      const out = await cliOk(r, ['pull', `${reg.host}/${repo}:1`]);
      expect(out.match(/: Pull complete$/gm)).toHaveLength(3);
      const got = await inspect(r, `${reg.host}/${repo}:1`);
      expect(got.Id).toBe(want.Id);
      expect(got.RootFS.Layers).toEqual(want.RootFS.Layers);
    }
    // Blob storage behind a redirect.
    const proxy = await startProxy(reg.host);
    try {
      proxy.mode = { kind: 'redirect-blobs', to: reg.host };
      const rr = join(work, 'pull-8');
      await cliOk(rr, ['pull', `${proxy.host}/sample:1`]);
      expect((await inspect(rr, `${proxy.host}/sample:1`)).Id).toBe(want.Id);
      expect(proxy.requests.filter((r) => r.startsWith('GET /v2/sample/blobs/')).length).toBe(4);
    } finally {
      await proxy.close();
    }
  });

  it('draws a progress bar per layer on a terminal', async () => {
    const root = join(work, 'pull-tty');
    // `script` gives the CLI a pseudo-terminal as stdout.
    const cmd = [process.execPath, LAYERFS, '--root', root, 'pull', `${reg.host}/sample:1`].map((a) => `'${a}'`).join(' ');
    const { stdout } = await run('script', ['-qec', cmd, '/dev/null']);
    expect(stdout).toMatch(/[0-9a-f]{12}: Downloading \[[=> ]{40}\] \S+\/\S+ \S+\/s ETA \d+s/);
    expect(stdout).toContain('\x1b[2K');
    expect(stdout).toMatch(/Status: Downloaded newer image/);
  });

  it('two pulls of the same image at once both succeed and store it once', async () => {
    const root = join(work, 'pull-concurrent');
    await skopeoCopy(`docker://${reg.host}/sample:1`, `docker://${reg.host}/other:2`);
    const [a, b] = await Promise.all([cli(root, ['pull', `${reg.host}/sample:1`]), cli(root, ['pull', `${reg.host}/other:2`])]);
    expect(a.code, a.stderr).toBe(0);
    expect(b.code, b.stderr).toBe(0);
    const images = JSON.parse(await cliOk(root, ['images', '--json'])) as unknown[];
    expect(images.length).toBeGreaterThanOrEqual(1);
    expect((await inspect(root, `${reg.host}/other:2`)).Id).toBe((await inspect(root, `${reg.host}/sample:1`)).Id);
    const { stdout } = await run('sh', ['-c', `ls ${root}/image/layerdb/sha256 | wc -l`]);
    expect(stdout.trim()).toBe('3');
  });
});
