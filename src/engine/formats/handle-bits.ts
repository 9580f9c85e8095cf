/**
 * How the fuse-native binding packs an open file into libfuse's 64-bit `fi->fh`: the ONE
 * definition of the bits (src/engine/native/handle.h reads them from the generated
 * handle-bits.h). JavaScript only ever sees the JS handle (bits 0–31).
 *   bits 0–31   the JS handle (0 for a native-only open, which keeps layer + 1 there)
 *   bits 32–55  the backing fd + 1 (0: none), so an fd must be below 2^24 - 1
 *   bit 61      fgetattr may be answered by fstat (st_ino: 2^40 + backing inode)
 *   bit 62      writes may go straight to the fd
 *   bit 63      native-only open (C opened the fd and closes it at release)
 */
import type { CHeader } from './c-header.js';

export const JS_BITS = 32;
export const FD_SHIFT = 32;
export const FD_BITS = 24;
export const UPPER_INO_BIT = 61;
export const WRITE_BIT = 62;
export const NATIVE_BIT = 63;

/** The packed handle, as C packs it (bigint: it does not fit a JS number). */
export function packHandle(js: number, fd: number, opts: { write?: boolean; native?: boolean; upperIno?: boolean } = {}): bigint {
  let fh = BigInt(js >>> 0);
  if (fd >= 0 && fd < 2 ** FD_BITS - 1) {
    fh |= BigInt(fd + 1) << BigInt(FD_SHIFT);
    if (opts.write) fh |= 1n << BigInt(WRITE_BIT);
    if (opts.upperIno) fh |= 1n << BigInt(UPPER_INO_BIT);
  }
  if (opts.native) fh |= 1n << BigInt(NATIVE_BIT);
  return fh;
}

export const C_HEADER: CHeader = {
  file: 'handle-bits.h',
  doc: 'Bits of the fuse-native binding\'s fi->fh (src/engine/formats/handle-bits.ts).',
  constants: [
    { name: 'LF_FH_JS_MASK', value: (1n << BigInt(JS_BITS)) - 1n, hex: true, doc: 'bits 0-31: the JS handle' },
    { name: 'LF_FH_FD_SHIFT', value: FD_SHIFT, doc: 'the backing fd + 1 starts at this bit' },
    { name: 'LF_FH_FD_MASK', value: (1n << BigInt(FD_BITS)) - 1n, hex: true, doc: 'the fd + 1 field, shifted down (bits 32-55)' },
    { name: 'LF_FH_UPPER_INO', value: 1n << BigInt(UPPER_INO_BIT), hex: true, doc: 'bit 61: fgetattr by fstat, st_ino 2^40 + backing inode' },
    { name: 'LF_FH_WRITE', value: 1n << BigInt(WRITE_BIT), hex: true, doc: 'bit 62: writes may go straight to the fd' },
    { name: 'LF_FH_NATIVE', value: 1n << BigInt(NATIVE_BIT), hex: true, doc: 'bit 63: native-only open, C closes the fd' },
  ],
};
