import fc from 'fast-check';
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { chainIdOf, chainIds, digestOf, parseDiffId, parseDigest, shortId, type DiffId } from '../../src/core/digest.js';
import { cleanLayerPath, safeJoin } from '../../src/core/safe-join.js';
import { LayerfsError } from '../../src/core/errors.js';

const d = (c: string): DiffId => parseDiffId('sha256:' + c.repeat(64));

describe('digests', () => {
  it('parses only sha256:<64 lowercase hex>', () => {
    expect(parseDigest('sha256:' + 'a'.repeat(64))).toBe('sha256:' + 'a'.repeat(64));
    for (const bad of ['sha256:' + 'A'.repeat(64), 'sha256:' + 'a'.repeat(63), 'sha512:' + 'a'.repeat(64), 'a'.repeat(64), '', 42]) {
      expect(() => parseDigest(bad)).toThrow(LayerfsError);
    }
  });
  it('computes chain ids as the OCI image spec defines them', () => {
    const [a, b, c] = [d('a'), d('b'), d('c')];
    const ids = chainIds([a, b, c]);
    expect(ids[0]).toBe(a);
    const h = (s: string): string => 'sha256:' + createHash('sha256').update(s).digest('hex');
    expect(ids[1]).toBe(h(`${a} ${b}`));
    expect(ids[2]).toBe(h(`${h(`${a} ${b}`)} ${c}`));
    expect(chainIdOf(undefined, a)).toBe(a);
  });
  it('matches known vectors written down outside the project', () => {
    // FIPS 180-2, appendix B.1: SHA-256("abc").
    expect(digestOf('abc')).toBe('sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    // ChainID(L1) for diff ids "sha256:aaaa…" and "sha256:bbbb…", computed once with
    // `printf 'sha256:aaa… sha256:bbb…' | sha256sum` and pasted here.
    expect(chainIds([d('a'), d('b')])[1]).toBe('sha256:ccd722928bd92476ba1745586fed6e45a102504185ad88cd89e01ff116fd146c');
    expect(shortId('sha256:0123456789abcdef')).toBe('0123456789ab');
  });
});

describe('safe join', () => {
  it('cleans tar names and refuses .. and absolute names in reject mode', () => {
    expect(cleanLayerPath('./a//b/./c/', { mode: 'reject' })).toBe('a/b/c');
    expect(cleanLayerPath('./', { mode: 'reject' })).toBe('');
    expect(() => cleanLayerPath('a/../b', { mode: 'reject' })).toThrow(/'\.\.' component/);
    expect(() => cleanLayerPath('/etc', { mode: 'reject' })).toThrow(/absolute/);
    expect(() => cleanLayerPath('a\0b', { mode: 'reject' })).toThrow(/NUL/);
  });
  it('in contain mode keeps absolute paths under the root and refuses climbing out', () => {
    expect(safeJoin('/root', '/etc/passwd')).toBe('/root/etc/passwd');
    expect(safeJoin('/root', 'a/../b')).toBe('/root/b');
    expect(() => safeJoin('/root', 'a/../../b')).toThrow(/escapes/);
  });
  it('never yields a path outside the root (property)', () => {
    const part = fc.constantFrom('..', '.', '', 'a', 'b', 'c d', '\u00ff');
    fc.assert(
      fc.property(fc.array(part, { maxLength: 12 }), fc.boolean(), (parts, abs) => {
        const p = (abs ? '/' : '') + parts.join('/');
        let out: string;
        try {
          out = cleanLayerPath(p, { mode: 'contain' });
        } catch (e) {
          expect((e as LayerfsError).code).toBe('UNSAFE_PATH');
          return;
        }
        expect(out.startsWith('/')).toBe(false);
        expect(out.split('/')).not.toContain('..');
        expect(out.split('/')).not.toContain('.');
        expect(safeJoin('/r', p).startsWith('/r')).toBe(true);
      }),
    );
  });
});
