/**
 * GNU sparse files in PAX form, as GNU tar writes them with `--sparse --format=posix`:
 *
 * - 1.0: `GNU.sparse.major=1`, `GNU.sparse.minor=0`; the entry data starts with the map as
 *   decimal text lines (count, then offset/length pairs) padded to 512 bytes, followed by
 *   the data segments back to back. Real name and size: `GNU.sparse.name`, `GNU.sparse.realsize`.
 * - 0.1: the map is `GNU.sparse.map=off,len,off,len…` in the PAX header; data as above.
 *
 * The file is written by seeking to each segment (the holes stay holes) and truncated to the
 * real size. (0.0 repeats PAX keys, which a key/value record cannot carry; it is refused,
 * as is the old GNU 'S' header type.)
 */
import { open } from 'node:fs/promises';
import { LayerfsError } from '../core/errors.js';

/** True when a PAX record set describes a sparse file. */
export function isSparse(pax: Record<string, string> | undefined): boolean {
  return pax !== undefined && (pax['GNU.sparse.major'] !== undefined || pax['GNU.sparse.map'] !== undefined || pax['GNU.sparse.offset'] !== undefined);
}

/** The real name of a sparse entry (1.0 stores it apart from the header name). */
export function sparseName(pax: Record<string, string>, headerName: string): string {
  return pax['GNU.sparse.name'] ?? headerName;
}

function bad(entry: string, why: string): LayerfsError {
  return new LayerfsError('INVALID_IMAGE', `tar entry ${JSON.stringify(entry)}: bad sparse file (${why})`);
}

/** Reads exactly-sized pieces from a stream. */
class Pull {
  private buf: Buffer = Buffer.alloc(0);
  private readonly it: AsyncIterator<Buffer>;
  constructor(stream: AsyncIterable<unknown>) {
    this.it = stream[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  }
  async take(n: number): Promise<Buffer | undefined> {
    while (this.buf.length < n) {
      const r = await this.it.next();
      if (r.done) return undefined;
      this.buf = this.buf.length ? Buffer.concat([this.buf, r.value]) : r.value;
    }
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }
  async line(limit: number): Promise<string | undefined> {
    let s = '';
    for (;;) {
      const c = await this.take(1);
      if (!c) return undefined;
      if (c[0] === 0x0a) return s;
      s += String.fromCharCode(c[0]!);
      if (s.length > limit) return undefined;
    }
  }
}

/** Writes a sparse entry's data to `path` (created exclusively); returns its real size. */
export async function writeSparse(entry: AsyncIterable<unknown>, path: Buffer, pax: Record<string, string>, name: string, maxSize: number): Promise<number> {
  const pull = new Pull(entry);
  let map: number[];
  let consumed = 0;
  if (pax['GNU.sparse.major'] === '1' && pax['GNU.sparse.minor'] === '0') {
    const count = Number(await pull.line(20));
    consumed += String(count).length + 1;
    if (!Number.isSafeInteger(count) || count < 0 || count > 1_000_000) throw bad(name, 'map size');
    map = [];
    for (let i = 0; i < count * 2; i++) {
      const l = await pull.line(20);
      if (l === undefined) throw bad(name, 'truncated map');
      consumed += l.length + 1;
      map.push(Number(l));
    }
    const pad = (512 - (consumed % 512)) % 512;
    if (pad && !(await pull.take(pad))) throw bad(name, 'truncated map');
  } else if (pax['GNU.sparse.map'] !== undefined) {
    map = pax['GNU.sparse.map'].split(',').map(Number);
  } else {
    throw bad(name, 'unsupported GNU sparse format version');
  }
  if (map.length % 2 !== 0 || map.some((n) => !Number.isSafeInteger(n) || n < 0)) throw bad(name, 'map entries');
  const real = Number(pax['GNU.sparse.realsize'] ?? pax['GNU.sparse.size']);
  if (!Number.isSafeInteger(real) || real < 0) throw bad(name, 'real size');
  if (real > maxSize) throw new LayerfsError('LIMIT_EXCEEDED', `tar entry ${JSON.stringify(name)} claims ${real} bytes, over the ${maxSize}-byte limit`);
  const fh = await open(path, 'wx', 0o600);
  try {
    for (let i = 0; i < map.length; i += 2) {
      const off = map[i]!;
      let len = map[i + 1]!;
      if (off + len > real) throw bad(name, 'segment past the end');
      let pos = off;
      while (len > 0) {
        const piece = await pull.take(Math.min(len, 1024 * 1024));
        if (!piece) throw bad(name, 'truncated data');
        await fh.write(piece, 0, piece.length, pos);
        pos += piece.length;
        len -= piece.length;
      }
    }
    await fh.truncate(real);
  } finally {
    await fh.close();
  }
  // Drain whatever padding is left in the entry.
  while (await pull.take(1)) {
    /* discard */
  }
  return real;
}
