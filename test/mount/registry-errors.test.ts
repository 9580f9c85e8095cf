/**
 * Bad input from a registry, with the real registry behind a loopback proxy that alters
 * what it sends: unknown names, a manifest that is not the one asked for, altered and
 * truncated blobs, a registry that stops mid-blob (timeout, then resume with Range on
 * retry), a manifest over 4 MiB, malformed JSON. Each is one clear line, and the store is
 * as it was.
 */
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { cli, cliOk, LAYERFS, REPO, type CliResult } from '../helpers/cli.js';
import { skopeoCopy, startProxy, startRegistry, type Proxy, type Registry } from '../helpers/registry.js';
import { Store } from '../../src/store/store.js';
import { tempDir } from '../helpers/temp.js';

const run = promisify(execFile);
const sha = (b: Buffer | string): string => 'sha256:' + createHash('sha256').update(b).digest('hex');

/** Every path of the store proper (images, layers, blobs, tags): proves nothing entered it. */
async function storeListing(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string, rel: string): Promise<void> => {
    let entries;
    try {
      entries = await readdir(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      out.push(`${rel}/${e.name}`);
      if (e.isDirectory()) await walk(join(d, e.name), `${rel}/${e.name}`);
    }
  };
  for (const part of ['image', 'layers', 'blobs']) await walk(join(root, part), part);
  return out.sort();
}

function expectOneLineError(r: CliResult, re: RegExp): void {
  expect(r.code, r.stdout + r.stderr).not.toBe(0);
  const lines = r.stderr.trimEnd().split('\n');
  expect(lines[0]).toMatch(/^layerfs: /);
  expect(lines[0]).toMatch(re);
  expect(lines.length).toBeLessThanOrEqual(2);
}

