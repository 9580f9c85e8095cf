/**
 * The management verbs against a real store: images, inspect, history, tag, rmi, prune,
 * save (checked with skopeo and by loading the saved archive again), shared layers, two
 * loads at once, a load killed with SIGKILL, and platform choice from a nested index.
 */
import { spawn } from 'node:child_process';
import { mkdir, readdir, readFile, writeFile, stat } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/temp.js';
import { canonical, flattenedStoreImage, layerfs, makeTar, run, storeCli, writeOciLayout, type RawLayer } from '../helpers/images.js';

let work: string;
let base: RawLayer;
let app: RawLayer;
let other: RawLayer;

/** Two images sharing a base layer. */
let imgA: string;
let imgB: string;

beforeAll(async () => {
  work = await tempDir('layerfs-manage-');
  base = { tar: await makeTar([{ name: 'etc/', type: 'directory' }, { name: 'etc/os-release', data: 'ID=test\n' }, { name: 'big', data: Buffer.alloc(2_000_000, 1) }]) };
  app = { tar: await makeTar([{ name: 'app/', type: 'directory' }, { name: 'app/run', data: '#!/bin/sh\n', mode: 0o755 }]) };
  other = { tar: await makeTar([{ name: 'other', data: 'other' }]), compression: 'zstd' };
  imgA = join(work, 'a');
  imgB = join(work, 'b');
  await writeOciLayout(imgA, [base, app], { tag: 'a', config: (c) => { (c.history as unknown[]).splice(1, 0, { created: '2024-01-02T03:04:05Z', created_by: 'ENV X=1', empty_layer: true }); } });
  await writeOciLayout(imgB, [base, other], { tag: 'b' });
}, 120_000);

async function ok(root: string, args: string[], input?: Buffer): Promise<string> {
  const r = await layerfs(root, args, input);
  expect(r.stderr, `${args.join(' ')}`).toBe('');
  expect(r.code).toBe(0);
  return r.stdout;
}

async function dirCount(dir: string): Promise<number> {
  return (await readdir(dir)).filter((n) => /^[0-9a-f]{64}$/.test(n)).length;
}

