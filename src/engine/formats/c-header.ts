/**
 * The shape in which a format module (this folder) describes itself to the C side:
 * scripts/generate-formats.mjs loads each module's `C_HEADER` and writes it as
 * src/engine/native/generated/<name>.h, so C never restates a number TypeScript owns.
 * Format modules import only types from here: the generator transpiles each module on
 * its own (typescript's transpileModule), so they must not import values.
 */

/** One `#define`. Integers are written in hex when `hex` is set (bit masks). */
export interface CConstant {
  name: string;
  value: number | bigint;
  /** What it is, for the comment above it. */
  doc: string;
  hex?: boolean;
  /** C suffix, e.g. 'u' or 'ULL' (default: 'u' for numbers, 'ULL' for bigints). */
  suffix?: string;
}

/** A generated header. */
export interface CHeader {
  /** File name under src/engine/native/generated/, e.g. 'handle-bits.h'. */
  file: string;
  /** The header comment: what the format is, in a few lines. */
  doc: string;
  constants: CConstant[];
}
