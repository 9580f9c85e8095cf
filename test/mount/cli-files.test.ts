/**
 * Files in and out of containers and images with the built CLI (issue 16): `cp` both ways
 * through the union (copy-up, layer caches untouched) with the docker cp symlink escapes
 * as tests, `export`/`import` round trips, `system df`, and `push --compress` of an image
 * whose layers are stored as plain tar (a docker-archive), against a real registry.
 */
import { execFile } from 'node:child_process';
import { mkdir, readdir, readFile, readlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { REPO, cli, cliOk } from '../helpers/cli.js';
import { unionMounts } from '../helpers/mounts.js';
import { skopeoCopy, startRegistry, type Registry } from '../helpers/registry.js';
import { treeHashes } from '../helpers/sample-image.js';
import { tempDir } from '../helpers/temp.js';

const exec = promisify(execFile);

describe.skipIf(!inject('canMount'))('cp, export, import, system df, push --compress', () => {
  let work: string;
  let root: string;

  beforeAll(async () => {
    work = await tempDir();
    root = join(work, 'store');
    await exec(join(REPO, 'scripts', 'make-sample-image'), [join(work, 'oci')]);
    await cliOk(root, ['load', '-i', join(work, 'oci'), '--name', 'sample']);
  });

  afterAll(async () => {
    for (const name of (await cli(root, ['ps', '-a', '--format', '{{.Names}}'])).stdout.split('\n').filter(Boolean)) await cli(root, ['rm', '-f', name]);
  });

  it("cp resolves the container's symlinks inside its root, never on the host (the docker cp CVEs)", async () => {
    const host = join(work, 'host');
    await mkdir(join(host, 'target'), { recursive: true });
    await writeFile(join(host, 'secret'), 'host secret\n');
    // The container plants absolute and climbing symlinks at host paths, and its own decoys there.
    await cliOk(root, ['run', '--name', 'evil', 'sample', 'sh', '-c', [
      'ln -s / /escape', `ln -s ${host}/target /link`, 'ln -s ../../../../../../../.. /up',
      `mkdir -p ${host}/target`, `echo container decoy > ${host}/secret`,
    ].join('; ')]);
    const out = join(work, 'out');
    await mkdir(out);
    for (const src of [`/escape${host}/secret`, `/up${host}/secret`, `/up/up/escape/up${host}/secret`]) {
      await cliOk(root, ['cp', `evil:${src}`, join(out, 'got')]);
      expect(await readFile(join(out, 'got'), 'utf8'), src).toBe('container decoy\n');
    }
    // Into the container through a symlink to a host path: lands in the container's copy of that path.
    await writeFile(join(work, 'payload'), 'payload\n');
    await cliOk(root, ['cp', join(work, 'payload'), 'evil:/link/']);
    expect(await readdir(join(host, 'target'))).toEqual([]);
    expect((await cliOk(root, ['cp', `evil:${host}/target/payload`, '-'])).length).toBeGreaterThan(0);
    await cliOk(root, ['cp', 'evil:/link/payload', join(out, 'payload')]);
    expect(await readFile(join(out, 'payload'), 'utf8')).toBe('payload\n');
    // The last component of SRC is copied as it is: a symlink, not what it points at; -L follows it inside the container.
    await cliOk(root, ['cp', 'evil:/escape', join(out, 'esc')]);
    expect(await readlink(join(out, 'esc'))).toBe('/');
    await cliOk(root, ['cp', '-L', 'evil:/link', join(out, 'linked')]);
    expect(await readdir(join(out, 'linked'))).toEqual(['payload']);
    expect(await readFile(join(host, 'secret'), 'utf8')).toBe('host secret\n');
    await cliOk(root, ['rm', 'evil']);
  });

  it('cp both ways goes through the union: copy-up of image files, layer caches untouched, a tar stream each way', async () => {
    const before = await treeHashes(join(root, 'layers'));
    await cliOk(root, ['run', '--name', 'files', 'sample', 'true']);
    const src = join(work, 'src');
    await mkdir(join(src, 'sub'), { recursive: true });
    await writeFile(join(src, 'sub', 'a.txt'), 'A\n');
    await writeFile(join(work, 'motd'), 'replaced motd\n');
    await cliOk(root, ['cp', join(work, 'motd'), 'files:/etc/motd']);
    await cliOk(root, ['cp', src, 'files:/root']);
    await cliOk(root, ['cp', `${src}/.`, 'files:/newdir']);
    expect(await cliOk(root, ['diff', 'files'])).toBe('C /etc\nC /etc/motd\nA /newdir\nA /newdir/sub\nA /newdir/sub/a.txt\nC /root\nA /root/src\nA /root/src/sub\nA /root/src/sub/a.txt\n');
    expect(await treeHashes(join(root, 'layers'))).toEqual(before);
    const back = join(work, 'back');
    await cliOk(root, ['cp', 'files:/root/src', back]);
    expect(await readFile(join(back, 'sub', 'a.txt'), 'utf8')).toBe('A\n');
    // Tar streams: out of the container, and back in under another folder.
    const tar = (await exec(process.execPath, [join(REPO, 'dist', 'cli', 'main.js'), '--root', root, 'cp', 'files:/etc/motd', '-'], { encoding: 'buffer' })).stdout;
    const r = await cli(root, ['cp', '-', 'files:/tmp'], tar);
    expect(r.code).toBe(0);
    await cliOk(root, ['cp', 'files:/tmp/motd', join(work, 'motd-back')]);
    expect(await readFile(join(work, 'motd-back'), 'utf8')).toBe('replaced motd\n');
    const bad = await cli(root, ['cp', 'files:/nope', join(work, 'x')]);
    expect([bad.code, bad.stderr]).toEqual([1, 'layerfs: no such file or directory in the container: /nope\n']);
    expect((await cli(root, ['cp', 'a', 'b'])).code).toBe(2);
    // A running container is frozen while cp works, and runs on after it.
    await cliOk(root, ['rm', 'files']);
    await cliOk(root, ['run', '-d', '--name', 'live', 'sample', 'sh', '-c', 'while true; do date > /tmp/now; sleep 0.2; done']);
    await cliOk(root, ['cp', join(work, 'motd'), 'live:/root/m']);
    expect((await cliOk(root, ['exec', 'live', 'cat', '/root/m']))).toBe('replaced motd\n');
    expect((await cliOk(root, ['inspect', '-f', '{{.State.Status}}', 'live'])).trim()).toBe('running');
    await cliOk(root, ['rm', '-f', 'live']);
  });

  it('export writes the merged rootfs; import makes a one-layer image of it that runs the same', async () => {
    await cliOk(root, ['run', '--name', 'exp', 'sample', 'sh', '-c', 'echo exported > /root/x; rm /app/hello.txt']);
    const file = join(work, 'exp.tar');
    await cliOk(root, ['export', '-o', file, 'exp']);
    const names = (await exec('tar', ['-tf', file], { maxBuffer: 16 << 20 })).stdout.split('\n');
    expect(names).toContain('./root/x');
    expect(names).not.toContain('./app/hello.txt');
    expect(names.some((n) => n.includes('.wh.'))).toBe(false);
    const id = (await cliOk(root, ['import', file, 'imported:1', '-c', 'CMD ["cat", "/root/x"]', '-m', 'from export'])).trim();
    expect(id).toMatch(/^sha256:[0-9a-f]{64}$/);
    const [info] = JSON.parse(await cliOk(root, ['inspect', 'imported:1'])) as Array<{ RootFS: { Layers: string[] }; Config: { Cmd: string[] } }>;
    expect(info!.RootFS.Layers).toHaveLength(1);
    expect(info!.Config.Cmd).toEqual(['cat', '/root/x']);
    expect((await cli(root, ['run', '--rm', 'imported:1'])).stdout).toBe('exported\n');
    expect(await cliOk(root, ['history', 'imported:1'])).toMatch(/layerfs import\s.*from export/);
    // From stdin, gzipped.
    const gz = (await exec('gzip', ['-c', file], { encoding: 'buffer', maxBuffer: 64 << 20 })).stdout;
    const r = await cli(root, ['import', '-', 'imported:gz'], gz);
    expect(r.code).toBe(0);
    const [gzInfo] = JSON.parse(await cliOk(root, ['inspect', 'imported:gz'])) as Array<{ RootFS: { Layers: string[] } }>;
    expect(gzInfo!.RootFS.Layers).toEqual(info!.RootFS.Layers);
    const empty = await cli(root, ['import', '-', 'x:1'], Buffer.alloc(0));
    expect(empty.code).toBe(1);
    expect(await readdir(join(root, 'downloads')).catch(() => [])).toEqual([]);
    await cliOk(root, ['rm', 'exp']);
    await cliOk(root, ['rmi', 'imported:1', 'imported:gz']);
  });

  it('system df counts images, layer caches, blobs, containers and build cache, and what is reclaimable', async () => {
    const df = async (): Promise<Record<string, { TotalCount: number; Active: number; Size: number; Reclaimable: number }>> =>
      Object.fromEntries((JSON.parse(await cliOk(root, ['system', 'df', '--json'])) as Array<{ Type: string; TotalCount: number; Active: number; Size: number; Reclaimable: number }>).map((r) => [r.Type, r]));
    const a = await df();
    expect(a.Images).toMatchObject({ TotalCount: 1, Active: 0 });
    expect(a.Images!.Reclaimable).toBe(a.Images!.Size);
    expect(a['Layer caches']!.TotalCount).toBe(3);
    expect(a.Blobs!.TotalCount).toBeGreaterThanOrEqual(4);
    expect(a.Containers).toMatchObject({ TotalCount: 0, Size: 0 });
    await cliOk(root, ['run', '--name', 'big', 'sample', 'sh', '-c', 'head -c 1000000 /dev/zero > /root/big']);
    const b = await df();
    expect(b.Images).toMatchObject({ Active: 1, Reclaimable: 0 });
    expect(b.Containers).toMatchObject({ TotalCount: 1, Active: 0 });
    expect(b.Containers!.Size).toBeGreaterThanOrEqual(1_000_000);
    expect(b.Containers!.Reclaimable).toBe(b.Containers!.Size);
    const text = await cliOk(root, ['system', 'df']);
    expect(text.split('\n')[0]).toMatch(/^TYPE\s+TOTAL\s+ACTIVE\s+SIZE\s+RECLAIMABLE$/);
    expect(text).toMatch(/^Containers\s+1\s+0\s+1\.\d+MB\s+1\.\d+MB \(100%\)$/m);
    await cliOk(root, ['rm', 'big']);
    // The build cache's size is the layers its entries keep, not its small records.
    expect(b['Build cache']).toMatchObject({ TotalCount: 0, Size: 0 });
    const built = await cli(root, ['build', '--progress', 'plain', '-t', 'df:built', '-'], Buffer.from('FROM sample\nRUN head -c 2000000 /dev/urandom > /big\n'));
    expect(built.code, built.stderr).toBe(0);
    const c = await df();
    expect(c['Build cache']!.TotalCount).toBeGreaterThanOrEqual(1);
    expect(c['Build cache']!.Size).toBeGreaterThanOrEqual(2_000_000);
    await cliOk(root, ['rmi', 'df:built']);
  });

  describe('push --compress', () => {
    let reg: Registry;
    let dock: string;

    beforeAll(async () => {
      reg = await startRegistry(join(work, 'registry'));
      // A docker-archive keeps layers as plain tar: loaded as such, stored as such.
      await skopeoCopy(`oci:${join(work, 'oci')}:latest`, `docker-archive:${join(work, 'docker.tar')}:plain:1`);
      dock = join(work, 'dock-store');
      await cliOk(dock, ['load', '-i', join(work, 'docker.tar')]);
    });

    afterAll(async () => {
      await reg?.stop();
    });

    const manifestOf = async (ref: string): Promise<{ mediaType: string; layers: Array<{ mediaType: string; size: number; digest: string }> }> =>
      JSON.parse((await exec('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${ref}`])).stdout) as never;

    it('gzips plain tar layers by default (media types to match), with stable digests, and pulls back to the same image', async () => {
      const stored = JSON.parse(await cliOk(dock, ['inspect', 'plain:1'])) as Array<{ Id: string; Store: { Layers: Array<{ ID: string; Size: number }> } }>;
      const out = await cliOk(dock, ['push', 'plain:1', `${reg.host}/gz:1`]);
      const ids = stored[0]!.Store.Layers.map((l) => l.ID);
      for (const id of ids) expect(out).toMatch(new RegExp(`^${id}: Compressing$`, 'm'));
      for (const id of ids) expect(out).toMatch(new RegExp(`^${id}: Pushed$`, 'm'));
      const digest = /^1: digest: (sha256:[0-9a-f]{64}) /m.exec(out)![1]!;
      const m = await manifestOf(`${reg.host}/gz:1`);
      expect(m.mediaType).toBe('application/vnd.docker.distribution.manifest.v2+json');
      for (const l of m.layers) expect(l.mediaType).toBe('application/vnd.docker.image.rootfs.diff.tar.gzip');
      // Pushed again (to another tag): the same compressed blobs, the same manifest digest.
      const again = await cliOk(dock, ['push', 'plain:1', `${reg.host}/gz:2`]);
      expect(again).toContain(`2: digest: ${digest} `);
      expect(again.match(/: Layer already exists$/gm)).toHaveLength(ids.length);
      const back = join(work, 'gz-back');
      const pulled = await cliOk(back, ['pull', `${reg.host}/gz:1`]);
      for (const id of ids) expect(pulled).toMatch(new RegExp(`^${id}: Pull complete$`, 'm'));
      const [b] = JSON.parse(await cliOk(back, ['inspect', `${reg.host}/gz:1`])) as Array<{ Id: string }>;
      expect(b!.Id).toBe(stored[0]!.Id);
    });

    it('--compress none sends the tar as stored; --compress zstd makes an OCI manifest with zstd layers', async () => {
      await cliOk(dock, ['push', '--compress', 'none', 'plain:1', `${reg.host}/raw:1`]);
      const raw = await manifestOf(`${reg.host}/raw:1`);
      for (const l of raw.layers) expect(l.mediaType).toBe('application/vnd.docker.image.rootfs.diff.tar');
      await cliOk(dock, ['push', '--compress', 'zstd', 'plain:1', `${reg.host}/zst:1`]);
      const z = await manifestOf(`${reg.host}/zst:1`);
      expect(z.mediaType).toBe('application/vnd.oci.image.manifest.v1+json');
      for (const [i, l] of z.layers.entries()) {
        expect(l.mediaType).toBe('application/vnd.oci.image.layer.v1.tar+zstd');
        expect(l.size).toBeLessThan(raw.layers[i]!.size);
      }
      const back = join(work, 'zst-back');
      await cliOk(back, ['pull', `${reg.host}/zst:1`]);
      const ids = await Promise.all([dock, back].map(async (r, i) => (JSON.parse(await cliOk(r, ['inspect', i ? `${reg.host}/zst:1` : 'plain:1'])) as Array<{ Id: string }>)[0]!.Id));
      expect(ids[1]).toBe(ids[0]);
      const bad = await cli(dock, ['push', '--compress', 'lz4', 'plain:1', `${reg.host}/x:1`]);
      expect([bad.code, bad.stderr]).toEqual([2, 'layerfs: invalid --compress "lz4": expected gzip, zstd or none\n']);
    });
  });

  it('leaves no mounts of its own', () => {
    expect(unionMounts().filter((m) => m.mountpoint.startsWith(work))).toEqual([]);
  });
});
