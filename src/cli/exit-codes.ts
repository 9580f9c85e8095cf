/**
 * The CLI's exit codes and how errors are printed: one line `layerfs: <message>`, then
 * the hint if there is one. The only place that maps errors to exit codes; verbs set
 * process.exitCode from the constants here, never from bare numbers.
 *
 *   every verb:            0 success · 1 the command failed · 2 usage (bad flags or arguments)
 *   run / exec / start:    125 layerfs itself failed (no such image, runtime error, …)
 *                          126 the command cannot be run (not executable)
 *                          127 the command was not found
 *                          else the contained process's own status
 * as `docker` does, so a script can tell a failure of layerfs from its command's exit 1.
 */
import { LayerfsError } from '../core/errors.js';

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;
/** `run`/`exec`/`start`: layerfs (not the contained command) failed. */
export const EXIT_OWN_FAILURE = 125;
/** `run`/`exec`/`start`: the command exists but cannot be run. */
export const EXIT_CANNOT_RUN = 126;
/** `run`/`exec`/`start`: the command was not found. */
export const EXIT_NOT_FOUND = 127;

/** Verbs whose exit code is their contained command's: their own failures use 125. */
const CONTAINER_VERBS = new Set(['run', 'exec', 'start']);

/** Whether an error is a usage error (bad flag value, bad argument form). */
function isUsage(err: unknown): boolean {
  return err instanceof LayerfsError && err.code === 'INVALID_ARGUMENT' && /^(usage|invalid --|unknown )/.test(err.message);
}

/** The exit code for an error thrown by `verb` (undefined before a verb was chosen). */
export function exitCodeFor(err: unknown, verb?: string): number {
  if (verb && CONTAINER_VERBS.has(verb)) return EXIT_OWN_FAILURE;
  return isUsage(err) ? EXIT_USAGE : EXIT_FAILURE;
}

/** The exit code for a commander parse error (unknown flag, missing argument) of `verb`. */
export function usageExitCode(verb?: string): number {
  return verb && CONTAINER_VERBS.has(verb) ? EXIT_OWN_FAILURE : EXIT_USAGE;
}

/** What printError prints for `err`, for a caller that writes it elsewhere (layerfs-overlay's mount process). */
export function errorText(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  let text = `layerfs: ${message}\n`;
  if (err instanceof LayerfsError && err.hint) text += `hint: ${err.hint}\n`;
  if (process.env.LAYERFS_DEBUG && err instanceof Error && err.stack) text += `${err.stack}\n`;
  return text;
}

export function printError(err: unknown): void {
  process.stderr.write(errorText(err));
}