describe('layerfs pull: bad registries and bad bytes', () => {
  let work: string;
  let reg: Registry;
  let proxy: Proxy;
  let root: string;
  let before: string[];

  beforeAll(async () => {
    work = await tempDir();
    await run(join(REPO, 'scripts', 'make-sample-image'), [join(work, 'oci')]);
    reg = await startRegistry(join(work, 'registry'));
    await skopeoCopy(`oci:${join(work, 'oci')}:latest`, `docker://${reg.host}/sample:1`);
    proxy = await startProxy(reg.host);
    root = join(work, 'store');
    // A store with one unrelated image in it, so "unchanged" is not just "empty".
    await cliOk(root, ['load', '-i', join(work, 'oci'), '--name', 'local']);
    before = await storeListing(root);
  });

  afterEach(async () => {
    proxy.mode = { kind: 'pass' };
    proxy.ranges.length = 0;
    expect(await storeListing(root)).toEqual(before);
  });

  afterAll(async () => {
    await proxy?.close();
    await reg?.stop();
  });

  it('unknown repository and unknown tag', async () => {
    expectOneLineError(await cli(root, ['pull', `${reg.host}/nope:1`]), /not found \((NAME_UNKNOWN|MANIFEST_UNKNOWN)/);
    expectOneLineError(await cli(root, ['pull', `${reg.host}/sample:nope`]), /sample:nope: not found \(MANIFEST_UNKNOWN/);
  });

  it('a manifest that is not the one asked for, or whose Docker-Content-Digest lies', async () => {
    const res = await fetch(`http://${reg.host}/v2/sample/manifests/1`, { headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' } });
    const body = Buffer.from(await res.arrayBuffer());
    const other = sha('something else');
    proxy.mode = { kind: 'manifest', body, contentType: 'application/vnd.oci.image.manifest.v1+json' };
    expectOneLineError(await cli(root, ['pull', `${proxy.host}/sample@${other}`]), new RegExp(`digest mismatch: asked for ${other}, got ${sha(body)}`));
    proxy.mode = { kind: 'manifest', body, contentType: 'application/vnd.oci.image.manifest.v1+json', digestHeader: other };
    expectOneLineError(await cli(root, ['pull', `${proxy.host}/sample:1`]), new RegExp(`the registry says ${other} but the body is ${sha(body)}`));
  });

  it('a manifest over 4 MiB and a malformed manifest', async () => {
    const huge = Buffer.from(JSON.stringify({ schemaVersion: 2, padding: 'x'.repeat(5 * 1024 * 1024) }));
    proxy.mode = { kind: 'manifest', body: huge, contentType: 'application/vnd.oci.image.manifest.v1+json' };
    expectOneLineError(await cli(root, ['pull', `${proxy.host}/sample:1`]), /over the 4194304-byte limit/);
    const bad = Buffer.from('{"schemaVersion": 2, "layers": [');
    proxy.mode = { kind: 'manifest', body: bad, contentType: 'application/vnd.oci.image.manifest.v1+json', digestHeader: sha(bad) };
    expectOneLineError(await cli(root, ['pull', `${proxy.host}/sample:1`]), /invalid manifest of .*: not valid JSON/);
  });

  it('a blob altered in transit is refused and not kept for resuming', async () => {
    const fresh = join(work, 'altered');
    // An empty store to compare with: a failed pull must leave it exactly so.
    await Store.open(fresh);
    const empty = await storeListing(fresh);
    proxy.mode = { kind: 'corrupt-blobs', minSize: 0 };
    expectOneLineError(await cli(fresh, ['pull', `${proxy.host}/sample:1`]), /image config sha256:[0-9a-f]{64}: digest mismatch/);
    proxy.mode = { kind: 'corrupt-blobs', minSize: 100_000 };
    expectOneLineError(await cli(fresh, ['pull', `${proxy.host}/sample:1`]), /blob sha256:[0-9a-f]{64}: digest mismatch: the bytes received hash to sha256:/);
    expect(await storeListing(fresh)).toEqual(empty);
    const left = await readdir(join(fresh, 'downloads')).catch(() => []);
    expect(left.filter((n) => n.endsWith('.partial'))).toEqual([]);
  });

  it('a connection cut mid-blob is resumed with a Range request within the same pull', async () => {
    proxy.mode = { kind: 'cut-blob-once', minSize: 100_000 };
    const other = join(work, 'cut-store');
    const out = await cliOk(other, ['pull', `${proxy.host}/sample:1`]);
    expect(out).toMatch(/^Status: Downloaded newer image/m);
    expect(proxy.ranges.some((r) => /^bytes=\d+-$/.test(r) && r !== 'bytes=0-')).toBe(true);
    const id = JSON.parse(await cliOk(other, ['inspect', `${proxy.host}/sample:1`])) as Array<{ Id: string }>;
    const local = JSON.parse(await cliOk(root, ['inspect', 'local:latest'])) as Array<{ Id: string }>;
    expect(id[0]!.Id).toBe(local[0]!.Id);
  });

  it('a registry that stops answering mid-blob times out with one line; the retry resumes', async () => {
    const fresh = join(work, 'stalled');
    // An empty store to compare with: a failed pull must leave it exactly so.
    await Store.open(fresh);
    const empty = await storeListing(fresh);
    proxy.mode = { kind: 'stall-blobs', minSize: 100_000 };
    const r = await cli(fresh, ['pull', '--timeout', '1', `${proxy.host}/sample:1`]);
    expectOneLineError(r, /timed out after 1s without data/);
    expect(await storeListing(fresh)).toEqual(empty);
    // The partial download stays for the retry, which asks only for the rest.
    const partials = (await readdir(join(fresh, 'downloads'))).filter((n) => n.endsWith('.partial'));
    expect(partials.length).toBe(1);
    proxy.mode = { kind: 'pass' };
    proxy.ranges.length = 0;
    const out = await cliOk(fresh, ['pull', `${proxy.host}/sample:1`]);
    expect(out).toMatch(/^Status: Downloaded newer image/m);
    expect(proxy.ranges.some((x) => /^bytes=[1-9]\d*-$/.test(x))).toBe(true);
    expect((await readdir(join(fresh, 'downloads'))).filter((n) => !n.endsWith('.lock'))).toEqual([]);
    const a = JSON.parse(await cliOk(fresh, ['inspect', `${proxy.host}/sample:1`])) as Array<{ Id: string }>;
    const b = JSON.parse(await cliOk(root, ['inspect', 'local:latest'])) as Array<{ Id: string }>;
    expect(a[0]!.Id).toBe(b[0]!.Id);
  });

  it('a pull killed (SIGKILL) mid-download leaves the store as it was; the next pull completes', async () => {
    const fresh = join(work, 'killed');
    // An empty store to compare with: a failed pull must leave it exactly so.
    await Store.open(fresh);
    const empty = await storeListing(fresh);
    proxy.mode = { kind: 'stall-blobs', minSize: 100_000 };
    const child = spawn(process.execPath, [LAYERFS, '--root', fresh, 'pull', `${proxy.host}/sample:1`], { stdio: 'ignore' });
    const exited = new Promise((r) => child.once('exit', r));
    try {
      for (let i = 0; i < 400; i++) {
        const names = await readdir(join(fresh, 'downloads')).catch(() => [] as string[]);
        if (names.some((n) => n.endsWith('.partial'))) break;
        await new Promise((r) => setTimeout(r, 25));
      }
    } finally {
      process.kill(child.pid!, 'SIGKILL');
      await exited;
    }
    await cliOk(fresh, ['images']);
    expect(await storeListing(fresh)).toEqual(empty);
    proxy.mode = { kind: 'pass' };
    await cliOk(fresh, ['pull', `${proxy.host}/sample:1`]);
    expect(JSON.parse(await cliOk(fresh, ['images', '--json']))).toHaveLength(1);
  });
});
