/**
 * LOOKUPs the request loop answers in C (src/engine/native/lookup.c; native-notes/engine.md
 * "LOOKUP in C"), the ONE definition for both sides:
 *
 * Node ids. JS numbers its nodes from 2 up; the loop numbers the nodes it makes from
 * ID_FIRST up, so the two never meet (both exact as JS numbers: below 2^53).
 *
 * Records. Every node the loop makes or looks up again is told to JS, before JS runs any
 * other request, as one record in a packed batch (little-endian):
 *   f64 parent   the directory's node id
 *   f64 id       the entry's node id
 *   f64 ino      its st_ino
 *   u32 flags    FLAG_* below
 *   u32 nameLen  then the name's bytes, zero-padded to a multiple of 8
 */
import type { CHeader } from './c-header.js';

export const ID_FIRST = 2 ** 52;

export const RECORD_PARENT = 0;
export const RECORD_ID = 8;
export const RECORD_INO = 16;
export const RECORD_FLAGS = 24;
export const RECORD_NAME_LEN = 28;
export const RECORD_NAME = 32;

/** The object has no xattr (the loop marked the node: its GETXATTR/LISTXATTR are C's). */
export const FLAG_NO_XATTRS = 1;
/** A regular file registered for its opens in C (node-opens.h), in the current epoch. */
export const FLAG_FILE = 2;
/** A directory or symlink whose GETATTR (and OPENDIR: a directory) C answers. */
export const FLAG_ATTR = 4;
/** A directory the loop looks up in itself (a mark). */
export const FLAG_MARKED = 8;

/** The size of the record of a `nameLen`-byte name. */
export function recordSize(nameLen: number): number {
  return RECORD_NAME + ((nameLen + 7) & ~7);
}

export const C_HEADER: CHeader = {
  file: 'loop-lookups.h',
  doc: 'LOOKUPs answered by the request loop: node ids and records for JS (src/engine/formats/loop-lookups.ts).',
  constants: [
    { name: 'LF_LOOKUP_ID_FIRST', value: BigInt(ID_FIRST), hex: true, doc: 'the first node id the loop hands out (JS counts from 2)' },
    { name: 'LF_REC_PARENT', value: RECORD_PARENT, doc: 'f64: the directory' },
    { name: 'LF_REC_ID', value: RECORD_ID, doc: 'f64: the node id' },
    { name: 'LF_REC_INO', value: RECORD_INO, doc: 'f64: st_ino' },
    { name: 'LF_REC_FLAGS', value: RECORD_FLAGS, doc: 'u32: LF_REC_F_*' },
    { name: 'LF_REC_NAME_LEN', value: RECORD_NAME_LEN, doc: 'u32: the name length' },
    { name: 'LF_REC_NAME', value: RECORD_NAME, doc: 'the name, zero-padded to 8' },
    { name: 'LF_REC_F_NO_XATTRS', value: FLAG_NO_XATTRS, hex: true, doc: 'no xattr: C answers GETXATTR/LISTXATTR' },
    { name: 'LF_REC_F_FILE', value: FLAG_FILE, hex: true, doc: 'a lower file registered for opens in C' },
    { name: 'LF_REC_F_ATTR', value: FLAG_ATTR, hex: true, doc: 'a directory or symlink whose GETATTR C answers' },
    { name: 'LF_REC_F_MARKED', value: FLAG_MARKED, hex: true, doc: 'a directory C looks up in' },
  ],
};
