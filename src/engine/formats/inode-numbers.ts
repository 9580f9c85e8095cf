/**
 * st_ino numbering shared by the union (src/overlay/inode.ts) and native code
 * (src/engine/native/resolve.h): tag * 2^SPAN_BITS + backing inode mod 2^SPAN_BITS,
 * tag UPPER_TAG for the writable layer and LOWER_FIRST_TAG + i for lower layer i.
 */
import type { CHeader } from './c-header.js';

export const SPAN_BITS = 40;
export const UPPER_TAG = 1;
export const LOWER_FIRST_TAG = 2;

export const C_HEADER: CHeader = {
  file: 'inode-numbers.h',
  doc: 'st_ino numbering (src/engine/formats/inode-numbers.ts).',
  constants: [
    { name: 'LF_INO_SPAN_BITS', value: SPAN_BITS, doc: 'backing inodes are taken mod 2^this' },
    { name: 'LF_INO_TAG_UPPER', value: UPPER_TAG, doc: 'tag of objects made in the writable layer' },
    { name: 'LF_INO_TAG_LOWER_FIRST', value: LOWER_FIRST_TAG, doc: 'tag of lower layer 0; layer i has this + i' },
  ],
};
