/**
 * Where the mount process is: fuse/ owns `union-mount-main.ts`, so it also says which
 * file to start and how to recognise a running one; the supervisor and `layerfs-overlay`
 * start it without knowing fuse/'s file names.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LayerfsError } from '../core/errors.js';

/** The entry's base name, as it appears in the process's command line. */
export const MOUNT_PROCESS_NAME = 'union-mount-main';

/** The compiled mount-process entry (also when this module runs from src/ under tests). */
export function mountProcessEntry(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const sibling = join(here, `${MOUNT_PROCESS_NAME}.js`);
  if (existsSync(sibling)) return sibling;
  const fromSrc = join(here, '..', '..', 'dist', 'fuse', `${MOUNT_PROCESS_NAME}.js`);
  if (existsSync(fromSrc)) return fromSrc;
  throw new LayerfsError('FAILED_PRECONDITION', 'the mount process is not built', { hint: 'run `npm run build`' });
}

/** One line of a mount process's log: time, process, text. */
export function mountLogLine(line: string): string {
  return `${new Date().toISOString()} layerfs-mount[${process.pid}]: ${line}\n`;
}
