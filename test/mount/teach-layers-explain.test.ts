/**
 * `layerfs layers` (per-layer added/modified/removed, wasted space, efficiency, --ci
 * thresholds) and `layerfs explain` (which layer serves a path, what it shadows,
 * copy-up, whiteouts and opaque directories) on the sample image and real mounts.
 */
import { spawn } from 'node:child_process';
import { appendFile, copyFile, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { cli, cliOk, LAYERFS, REPO } from '../helpers/cli.js';
import { run } from '../helpers/images.js';
import { storeWithSampleImage } from '../helpers/sample-image.js';
import { tempDir } from '../helpers/temp.js';

interface LayersJson {
  totalBytes: number;
  wastedBytes: number;
  efficiency: number;
  layers: { position: number; createdBy: string; added: string[]; modified: string[]; removed: string[]; bytesWasted: number }[];
  wasted: { path: string; copies: number; wastedBytes: number; deleted: boolean }[];
}

interface ExplainJson {
  exists: boolean;
  servedBy: 'writable layer' | { position: number; createdBy: string } | null;
  upper: { file: string; kind: string; copiedUp: boolean; mtime: string } | null;
  copies: { layer: { position: number }; file: string; kind: string; role: string; why?: string }[];
  markers: { path: string; where: string; what: string }[];
}

const BASE_MOTD = 'Welcome to the layerfs sample image (base layer).\n';
const OS_RELEASE = 'NAME="layerfs sample"\nID=sample\n';

describe.skipIf(!inject('canMount'))('layerfs layers / explain', () => {
  let root: string;
  let work: string;
  let busyboxSize: number;

  beforeAll(async () => {
    ({ work, root } = await storeWithSampleImage());
    busyboxSize = (await stat('/bin/busybox')).size;
  });

  it('layers: what each layer of the sample image adds, modifies and removes, and what is wasted', async () => {
    const a = JSON.parse(await cliOk(root, ['layers', '--json', 'sample'])) as LayersJson;
    expect(a.layers).toHaveLength(3);
    expect(a.layers[0]!.added).toEqual(expect.arrayContaining(['/bin/busybox', '/bin/sh', '/etc/motd', '/etc/os-release', '/etc/passwd']));
    expect(a.layers[1]).toMatchObject({ added: ['/app/hello.txt', '/app/numbers.txt'], modified: ['/etc/motd'], removed: ['/etc/os-release'] });
    expect(a.layers[1]!.createdBy).toMatch(/^RUN rewrite/);
    expect(a.layers[2]).toMatchObject({ added: ['/app/config.ini'], modified: [], removed: [] });
    expect(a.wasted).toEqual([
      { path: '/etc/motd', copies: 2, wastedBytes: BASE_MOTD.length, deleted: false },
      { path: '/etc/os-release', copies: 1, wastedBytes: OS_RELEASE.length, deleted: true },
    ]);
    expect(a.wastedBytes).toBe(BASE_MOTD.length + OS_RELEASE.length);
    expect(a.efficiency).toBeGreaterThan(0.999);
    expect(a.efficiency).toBeLessThan(1);

    const text = await cliOk(root, ['layers', 'sample']);
    expect(text.split('\n')[0]).toMatch(/^#\s+LAYER\s+SIZE\s+ADDED\s+MODIFIED\s+REMOVED\s+CREATED BY$/);
    expect(text).toMatch(/^1\s+[0-9a-f]{12}\s+\S+\s+2\s+1\s+1\s+RUN rewrite/m);
    expect(text).toMatch(/Potential wasted space: 82B/);
    expect(text).toMatch(/^1\s+32B\s+\/etc\/os-release\s+\(deleted\)$/m);
    expect(await cliOk(root, ['layers', '--layer', '1', 'sample'])).toMatch(/A \/app\/hello.txt\nA \/app\/numbers.txt\nC \/etc\/motd\nD \/etc\/os-release\n$/);
  });

  it('layers on a terminal is an interactive tree: switch layers, fold directories, quit', async () => {
    // `script` gives the CLI a pseudo-terminal; keys go in through it.
    const p = spawn('script', ['-q', '-c', `${process.execPath} ${LAYERFS} --root ${root} layers sample`, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((r) => p.on('exit', r));
    const screen = (): string => out.replace(/\x1b\[[0-9;?]*[a-zA-Z]/g, '');
    const waitFor = async (re: RegExp, from: number): Promise<number> => {
      for (let i = 0; i < 400 && !re.test(screen().slice(from)); i++) await new Promise((r) => setTimeout(r, 25));
      expect(screen().slice(from)).toMatch(re);
      return screen().length;
    };
    try {
      let at = await waitFor(/changes in layer 2[\s\S]*config\.ini/, 0);
      p.stdin.write('\x1b[D');
      at = await waitFor(/▶ layer 1 .*RUN rewrite[\s\S]*changes in layer 1[\s\S]*▾ app\/[\s\S]*hello\.txt[\s\S]*C\s+motd[\s\S]*D\s+os-release/, at);
      p.stdin.write(' ');
      await waitFor(/▸ app\/\s+▾ etc\//, at);
      p.stdin.write('q');
      expect(await exited).toBe(0);
    } finally {
      if (p.exitCode === null && p.pid) p.kill('SIGKILL');
    }
  });

  it('layers --ci fails a wasteful image (a rewritten 2 MB binary, a deleted directory) and passes within thresholds', async () => {
    const mnt = join(work, 'fat');
    await mkdir(mnt);
    await cliOk(root, ['mount', '--name', 'fat', 'sample', mnt]);
    try {
      await copyFile('/bin/busybox', join(mnt, 'bin', 'busybox'));
      await rm(join(mnt, 'app'), { recursive: true });
      await cliOk(root, ['commit', 'fat', 'sample:fat']);
    } finally {
      await cliOk(root, ['rm', '-f', 'fat']);
    }
    const a = JSON.parse(await cliOk(root, ['layers', '--json', 'sample:fat'])) as LayersJson;
    expect(a.layers[3]).toMatchObject({ added: [], modified: ['/bin/busybox'], removed: ['/app/config.ini', '/app/hello.txt', '/app/numbers.txt'] });
    expect(a.wasted[0]).toEqual({ path: '/bin/busybox', copies: 2, wastedBytes: busyboxSize, deleted: false });
    expect(a.wasted[1]).toMatchObject({ path: '/app/numbers.txt', deleted: true, wastedBytes: 8893 });
    expect(a.efficiency).toBeLessThan(0.6);

    const fail = await cli(root, ['layers', '--ci', 'sample:fat']);
    expect(fail.code).toBe(1);
    expect(fail.stdout).toMatch(/FAIL: lowestEfficiency/);
    expect(fail.stdout).toMatch(/PASS: highestWastedBytes/);
    expect(fail.stdout).toMatch(/Result: FAIL/);
    const pass = await cli(root, ['layers', '--ci', '--lowest-efficiency', '0.4', '--highest-wasted-bytes', '20MB', 'sample:fat']);
    expect(pass.code).toBe(0);
    expect(pass.stdout).toMatch(/Result: PASS/);
    const bytes = await cli(root, ['layers', '--ci', '--lowest-efficiency', '0.4', '--highest-wasted-bytes', '1MB', 'sample:fat']);
    expect(bytes.code).toBe(1);
    expect(bytes.stdout).toMatch(/FAIL: highestWastedBytes: wasted \d+ bytes \(threshold 1000000\)/);
    expect((await cli(root, ['layers', '--ci', 'sample'])).code).toBe(0);
  });

  it('explain IMAGE PATH: the serving layer, the copy it shadows, a whiteout', async () => {
    const motd = JSON.parse(await cliOk(root, ['explain', '--json', 'sample', '/etc/motd'])) as ExplainJson;
    expect(motd.exists).toBe(true);
    expect(motd.servedBy).toMatchObject({ position: 1 });
    expect(motd.copies.map((c) => [c.layer.position, c.role])).toEqual([[1, 'served'], [0, 'shadowed']]);
    expect(await readFile(motd.copies[0]!.file, 'utf8')).toMatch(/rewritten by the app layer/);
    expect(await readFile(motd.copies[1]!.file, 'utf8')).toBe(BASE_MOTD);

    const gone = JSON.parse(await cliOk(root, ['explain', '--json', 'sample', '/etc/os-release'])) as ExplainJson;
    expect(gone.exists).toBe(false);
    expect(gone.servedBy).toBeNull();
    expect(gone.copies.map((c) => [c.layer.position, c.kind, c.role])).toEqual([[1, 'whiteout', 'hidden'], [0, 'file', 'hidden']]);
    expect(gone.markers).toContainEqual(expect.objectContaining({ path: '/etc/os-release', where: 'layer 1', what: 'whiteout' }));

    const etc = JSON.parse(await cliOk(root, ['explain', '--json', 'sample', '/etc'])) as ExplainJson;
    expect(etc.copies.map((c) => c.role)).toEqual(['served', 'merged']);
    expect(await cliOk(root, ['explain', 'sample', '/etc/motd'])).toMatch(/served by: layer 1 [0-9a-f]{12}\s+RUN rewrite/);
  });

  it('explain PATH inside a mount: copied up, created, hidden under an opaque directory; refuses a path outside mounts', async () => {
    const mnt = join(work, 'ex');
    await mkdir(mnt);
    const id = (await cliOk(root, ['mount', '--name', 'ex', 'sample', mnt])).trim();
    try {
      const before = JSON.parse(await cliOk(root, ['explain', '--json', join(mnt, 'etc', 'motd')])) as ExplainJson;
      expect(before.servedBy).toMatchObject({ position: 1 });
      expect(before.upper).toBeNull();

      await appendFile(join(mnt, 'etc', 'motd'), 'written\n');
      await writeFile(join(mnt, 'root', 'new.txt'), 'new\n');
      await rm(join(mnt, 'app'), { recursive: true });
      await mkdir(join(mnt, 'app'));
      await writeFile(join(mnt, 'app', 'hello.txt'), 'again\n');

      const motd = JSON.parse(await cliOk(root, ['explain', '--json', join(mnt, 'etc', 'motd')])) as ExplainJson;
      expect(motd.servedBy).toBe('writable layer');
      expect(motd.upper).toMatchObject({ kind: 'file', copiedUp: true, file: join(root, 'containers', id, 'upper', 'etc', 'motd') });
      expect(motd.copies.map((c) => c.role)).toEqual(['shadowed', 'shadowed']);

      const created = JSON.parse(await cliOk(root, ['explain', '--json', join(mnt, 'root', 'new.txt')])) as ExplainJson;
      expect(created.upper).toMatchObject({ copiedUp: false });
      expect(created.copies).toEqual([]);

      const hello = JSON.parse(await cliOk(root, ['explain', '--json', 'ex', '/app/hello.txt'])) as ExplainJson;
      expect(hello.servedBy).toBe('writable layer');
      expect(hello.markers).toContainEqual(expect.objectContaining({ path: '/app', where: 'writable layer', what: 'opaque' }));
      expect(hello.copies.map((c) => [c.layer.position, c.role])).toEqual([[1, 'hidden']]);
      expect(await cliOk(root, ['explain', join(mnt, 'app', 'hello.txt')])).toMatch(/on the way: \/app is opaque/);
    } finally {
      await cliOk(root, ['rm', '-f', 'ex']);
    }
    const outside = await cli(root, ['explain', work]);
    expect(outside.code).not.toBe(0);
    expect(outside.stderr).toMatch(/is not inside a mounted container/);
  });
});
