/**
 * No other local user reaches the store (issue 18, point 2; Docker's CVE-2021-41091): a
 * real uid-1000 process (node spawned with uid/gid) tries to execute an image's setuid-root
 * binary from its layer cache and from a running container's rootfs under
 * `containers/<id>/merged`, and to read a blob. With the store opened up as it used to be
 * (0755) the setuid binary gives it euid 0 — proving the probe can see the hole — and after
 * the next command has tightened the store, every attempt fails with EACCES.
 */
import { spawn } from 'node:child_process';
import { chmod, readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { layerfs, makeTar, writeOciLayout } from '../helpers/images.js';
import { tempDir } from '../helpers/temp.js';

const UID = 1000;

/** What the uid-1000 probe saw for each path: stdout of `suid-id -u`, or the errno. */
type Seen = Record<string, string>;

const PROBE = `
const { spawnSync } = require('node:child_process');
const { readFileSync } = require('node:fs');
const out = {};
for (const p of JSON.parse(process.argv[1])) {
  if (p.endsWith('/suid-id')) {
    const r = spawnSync(p, ['-u'], { encoding: 'utf8' });
    out[p] = r.error ? r.error.code : 'euid=' + r.stdout.trim();
  } else {
    try { readFileSync(p); out[p] = 'read'; } catch (e) { out[p] = e.code; }
  }
}
process.stdout.write(JSON.stringify(out));
`;

let work: string;
let image: string;

/** Runs the probe as uid/gid 1000 (a real second user, not a simulated check). */
async function asUser(paths: string[]): Promise<Seen> {
  const p = spawn(process.execPath, ['-e', PROBE, JSON.stringify(paths)], { uid: UID, gid: UID, cwd: '/', stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  p.stdout.on('data', (d) => (out += d));
  p.stderr.on('data', (d) => (err += d));
  const code = await new Promise((r) => p.on('close', r));
  if (code !== 0) throw new Error(`probe failed (${String(code)}): ${err}`);
  return JSON.parse(out) as Seen;
}

async function ok(root: string, args: string[]): Promise<string> {
  const r = await layerfs(root, args);
  if (r.code !== 0) throw new Error(`layerfs ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}

/** Opens the store up the way stores were before this change (0755 everywhere). */
async function openUp(root: string, extra: string[] = []): Promise<void> {
  for (const d of [root, join(root, 'layers'), join(root, 'containers'), join(root, 'blobs'), join(root, 'blobs', 'sha256'), ...extra]) await chmod(d, 0o755);
}

const mode = async (p: string): Promise<number> => (await stat(p)).mode & 0o7777;

beforeAll(async () => {
  work = await tempDir('layerfs-perm-');
  // The test folder itself must not be what stops uid 1000.
  await chmod(work, 0o755);
  const tar = await makeTar([
    { name: 'bin/', type: 'directory' },
    { name: 'bin/busybox', data: await readFile('/bin/busybox'), mode: 0o755 },
    { name: 'bin/suid-id', data: await readFile('/usr/bin/id'), mode: 0o4755, uid: 0, gid: 0 },
  ]);
  image = join(work, 'img');
  await writeOciLayout(image, [{ tar }], { tag: 'suid', config: (c) => { (c.config as Record<string, unknown>).Cmd = ['/bin/busybox', 'sleep', '120']; } });
}, 120_000);

describe.skipIf(!inject('canMount'))('store permissions against another local user', () => {
  it('a new store is 0700 (layers, containers too); 0710 set by an admin is kept', async () => {
    const root = join(work, 'fresh');
    await ok(root, ['load', '-i', image, '--name', 'perm']);
    expect(await mode(root)).toBe(0o700);
    expect(await mode(join(root, 'layers'))).toBe(0o700);
    expect(await mode(join(root, 'containers'))).toBe(0o700);
    await chmod(root, 0o710);
    await ok(root, ['images']);
    expect(await mode(root)).toBe(0o710);
  });

  it("uid 1000 cannot execute an image's setuid binary from its layer cache, nor read a blob", async () => {
    const root = join(work, 'layers-store');
    await ok(root, ['load', '-i', image, '--name', 'perm']);
    const [info] = JSON.parse(await ok(root, ['inspect', 'perm:suid'])) as { Store: { Layers: { Diff: string }[] } }[];
    const suid = join(info!.Store.Layers[0]!.Diff, 'bin', 'suid-id');
    const blobs = join(root, 'blobs', 'sha256');
    const blob = join(blobs, (await readdir(blobs))[0]!);
    expect((await stat(suid)).mode & 0o4000).toBe(0o4000);
    await openUp(root);
    // The hole, as it was: uid 1000 gets euid 0.
    expect(await asUser([suid, blob])).toEqual({ [suid]: 'euid=0', [blob]: 'read' });
    await ok(root, ['images']); // any command tightens an existing store
    expect(await asUser([suid, blob])).toEqual({ [suid]: 'EACCES', [blob]: 'EACCES' });
    // Even with the root reopened to 0710 for a group, layers/ stays closed.
    await chmod(root, 0o711);
    await ok(root, ['images']);
    expect(await asUser([suid])).toEqual({ [suid]: 'EACCES' });
  });

  it("uid 1000 cannot execute a setuid binary from a running container's merged rootfs", async () => {
    const root = join(work, 'run-store');
    await ok(root, ['load', '-i', image, '--name', 'perm']);
    const id = (await ok(root, ['run', '-d', '--name', 'held', 'perm:suid'])).trim();
    try {
      const dir = join(root, 'containers', id);
      const suid = join(dir, 'merged', 'bin', 'suid-id');
      expect(await mode(dir)).toBe(0o700);
      await openUp(root, [dir]);
      expect(await asUser([suid])).toEqual({ [suid]: 'euid=0' });
      await ok(root, ['ps']);
      expect(await mode(dir)).toBe(0o700);
      expect(await asUser([suid])).toEqual({ [suid]: 'EACCES' });
    } finally {
      await layerfs(root, ['stop', 'held']);
      await layerfs(root, ['rm', '-f', 'held']);
    }
  });
});
