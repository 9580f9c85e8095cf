/**
 * Inode numbering. st_ino must be stable across remounts and unchanged by copy-up, and
 * distinct across layers that may share a backing filesystem. A number is
 * `tag * 2^40 + backingIno mod 2^40`, tag 1 for the writable layer and 2 + i for lower
 * layer i, which stays an exact JavaScript number (< 2^53) for up to 8,190 layers.
 * A copied-up object keeps the number of its lower original (recorded in the
 * trusted.overlay.layerfs.origin xattr), so `ls -i` before and after a write agree; not so a file
 * with other names in its layer, whose copy is a separate inode. Hard links inside a
 * layer share a backing inode and so share the number. The constants are defined once,
 * with native code's copy, in src/engine/formats/inode-numbers.ts.
 */
import { LOWER_FIRST_TAG, SPAN_BITS, UPPER_TAG } from '../engine/formats/inode-numbers.js';

const SPAN = 2 ** SPAN_BITS;

/** st_ino of an object in lower layer `layer` whose backing inode is `backingIno`. */
export function lowerIno(layer: number, backingIno: number | bigint): number {
  return (layer + LOWER_FIRST_TAG) * SPAN + spanOf(backingIno);
}

/** st_ino of an object created in the writable layer. */
export function upperIno(backingIno: number | bigint): number {
  return UPPER_TAG * SPAN + spanOf(backingIno);
}

/** backingIno mod SPAN; without BigInt for the exact numbers the index holds (a lookup
 * makes one per answer). */
function spanOf(backingIno: number | bigint): number {
  if (typeof backingIno === 'number' && Number.isSafeInteger(backingIno) && backingIno >= 0) return backingIno % SPAN;
  return Number(BigInt(backingIno) % BigInt(SPAN));
}

/** Encodes an inode number for the origin xattr. */
export function encodeOrigin(ino: number): Buffer {
  return Buffer.from(String(ino), 'latin1');
}

/** Decodes the origin xattr; undefined when absent or malformed. */
export function decodeOrigin(value: Buffer | null): number | undefined {
  if (value === null) return undefined;
  const n = Number(value.toString('latin1'));
  return Number.isSafeInteger(n) && n > 0 ? n : undefined;
}
