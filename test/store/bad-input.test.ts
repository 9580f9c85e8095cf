/**
 * Bad input: every case gets a clear one-line error, and the store is left exactly as it
 * was (compared as a full snapshot of the store root before and after), and nothing is
 * written outside the store.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/temp.js';
import { canonical, layerfs, makeTar, snapshot, writeOciLayout, type RawLayer } from '../helpers/images.js';

let root: string;
let work: string;
let outside: string;

async function storeState(): Promise<unknown> {
  const snap = canonical(await snapshot(root));
  delete snap['lock'];
  return snap;
}

/** Loads a hand-made layout and checks the failure and that the store did not change. */
async function expectRejected(layers: RawLayer[], message: RegExp, opts: Parameters<typeof writeOciLayout>[2] = {}, extraArgs: string[] = []): Promise<void> {
  const dir = await tempDir('layerfs-bad-');
  await writeOciLayout(dir, layers, opts);
  const before = await storeState();
  const r = await layerfs(root, ['load', '-i', dir, '--name', 'bad', ...extraArgs]);
  expect(r.code, r.stdout + r.stderr).toBe(1);
  const lines = r.stderr.trim().split('\n');
  expect(lines[0]).toMatch(/^layerfs: /);
  expect(lines[0]).toMatch(message);
  expect(lines.filter((l) => !l.startsWith('hint: '))).toHaveLength(1);
  expect(await storeState()).toEqual(before);
  expect(await readdir(outside)).toEqual([]);
}

const file = (name: string, data = 'x'): { name: string; data: string } => ({ name, data });

/** A raw zstd frame declaring a `2^windowLog` window, holding `payload` as one raw block. */
function zstdWithWindow(windowLog: number, payload: Buffer): Buffer {
  const head = Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x00, (windowLog - 10) << 3]);
  const bh = (payload.length << 3) | 1; // last block, raw
  return Buffer.concat([head, Buffer.from([bh & 0xff, (bh >> 8) & 0xff, (bh >> 16) & 0xff]), payload]);
}

/** A tar whose single header claims `size` bytes (base-256 size field). */
function hugeHeaderTar(size: bigint): Buffer {
  const h = Buffer.alloc(512);
  h.write('huge', 0);
  h.write('0000644\0', 100);
  h.write('0000000\0', 108);
  h.write('0000000\0', 116);
  h[124] = 0x80;
  for (let i = 135, v = size; i > 124; i--, v >>= 8n) h[i] = Number(v & 0xffn);
  h.write('00000000000\0', 136);
  h.write('0', 156);
  h.write('ustar\0', 257);
  h.write('00', 263);
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148);
  return Buffer.concat([h, Buffer.alloc(4096)]);
}

beforeAll(async () => {
  root = await tempDir('layerfs-root-');
  work = await tempDir('layerfs-work-');
  outside = join(work, 'outside');
  await mkdir(outside);
  // A good image first, so "unchanged" means something.
  const good = join(work, 'good');
  await writeOciLayout(good, [{ tar: await makeTar([{ name: 'etc/', type: 'directory' }, file('etc/hostname', 'good')]) }]);
  const r = await layerfs(root, ['load', '-i', good, '--name', 'good']);
  expect(r.code, r.stderr).toBe(0);
}, 120_000);

