/**
 * The CLI's exit codes and how errors are printed: one line `layerfs: <message>`, then
 * the hint if there is one. The only place that maps errors to exit codes.
 *   0 success · 1 the command failed (as docker's CLI) · 2 usage error (bad flags)
 * `layerfs run` adds docker run's own: 125 (layerfs failed), 126/127 (cannot run / not
 * found), else the contained process's status.
 */
import { LayerfsError } from '../core/errors.js';

export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

export function exitCodeFor(err: unknown): number {
  return err instanceof LayerfsError && err.code === 'INVALID_ARGUMENT' && /^usage/.test(err.message) ? EXIT_USAGE : EXIT_FAILURE;
}

export function printError(err: unknown): void {
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`layerfs: ${message}\n`);
  if (err instanceof LayerfsError && err.hint) process.stderr.write(`hint: ${err.hint}\n`);
  if (process.env.LAYERFS_DEBUG && err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`);
}
