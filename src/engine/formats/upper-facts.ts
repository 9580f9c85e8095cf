/**
 * The flag word that carries UpperFacts (src/core/filesystem.ts) from the union to the
 * native upper set (src/engine/native/upper-set.h): the ONE definition of its bits.
 */
import type { CHeader } from './c-header.js';

/** It hides what the lower layers have below it (whiteout, opaque or redirected dir, non-dir). */
export const HIDES_LOWER = 1;
/** Known to have no visible xattr: getxattr answers ENODATA, listxattr empty. */
export const NO_XATTRS = 2;
/** Its stat is its own (no lower directory merged in): lstat it in the upper directory. */
export const OWN_STAT = 4;
/** A whiteout: the path does not exist. */
export const WHITEOUT = 8;

/** The facts a MetadataMirror is given, as one flag word. */
export function upperFlags(facts: { kind: string; hidesLower: boolean; noXattrs: boolean; ownStat: boolean }): number {
  return (facts.hidesLower ? HIDES_LOWER : 0) | (facts.noXattrs ? NO_XATTRS : 0) | (facts.ownStat ? OWN_STAT : 0) | (facts.kind === 'whiteout' ? WHITEOUT : 0);
}

export const C_HEADER: CHeader = {
  file: 'upper-facts.h',
  doc: 'Flag bits of an upper-set entry (src/engine/formats/upper-facts.ts).',
  constants: [
    { name: 'LF_UPPER_HIDES_LOWER', value: HIDES_LOWER, hex: true, doc: 'hides the lower layers below it' },
    { name: 'LF_UPPER_NO_XATTRS', value: NO_XATTRS, hex: true, doc: 'known to have no visible xattr' },
    { name: 'LF_UPPER_OWN_STAT', value: OWN_STAT, hex: true, doc: 'its stat is its own: lstat it in the upper directory' },
    { name: 'LF_UPPER_WHITEOUT', value: WHITEOUT, hex: true, doc: 'a whiteout: ENOENT' },
    { name: 'LF_UPPER_ALL', value: HIDES_LOWER | NO_XATTRS | OWN_STAT | WHITEOUT, hex: true, doc: 'every defined bit' },
  ],
};