describe('bad input is refused with one line and leaves the store unchanged', () => {
  it('a tar entry with ..', async () => {
    await expectRejected([{ tar: await makeTar([file('a/../../evil')]) }], /tar entry "a\/..\/..\/evil" contains a '..' component/);
  });
  it('a tar entry with an absolute path', async () => {
    await expectRejected([{ tar: await makeTar([file('/etc/evil')]) }], /tar entry "\/etc\/evil" is absolute/);
  });
  it('a symlink out of the layer followed by an entry written through it', async () => {
    await expectRejected([{ tar: await makeTar([{ name: 'esc', type: 'symlink', linkname: outside }, file('esc/pwned')]) }], /written through the symlink "esc"/);
  });
  it('a hard link to a path outside the layer', async () => {
    await expectRejected([{ tar: await makeTar([{ name: 'h', type: 'link', linkname: '../../etc/passwd' }]) }], /hard link target of "h".*'\.\.'/);
    await expectRejected([{ tar: await makeTar([{ name: 'h', type: 'link', linkname: '/etc/passwd' }]) }], /hard link target of "h".*absolute/);
    await expectRejected([{ tar: await makeTar([{ name: 'h', type: 'link', linkname: 'etc/shadow' }]) }], /hard link to "etc\/shadow", which is not an earlier file of this layer/);
  });
  it('a whiteout naming .. or a path outside', async () => {
    await expectRejected([{ tar: await makeTar([file('d/.wh..')]) }], /whiteout "d\/\.wh\.\." names/);
    await expectRejected([{ tar: await makeTar([file('../.wh.x')]) }], /contains a '\.\.' component/);
  });
  it('a bare .wh. entry', async () => {
    await expectRejected([{ tar: await makeTar([file('d/.wh.')]) }], /bare whiteout/);
  });
  it('a blob digest mismatch', async () => {
    await expectRejected([{ tar: await makeTar([file('f')]), tamper: (b) => { const c = Buffer.from(b); c[c.length - 9]! ^= 1; return c; } }], /blob: digest mismatch: expected sha256:/);
  });
  it('a diff_id mismatch', async () => {
    await expectRejected([{ tar: await makeTar([file('f')]), diffId: 'sha256:' + '0'.repeat(64) }], /\(uncompressed\): digest mismatch/);
  });
  it('a truncated gzip stream', async () => {
    const tar = await makeTar([file('f', randomBytes(100000).toString('latin1'))]);
    const gz = gzipSync(tar);
    await expectRejected([{ tar, blob: gz.subarray(0, gz.length >> 1) }], /corrupt gzip stream \(unexpected end of file\)/);
    await expectRejected([{ tar, blob: gz.subarray(0, gz.length - 4) }], /corrupt gzip stream/);
  });
  it('a corrupt zstd stream', async () => {
    const tar = await makeTar([file('f', 'some text that compresses '.repeat(2000))]);
    const { zstdCompress } = await import('../helpers/images.js');
    const z = await zstdCompress(tar);
    const bad = Buffer.from(z);
    for (let i = 20; i < 60; i++) bad[i] = 0xff;
    await expectRejected([{ tar, blob: bad, compression: 'zstd' }], /corrupt zstd stream|digest mismatch/);
    await expectRejected([{ tar, blob: z.subarray(0, z.length - 30), compression: 'zstd' }], /corrupt zstd stream/);
  });
  it('a config that is not valid JSON, or lacks required fields', async () => {
    const tar = await makeTar([file('f')]);
    await expectRejected([{ tar }], /invalid image config .*not valid JSON/, { configBytes: Buffer.from('{"architecture": "amd64",') });
    await expectRejected([{ tar }], /invalid image config .*lacks "rootfs"/, { config: (c) => { delete c.rootfs; } });
    await expectRejected([{ tar }], /invalid manifest .*lacks "layers"/, { manifest: (m) => { delete m.layers; } });
    await expectRejected([{ tar }], /invalid manifest .*not valid JSON/, { manifestBytes: Buffer.from('not json') });
  });
  it('a gzip bomb past the configured limit', async () => {
    // Each entry is under the limit; together they expand past it.
    const tar = await makeTar(Array.from({ length: 12 }, (_, i) => file(`zeros${i}`, '\0'.repeat(1024 * 1024))));
    await expectRejected([{ tar }], /expands past the 10485760-byte limit/, {}, ['--max-layer-size', '10M']);
  });
  it('a zstd frame declaring a huge window', async () => {
    const tar = await makeTar([file('f')]);
    await expectRejected([{ tar, blob: zstdWithWindow(31, tar), compression: 'zstd' }], /zstd frame declares a 2147483648-byte window/);
  });
  it('a tar header claiming a huge size', async () => {
    const tar = hugeHeaderTar(1n << 40n);
    await expectRejected([{ tar, compression: 'gzip' }], /claims 1099511627776 bytes, over the/);
  });
  it('a descriptor with a negative or wrong size', async () => {
    const tar = await makeTar([file('f')]);
    await expectRejected([{ tar, size: -5 }], /size -5; expected a non-negative integer/);
    await expectRejected([{ tar, size: 7 }], /declares 7/);
  });
  it('more layers than the store supports', async () => {
    const layers = await Promise.all(Array.from({ length: 126 }, async (_, i) => ({ tar: await makeTar([file(`f${i}`)]) })));
    await expectRejected(layers, /image has 126 layers; the store supports at most 125/);
  });
  it('xattrs that would forge overlay metadata', async () => {
    for (const name of ['trusted.overlay.opaque', 'user.overlay.redirect', 'user.fuseoverlayfs.origin']) {
      await expectRejected([{ tar: await makeTar([{ name: 'd/', type: 'directory', pax: { [`SCHILY.xattr.${name}`]: 'y' } }]) }], new RegExp(`carries xattr "${name.replace(/\./g, '\\.')}", which would forge overlay metadata`));
    }
  });
  it('a literal 0/0 character device', async () => {
    await expectRejected([{ tar: await makeTar([{ name: 'wh', type: 'character-device', devmajor: 0, devminor: 0 }]) }], /0\/0 character device, which the overlay format reserves for whiteouts/);
  });
  it('an archive that is not an image', async () => {
    const dir = await tempDir('layerfs-bad-');
    const before = await storeState();
    const r = await layerfs(root, ['load', '-i', dir]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^layerfs: .*not an image archive/);
    expect(await storeState()).toEqual(before);
  });
});
