/**
 * The CLI's exit codes and how errors are printed: one line `layerfs: <message>`, then
 * the hint if there is one. The only place that maps error kinds to exit codes.
 */
import { LayerfsError, type ErrorCode } from '../core/errors.js';

/** 125 like docker: the error is layerfs's own, not the contained command's. */
export const EXIT_FAILURE = 125;

const byCode: Partial<Record<ErrorCode, number>> = {
  INVALID_ARGUMENT: 2,
  NOT_FOUND: 1,
};

export function exitCodeFor(err: unknown): number {
  return err instanceof LayerfsError ? (byCode[err.code] ?? EXIT_FAILURE) : EXIT_FAILURE;
}

export function printError(err: unknown): void {
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`layerfs: ${message}\n`);
  if (err instanceof LayerfsError && err.hint) process.stderr.write(`hint: ${err.hint}\n`);
  if (process.env.LAYERFS_DEBUG && err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`);
}
