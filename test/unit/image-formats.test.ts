import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { parseReference, familiarString, fullString } from '../../src/image/reference.js';
import { parsePlatform, platformMatches, selectForPlatform } from '../../src/image/platform.js';
import { parseImageConfig, parseManifest, isIndexDocument } from '../../src/image/oci-types.js';
import { Decompressor, Verifier, detectCompression } from '../../src/image/layer-stream.js';
import { ZstdFrameGuard } from '../../src/image/zstd-guard.js';
import { digestOf, parseDigest } from '../../src/core/digest.js';
import { parsePaxTime } from '../../src/store/layer-extractor.js';
import { classifyName, checkXattrName } from '../../src/overlay/index.js';

describe('references', () => {
  it('applies Docker defaults', () => {
    expect(fullString(parseReference('debian'))).toBe('docker.io/library/debian:latest');
    expect(familiarString(parseReference('docker.io/library/debian:12'))).toBe('debian:12');
    expect(familiarString(parseReference('user/app'))).toBe('user/app:latest');
    expect(fullString(parseReference('localhost:5000/app:v1'))).toBe('localhost:5000/app:v1');
    const dig = 'sha256:' + 'a'.repeat(64);
    const r = parseReference(`example.com/a/b@${dig}`);
    expect(r).toEqual({ domain: 'example.com', path: 'a/b', digest: dig });
    expect(parseReference(`x:1@${dig}`).tag).toBe('1');
  });
  it('rejects malformed references', () => {
    for (const bad of ['', 'UPPER', 'a:b:c', 'a@sha256:12', 'a/', ':tag', 'a:' + 't'.repeat(129)]) expect(() => parseReference(bad), bad).toThrow(/invalid reference/);
  });
});

describe('platforms', () => {
  it('matches os/arch and treats arm64 v8 as no variant', () => {
    expect(parsePlatform('linux/arm64/v8')).toEqual({ os: 'linux', architecture: 'arm64', variant: 'v8' });
    expect(platformMatches(parsePlatform('linux/arm64'), { os: 'linux', architecture: 'arm64', variant: 'v8' })).toBe(true);
    expect(platformMatches(parsePlatform('linux/arm64/v8'), { os: 'linux', architecture: 'arm64' })).toBe(true);
    expect(platformMatches(parsePlatform('linux/arm/v7'), { os: 'linux', architecture: 'arm', variant: 'v6' })).toBe(false);
    expect(() => parsePlatform('linux')).toThrow(/os\/arch/);
    const dg = parseDigest('sha256:' + 'b'.repeat(64));
    const sel = selectForPlatform([
      { mediaType: 'm', digest: dg, size: 1, platform: { os: 'linux', architecture: 's390x' } },
      { mediaType: 'm', digest: dg, size: 2, platform: { os: 'unknown', architecture: 'unknown' } },
      { mediaType: 'm', digest: dg, size: 3, platform: { os: 'linux', architecture: 'amd64' } },
    ], parsePlatform('linux/amd64'));
    expect(sel.map((s) => s.size)).toEqual([3]);
  });
});

describe('image documents', () => {
  it('validates manifests and configs with one-line reasons', () => {
    const dg = 'sha256:' + 'c'.repeat(64);
    const m = parseManifest(Buffer.from(JSON.stringify({ schemaVersion: 2, config: { mediaType: 'x', digest: dg, size: 2 }, layers: [] })));
    expect(m.layers).toEqual([]);
    expect(() => parseManifest(Buffer.from('{"config":{"mediaType":"x","digest":"' + dg + '","size":-1},"layers":[]}'))).toThrow(/size -1/);
    expect(() => parseManifest(Buffer.from('[]'))).toThrow(/expected a JSON object/);
    expect(() => parseImageConfig(Buffer.from('{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["nope"]}}'))).toThrow(/invalid diff_id/);
    expect(isIndexDocument({ manifests: [] })).toBe(true);
    expect(isIndexDocument({ layers: [], config: {} })).toBe(false);
  });
});

