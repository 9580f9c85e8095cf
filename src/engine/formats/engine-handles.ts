/**
 * The layerfs engine's file handles (fuse_open_out.fh), the ONE definition for both sides
 * (src/engine/native/js-loop.c reads generated/engine-handles.h):
 *   below 2^31          a handle of the filesystem (JS: src/engine/open-files.ts)
 *   NATIVE_OPEN + fd    an open the request loop answered in C (a read-only lower file,
 *                       native-notes/engine.md "Lower opens in C"): C holds `fd` and
 *                       closes it at RELEASE; JS never sees such an OPEN or RELEASE.
 *   NATIVE_DIR + n      an OPENDIR the request loop answered in C (a directory JS
 *                       registered, native-notes/engine.md "Directory opens in C"): a
 *                       READDIR of it reaches JS, which adopts the handle (its RELEASEDIR
 *                       then reaches JS too); otherwise C answers its RELEASEDIR.
 * Exact as JS numbers (below 2^53).
 */
import type { CHeader } from './c-header.js';

export const NATIVE_OPEN_BIT = 40;
export const NATIVE_OPEN = 2 ** NATIVE_OPEN_BIT;

/** The fd C holds behind `fh`, or -1 when `fh` is not a C-answered open. */
export function nativeOpenFd(fh: number): number {
  return fh >= NATIVE_OPEN && fh < NATIVE_OPEN * 2 ? fh - NATIVE_OPEN : -1;
}

export const NATIVE_DIR_BIT = 41;
export const NATIVE_DIR = 2 ** NATIVE_DIR_BIT;

/** Whether `fh` is a directory handle the request loop made (an OPENDIR answered in C). */
export function isNativeDir(fh: number): boolean {
  return fh >= NATIVE_DIR && fh < NATIVE_DIR * 2;
}

export const C_HEADER: CHeader = {
  file: 'engine-handles.h',
  doc: 'The layerfs engine\'s fuse_open_out.fh (src/engine/formats/engine-handles.ts).',
  constants: [
    { name: 'LF_OPEN_NATIVE', value: 1n << BigInt(NATIVE_OPEN_BIT), hex: true, doc: 'fh = this + fd: an open answered in C, which closes fd at RELEASE' },
    { name: 'LF_DIR_NATIVE', value: 1n << BigInt(NATIVE_DIR_BIT), hex: true, doc: 'fh = this + n: an OPENDIR answered in C' },
  ],
};