describe('image management', () => {
  it('shares base layers between images and says "Already exists"', async () => {
    const root = await tempDir('layerfs-root-');
    const a = await ok(root, ['load', '-i', imgA, '--name', 'test/img']);
    expect(a).toMatch(/: Loaded\n.*: Loaded\nLoaded image: test\/img:a/);
    const b = await ok(root, ['load', '-i', imgB, '--name', 'test/img']);
    expect(b.split('\n')[0]).toMatch(/^[0-9a-f]{12}: Already exists$/);
    expect(b).toMatch(/: Loaded\nLoaded image: test\/img:b/);
    expect(await dirCount(join(root, 'layers'))).toBe(3);
    expect(await dirCount(join(root, 'image', 'layerdb', 'sha256'))).toBe(3);
    const images = await ok(root, ['images']);
    expect(images.split('\n')[0]).toMatch(/^REPOSITORY\s+TAG\s+IMAGE ID\s+CREATED\s+SIZE$/);
    expect(images).toMatch(/test\/img\s+a\s+[0-9a-f]{12}\s+\S.*ago\s+2MB/);
    const json = JSON.parse(await ok(root, ['images', '--json']));
    expect(json.map((i: { Tag: string }) => i.Tag).sort()).toEqual(['a', 'b']);
  });

  it('inspect shows Docker fields, the chain ids and the store paths; layerdb files are Docker-shaped', async () => {
    const root = await tempDir('layerfs-root-');
    await ok(root, ['load', '-i', imgA, '--name', 'test/img']);
    const [info] = JSON.parse(await ok(root, ['inspect', 'test/img:a']));
    expect(info.RepoTags).toEqual(['test/img:a']);
    expect(info.Os).toBe('linux');
    expect(info.Config).toEqual({ Env: ['PATH=/usr/bin'] });
    expect(info.RootFS.Layers).toHaveLength(2);
    const [l0, l1] = info.Store.Layers;
    expect(l0.ChainID).toBe(l0.DiffID);
    const { createHash } = await import('node:crypto');
    expect(l1.ChainID).toBe('sha256:' + createHash('sha256').update(`${l0.ChainID} ${l1.DiffID}`).digest('hex'));
    const dir = join(root, 'image', 'layerdb', 'sha256', l1.ChainID.slice(7));
    expect(await readFile(join(dir, 'diff'), 'utf8')).toBe(l1.DiffID);
    expect(await readFile(join(dir, 'parent'), 'utf8')).toBe(l0.ChainID);
    expect(await readFile(join(dir, 'cache-id'), 'utf8')).toBe(l1.CacheID);
    expect(existsSync(join(root, 'image', 'layerdb', 'sha256', l0.ChainID.slice(7), 'parent'))).toBe(false);
    expect(Number(await readFile(join(dir, 'size'), 'utf8'))).toBe(10);
    const cfg = await readFile(info.Store.Config);
    expect('sha256:' + createHash('sha256').update(cfg).digest('hex')).toBe(info.Id);
    expect((await stat(l1.Diff)).isDirectory()).toBe(true);
    // Lookup by short id and by name@manifest-digest.
    const [byId] = JSON.parse(await ok(root, ['inspect', info.Id.slice(7, 19)]));
    expect(byId.Id).toBe(info.Id);
    const [byDigest] = JSON.parse(await ok(root, ['inspect', info.RepoDigests[0]]));
    expect(byDigest.Id).toBe(info.Id);
  });

  it('history lists entries newest first, empty layers included', async () => {
    const root = await tempDir('layerfs-root-');
    await ok(root, ['load', '-i', imgA, '--name', 'test/img']);
    const out = (await ok(root, ['history', 'test/img:a'])).trim().split('\n');
    expect(out[0]).toMatch(/^IMAGE\s+CREATED\s+CREATED BY\s+SIZE\s+COMMENT$/);
    expect(out).toHaveLength(4);
    expect(out[1]).toMatch(/^[0-9a-f]{12}\s+.*step 1\s+10B/);
    expect(out[2]).toMatch(/^<missing>\s+.*ENV X=1\s+0B/);
    expect(out[3]).toMatch(/^<missing>\s+.*step 0\s+2MB/);
  });

  it('tag, rmi of one tag, rmi refusing while a container uses the image, prune', async () => {
    const root = await tempDir('layerfs-root-');
    await ok(root, ['load', '-i', imgA, '--name', 'test/img']);
    await ok(root, ['load', '-i', imgB, '--name', 'test/img']);
    await ok(root, ['tag', 'test/img:a', 'example.com/copy:1']);
    expect(await ok(root, ['images', 'example.com/copy'])).toMatch(/example\.com\/copy\s+1\s/);
    expect(await ok(root, ['rmi', 'example.com/copy:1'])).toBe('Untagged: example.com/copy:1\n');
    const [a] = JSON.parse(await ok(root, ['inspect', 'test/img:a']));
    // A container record (the supervisor's) naming image a.
    await mkdir(join(root, 'containers', 'c0ffee'), { recursive: true });
    await writeFile(join(root, 'containers', 'c0ffee', 'config.json'), JSON.stringify({ id: 'c0ffee', image: a.Id }));
    const refused = await layerfs(root, ['rmi', 'test/img:a']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^layerfs: image [0-9a-f]{12} is used by container c0ffee\n/);
    // Remove b: its own layer goes, the shared base stays.
    const rm = await ok(root, ['rmi', 'test/img:b']);
    expect(rm).toMatch(/^Untagged: test\/img:b\nDeleted: sha256:[0-9a-f]{64}\nDeleted: sha256:[0-9a-f]{64}\n$/);
    expect(await dirCount(join(root, 'layers'))).toBe(2);
    expect(await dirCount(join(root, 'blobs', 'sha256'))).toBe(3); // a's manifest + 2 layer blobs
    const pr = await ok(root, ['prune']);
    expect(pr).toBe('Total reclaimed space: 0B\n');
    // Forced rmi of an in-use image only untags it; the container keeps its layers.
    expect(await ok(root, ['rmi', '-f', 'test/img:a'])).toBe('Untagged: test/img:a\n');
    expect(await dirCount(join(root, 'layers'))).toBe(2);
    await run('rm', ['-rf', join(root, 'containers', 'c0ffee')]);
    const pruned = JSON.parse(await ok(root, ['prune', '--dangling', '--json']));
    expect(pruned.Deleted).toHaveLength(3); // the image and its two layers
    expect(pruned.SpaceReclaimed).toBeGreaterThan(2_000_000);
    expect(await dirCount(join(root, 'layers'))).toBe(0);
    expect(await dirCount(join(root, 'blobs', 'sha256'))).toBe(0);
  });

  it('save writes a docker-archive skopeo accepts; load → save → load keeps ids and layer digests', async () => {
    const root = await tempDir('layerfs-root-');
    await ok(root, ['load', '-i', imgA, '--name', 'test/img']);
    await ok(root, ['load', '-i', imgB, '--name', 'test/img']);
    const file = join(work, 'saved.tar');
    await ok(root, ['save', '-o', file, 'test/img:a', 'test/img:b']);
    const inspected = JSON.parse(await run('skopeo', ['inspect', `docker-archive:${file}:test/img:b`]));
    const [b] = JSON.parse(await ok(root, ['inspect', 'test/img:b']));
    const manifestB = JSON.parse(await readFile(b.Store.Manifest.Path, 'utf8'));
    // skopeo reads a docker-archive as uncompressed layers, so it lists them by diff_id.
    expect(inspected.Layers).toEqual(b.RootFS.Layers);
    expect(manifestB.layers).toHaveLength(2);
    // skopeo can read every blob of it, too.
    await run('skopeo', ['copy', `docker-archive:${file}:test/img:b`, `oci:${join(work, 'from-save')}:b`]);
    const root2 = await tempDir('layerfs-root-');
    const out = await ok(root2, ['load', '-i', file]);
    expect(out).toContain('Loaded image: test/img:a');
    expect(out).toContain('Loaded image: test/img:b');
    const [b2] = JSON.parse(await ok(root2, ['inspect', 'test/img:b']));
    expect(b2.Id).toBe(b.Id);
    expect(b2.Store.Manifest.Digest).toBe(b.Store.Manifest.Digest);
    expect(b2.Store.Layers.map((l: { Blobs: string[] }) => l.Blobs)).toEqual(b.Store.Layers.map((l: { Blobs: string[] }) => l.Blobs));
    expect(canonical(await flattenedStoreImage(root2, 'test/img:b'))).toEqual(canonical(await flattenedStoreImage(root, 'test/img:b')));
    // And save to stdout.
    const cli = await storeCli();
    const bytes = await new Promise<Buffer>((resolve) => {
      const p = spawn(process.execPath, [cli, '--root', root, 'save', 'test/img:a']);
      const chunks: Buffer[] = [];
      p.stdout.on('data', (d: Buffer) => chunks.push(d));
      p.on('close', () => resolve(Buffer.concat(chunks)));
    });
    const root3 = await tempDir('layerfs-root-');
    expect(await ok(root3, ['load'], bytes)).toContain('Loaded image: test/img:a');
    // A compressed archive (docker save | gzip) loads too, from a file and from stdin.
    const { gzipSync } = await import('node:zlib');
    const gz = join(work, 'saved.tar.gz');
    await writeFile(gz, gzipSync(bytes));
    const root4 = await tempDir('layerfs-root-');
    expect(await ok(root4, ['load', '-i', gz])).toContain('Loaded image: test/img:a');
    expect(await ok(root4, ['load'], gzipSync(bytes))).toContain('Already exists');
  });

  it('two loads at once that share layers both succeed and store the shared layer once', async () => {
    const root = await tempDir('layerfs-root-');
    await storeCli();
    const [ra, rb] = await Promise.all([layerfs(root, ['load', '-i', imgA, '--name', 'test/img']), layerfs(root, ['load', '-i', imgB, '--name', 'test/img'])]);
    expect([ra.code, rb.code, ra.stderr.replace(/Waiting.*\n/, ''), rb.stderr.replace(/Waiting.*\n/, '')]).toEqual([0, 0, '', '']);
    expect((ra.stdout + rb.stdout).match(/Already exists/g)).toHaveLength(1);
    expect(await dirCount(join(root, 'layers'))).toBe(3);
    expect((await ok(root, ['images', '-q'])).trim().split('\n')).toHaveLength(2);
  });

  it('a load killed with SIGKILL leaves nothing a mount could use, and the next command clears it', async () => {
    const root = await tempDir('layerfs-root-');
    const big = join(work, 'big');
    const files = Array.from({ length: 400 }, (_, i) => ({ name: `f${i}`, data: Buffer.alloc(256 * 1024, i) }));
    await writeOciLayout(big, [{ tar: await makeTar(files) }], { tag: 'big' });
    const cli = await storeCli();
    const p = spawn(process.execPath, [cli, '--root', root, 'load', '-i', big, '--name', 'big'], { stdio: 'ignore' });
    // Kill as soon as extraction has started (a staging folder exists), not after a delay.
    for (let i = 0; i < 2000; i++) {
      const names = await readdir(join(root, 'layers')).catch(() => [] as string[]);
      if (names.some((n) => n.startsWith('tmp-'))) break;
      await new Promise((r) => setTimeout(r, 5));
    }
    p.kill('SIGKILL');
    await new Promise((r) => p.on('close', r));
    // Nothing committed: no layerdb entry, so no layer a mount could find.
    expect(await dirCount(join(root, 'image', 'layerdb', 'sha256'))).toBe(0);
    expect(existsSync(join(root, 'lock'))).toBe(true);
    // The next command (even a read-only one) takes over the stale lock and clears leftovers.
    expect(await ok(root, ['images', '-q'])).toBe('');
    expect(existsSync(join(root, 'lock'))).toBe(false);
    expect((await readdir(join(root, 'layers'))).length).toBe(0);
    expect((await readdir(join(root, 'blobs'))).filter((n) => n !== 'sha256')).toEqual([]);
    expect(await ok(root, ['load', '-i', big, '--name', 'big'])).toContain('Loaded image: big:big');
  });

  it('picks the platform from a nested index (default: host), or as asked', async () => {
    const dir = join(work, 'multi');
    const other = process.arch === 'arm64' ? 'amd64' : 'arm64';
    const host = process.arch === 'arm64' ? 'arm64' : 'amd64';
    const a = await writeOciLayout(join(dir), [{ tar: await makeTar([{ name: 'which', data: host }]) }]);
    const b = await writeOciLayout(join(dir), [{ tar: await makeTar([{ name: 'which', data: other }]) }], { config: (c) => { c.architecture = other; if (other === 'arm64') c.variant = 'v8'; } });
    const size = async (d: string): Promise<number> => (await stat(join(dir, 'blobs', 'sha256', d.slice(7)))).size;
    const putJson = async (v: unknown): Promise<{ digest: string; size: number }> => {
      const bytes = Buffer.from(JSON.stringify(v));
      const { createHash } = await import('node:crypto');
      const digest = 'sha256:' + createHash('sha256').update(bytes).digest('hex');
      await writeFile(join(dir, 'blobs', 'sha256', digest.slice(7)), bytes);
      return { digest, size: bytes.length };
    };
    const inner = await putJson({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [
        { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: b.manifest, size: await size(b.manifest), platform: { os: 'linux', architecture: other, ...(other === 'arm64' ? { variant: 'v8' } : {}) } },
        { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: a.manifest, size: await size(a.manifest), platform: { os: 'linux', architecture: host } },
      ],
    });
    const middle = await putJson({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [{ mediaType: 'application/vnd.oci.image.index.v1+json', ...inner }] });
    await writeFile(join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.index.v1+json', ...middle, annotations: { 'org.opencontainers.image.ref.name': 'example.com/multi:1' } }] }));
    const root = await tempDir('layerfs-root-');
    await ok(root, ['load', '-i', dir]);
    const [h] = JSON.parse(await ok(root, ['inspect', 'example.com/multi:1']));
    expect(h.Architecture).toBe(host);
    const root2 = await tempDir('layerfs-root-');
    await ok(root2, ['load', '-i', dir, '--platform', other === 'arm64' ? 'linux/arm64' : 'linux/amd64']);
    const [o] = JSON.parse(await ok(root2, ['inspect', 'example.com/multi:1']));
    expect(o.Architecture).toBe(other);
    const bad = await layerfs(root2, ['load', '-i', dir, '--platform', 'linux/s390x']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^layerfs: no image for platform linux\/s390x in .* \(available: .*linux\/amd64.*\)/);
  });
});