async function through(data: Buffer, ...streams: NodeJS.ReadWriteStream[]): Promise<Buffer> {
  const out: Buffer[] = [];
  await pipeline(Readable.from([data]), ...(streams as unknown as [NodeJS.ReadWriteStream]), new Writable({ write(c, _e, cb) { out.push(c); cb(); } }));
  return Buffer.concat(out);
}

describe('layer streams', () => {
  it('detects compression by magic bytes and decompresses gzip', async () => {
    const plain = Buffer.from('hello '.repeat(1000));
    expect(detectCompression(gzipSync(plain))).toBe('gzip');
    expect(detectCompression(Buffer.from([0x28, 0xb5, 0x2f, 0xfd]))).toBe('zstd');
    expect(detectCompression(plain)).toBe('none');
    expect(await through(gzipSync(plain), new Decompressor('t', 1 << 27))).toEqual(plain);
    expect(await through(plain, new Decompressor('t', 1 << 27))).toEqual(plain);
  });
  it('verifies digest and size while streaming', async () => {
    const b = Buffer.from('abc');
    const v = new Verifier({ what: 'x', expectedDigest: digestOf(b), expectedSize: 3 });
    await through(b, v);
    expect(v.measured).toEqual({ digest: digestOf(b), size: 3 });
    await expect(through(b, new Verifier({ what: 'x', expectedDigest: digestOf('abd') }))).rejects.toThrow(/digest mismatch/);
    await expect(through(b, new Verifier({ what: 'x', expectedSize: 2 }))).rejects.toThrow(/more than the 2 bytes/);
    await expect(through(b, new Verifier({ what: 'x', expectedSize: 4 }))).rejects.toThrow(/3 bytes, but its descriptor declares 4/);
    await expect(through(b, new Verifier({ what: 'x', limit: 2 }))).rejects.toThrow(/expands past the 2-byte limit/);
  });
  it('the zstd guard refuses an oversized window before decoding, across chunk boundaries', () => {
    const frame = Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x00, 21 << 3, 0x01, 0x00, 0x00]);
    const g = new ZstdFrameGuard(1 << 27, 'layer');
    for (const byte of frame.subarray(0, 5)) g.push(Buffer.from([byte]));
    expect(() => g.push(frame.subarray(5))).toThrow(/declares a 2147483648-byte window/);
    const ok = new ZstdFrameGuard(1 << 27, 'layer');
    expect(() => ok.push(Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x00, 7 << 3, 0x01, 0x00, 0x00]))).not.toThrow();
  });
});

describe('layer entry rules', () => {
  it('parses PAX times to the nanosecond', () => {
    expect(parsePaxTime('1700000000.123456789')).toEqual({ sec: 1700000000, nsec: 123456789 });
    expect(parsePaxTime('1700000000.5')).toEqual({ sec: 1700000000, nsec: 500000000 });
    expect(parsePaxTime('-1.25')).toEqual({ sec: -2, nsec: 750000000 });
    expect(parsePaxTime('x')).toBeUndefined();
  });
  it('classifies whiteouts and refuses forged overlay xattrs', () => {
    expect(classifyName('.wh.foo', 'a/.wh.foo')).toEqual({ kind: 'whiteout', target: 'foo' });
    expect(classifyName('.wh..wh..opq', 'a/.wh..wh..opq')).toEqual({ kind: 'opaque' });
    expect(classifyName('.wh..wh.plnk', 'x')).toEqual({ kind: 'ignore' });
    expect(classifyName('foo', 'foo')).toEqual({ kind: 'none' });
    expect(() => classifyName('.wh.', 'a/.wh.')).toThrow(/bare whiteout/);
    expect(() => classifyName('.wh...', 'a/.wh...')).toThrow(/names/);
    expect(() => checkXattrName('trusted.overlay.redirect', 'f')).toThrow(/forge/);
    expect(() => checkXattrName('user.fuseoverlayfs.x', 'f')).toThrow(/forge/);
    expect(() => checkXattrName('user.comment', 'f')).not.toThrow();
  });
});
