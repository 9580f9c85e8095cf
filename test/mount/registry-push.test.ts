/**
 * `layerfs push` against the real distribution registry: skopeo pulls back what layerfs
 * pushed; pull → push → pull keeps every digest; existing blobs are not sent again; blobs
 * pulled from another repository are mounted; chunked (PATCH) uploads.
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliOk, REPO } from '../helpers/cli.js';
import { skopeoCopy, startProxy, startRegistry, type Registry } from '../helpers/registry.js';
import { tempDir } from '../helpers/temp.js';

const run = promisify(execFile);

async function inspectId(root: string, ref: string): Promise<{ Id: string; RootFS: { Layers: string[] } }> {
  const v = JSON.parse(await cliOk(root, ['inspect', ref])) as Array<{ Id: string; RootFS: { Layers: string[] } }>;
  return Array.isArray(v) ? v[0]! : v;
}

describe('layerfs push to a plain loopback registry', () => {
  let work: string;
  let reg: Registry;
  let root: string;

  beforeAll(async () => {
    work = await tempDir();
    await run(join(REPO, 'scripts', 'make-sample-image'), [join(work, 'oci')]);
    reg = await startRegistry(join(work, 'registry'));
    root = join(work, 'store');
    await cliOk(root, ['load', '-i', join(work, 'oci'), '--name', 'sample']);
  });

  afterAll(async () => {
    await reg?.stop();
  });

  it('pushes a loaded image that skopeo copies back with the same config and layers', async () => {
    const out = await cliOk(root, ['push', 'sample:latest', `${reg.host}/pushed:v1`]);
    expect(out).toMatch(new RegExp(`^The push refers to repository \\[${reg.host.replace(/\./g, '\\.')}/pushed\\]$`, 'm'));
    expect(out.match(/: Pushed$/gm)).toHaveLength(3);
    const digest = /^v1: digest: (sha256:[0-9a-f]{64}) size: \d+$/m.exec(out)![1]!;
    // The manifest digest pushed is the one the store loaded.
    const index = JSON.parse(await readFile(join(work, 'oci', 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
    expect(digest).toBe(index.manifests[0]!.digest);

    await skopeoCopy(`docker://${reg.host}/pushed:v1`, `oci:${join(work, 'back')}:v1`);
    const back = join(work, 'back-store');
    await cliOk(back, ['load', '-i', join(work, 'back'), '--name', 'back']);
    const a = await inspectId(root, 'sample:latest');
    const b = await inspectId(back, 'back:v1');
    expect(b.Id).toBe(a.Id);
    expect(b.RootFS.Layers).toEqual(a.RootFS.Layers);
    const backIndex = JSON.parse(await readFile(join(work, 'back', 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
    expect(backIndex.manifests[0]!.digest).toBe(digest);

    // Pushing again sends nothing.
    const again = await cliOk(root, ['push', 'sample:latest', `${reg.host}/pushed:v1`]);
    expect(again.match(/: Layer already exists$/gm)).toHaveLength(3);
  });

  it('keeps every digest through pull → push → pull, mounting blobs across repositories', async () => {
    await skopeoCopy(`oci:${join(work, 'oci')}:latest`, `docker://${reg.host}/origin:1`);
    const r1 = join(work, 'ppp-1');
    const pulled = await cliOk(r1, ['pull', `${reg.host}/origin:1`]);
    const d1 = /^Digest: (sha256:[0-9a-f]{64})$/m.exec(pulled)![1]!;
    const pushed = await cliOk(r1, ['push', `${reg.host}/origin:1`, `${reg.host}/copy:2`]);
    expect(pushed.match(/: Mounted from origin$/gm)).toHaveLength(3);
    expect(pushed).toContain(`2: digest: ${d1} size:`);
    const r2 = join(work, 'ppp-2');
    const again = await cliOk(r2, ['pull', `${reg.host}/copy:2`]);
    expect(again).toContain(`Digest: ${d1}`);
    const a = await inspectId(r1, `${reg.host}/origin:1`);
    const b = await inspectId(r2, `${reg.host}/copy:2`);
    expect(b.Id).toBe(a.Id);
    expect(b.RootFS.Layers).toEqual(a.RootFS.Layers);
  });

  it('uploads large blobs in PATCH chunks', async () => {
    // A store that never talked to this registry, through a proxy that records requests.
    const fresh = join(work, 'fresh');
    await cliOk(fresh, ['load', '-i', join(work, 'oci'), '--name', 'sample']);
    const proxy = await startProxy(reg.host);
    try {
      const out = await cliOk(fresh, ['push', '--chunk-size', '64k', 'sample:latest', `${proxy.host}/chunked:c`]);
      expect(out.match(/: Pushed$/gm)).toHaveLength(3);
      // The busybox layer (about 1 MB) went in several 64 KiB PATCHes; small blobs in one PUT.
      const patches = proxy.requests.filter((r) => r.startsWith('PATCH /v2/chunked/blobs/uploads/'));
      expect(patches.length).toBeGreaterThan(4);
      expect(proxy.requests.filter((r) => r.startsWith('PUT /v2/chunked/blobs/uploads/')).length).toBe(4);
    } finally {
      await proxy.close();
    }
    await skopeoCopy(`docker://${reg.host}/chunked:c`, `oci:${join(work, 'chunked')}:c`);
    const r = join(work, 'chunked-store');
    await cliOk(r, ['load', '-i', join(work, 'chunked'), '--name', 'chunked']);
    expect((await inspectId(r, 'chunked:c')).Id).toBe((await inspectId(fresh, 'sample:latest')).Id);
  });
});
