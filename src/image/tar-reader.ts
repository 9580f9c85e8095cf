/**
 * tar-stream, set up to keep bytes exact. Names are decoded as latin1 (byte strings, see
 * core/filesystem.ts) instead of UTF-8, and PAX records likewise: tar-stream decodes PAX
 * values as UTF-8, which would mangle binary xattr values (`security.capability`) and
 * names that are not valid UTF-8. Its `decodePax` is replaced, once, by a byte-exact one;
 * PAX text keys (path, linkpath, uname…) are UTF-8 by the standard, so as byte strings they
 * are exactly the bytes the name has on disk.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { extract, type Extract } from 'tar-stream';

const require = createRequire(import.meta.url);

interface HeadersModule {
  decodePax(buf: Buffer): Record<string, string>;
  __layerfsLatin1?: boolean;
}

function patchPax(): void {
  // The package's `exports` hides headers.js; require it by file name — the same module
  // instance tar-stream's extract.js uses.
  const headers = require(join(dirname(require.resolve('tar-stream')), 'headers.js')) as HeadersModule;
  if (headers.__layerfsLatin1) return;
  headers.decodePax = function decodePaxLatin1(buf: Buffer): Record<string, string> {
    const result: Record<string, string> = {};
    let b = buf;
    while (b.length) {
      let i = 0;
      while (i < b.length && b[i] !== 32) i++;
      const len = parseInt(b.toString('latin1', 0, i), 10);
      if (!len || len > b.length) return result;
      const rec = b.toString('latin1', i + 1, len - 1);
      const eq = rec.indexOf('=');
      if (eq === -1) return result;
      result[rec.slice(0, eq)] = rec.slice(eq + 1);
      b = b.subarray(len);
    }
    return result;
  };
  headers.__layerfsLatin1 = true;
}

/** A tar-stream extractor that yields byte-exact (latin1) names, link names and PAX values. */
export function byteExactTarExtract(): Extract {
  patchPax();
  return extract({ filenameEncoding: 'latin1' } as unknown as Parameters<typeof extract>[0]);
}
