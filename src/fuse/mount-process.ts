/**
 * Where the mount process is: fuse/ owns `union-mount-main.ts`, so it also says which
 * file to start and how to recognise a running one; the supervisor and `layerfs-overlay`
 * start it without knowing fuse/'s file names.
 */
import { existsSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LayerfsError } from '../core/errors.js';

/** The entry's base name, as it appears in the process's command line. */
export const MOUNT_PROCESS_NAME = 'union-mount-main';

/**
 * Node flags for the mount process: a young generation of 1 MiB semi-spaces (V8 grows it
 * to 16 MiB when much survives, as a growing node table does). A FUSE server's garbage is
 * short-lived request objects; the large young generation only kept ~35 MiB more resident
 * after a 100k-entry walk, for no CPU measured (native-notes/engine.md, "LOOKUP").
 * src/cli/layerfs-overlay.sh, a shell script, repeats them: keep the two alike.
 */
export const MOUNT_PROCESS_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=1'];

/**
 * The mount process's environment: `env` without NODE_EXTRA_CA_CERTS. Node 20 reads and
 * parses that file, with its own root certificates, at every start, TLS or not: ~40 ms CPU
 * for a distribution's bundle here, a sixth of a mount's start-up (native-notes/performance.md,
 * "Mount-to-ready: a startup snapshot"). The mount process makes no TLS connection, nor does
 * anything it starts (fusermount, umount). src/cli/layerfs-overlay.sh drops it too.
 */
export function mountProcessEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const { NODE_EXTRA_CA_CERTS: _unused, ...rest } = env;
  return rest;
}

/**
 * The compiled mount-process entry (also when this module runs from src/ under tests): its
 * one-file CommonJS bundle when the build made one (scripts/bundle-mount.mjs: a container's
 * mount is ready ~60 ms sooner), else the entry tsc wrote.
 */
export function mountProcessEntry(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  for (const dir of [here, join(here, '..', '..', 'dist', 'fuse')]) {
    for (const file of [`${MOUNT_PROCESS_NAME}.bundle.cjs`, `${MOUNT_PROCESS_NAME}.js`]) {
      if (existsSync(join(dir, file))) return join(dir, file);
    }
  }
  throw new LayerfsError('FAILED_PRECONDITION', 'the mount process is not built', { hint: 'run `npm run build`' });
}

/** One line of a mount process's log: time, process, text. */
export function mountLogLine(line: string): string {
  return `${new Date().toISOString()} layerfs-mount[${process.pid}]: ${line}\n`;
}

/**
 * Writes a line of the mount process's log to fd 2 (wherever its starter pointed it) and
 * never throws. Through process.stderr a reader that went away (EPIPE) became an 'error'
 * event, an uncaught exception, whose handler logged it — another EPIPE: the process spun
 * at 100 % CPU for ever, mount or no mount (seen after a test runner was killed). Here a
 * line nobody can take (EPIPE, EAGAIN on a full non-blocking pipe) is dropped; the mount
 * goes on either way.
 */
export function writeMountLog(line: string): void {
  const bytes = Buffer.from(mountLogLine(line));
  try {
    for (let off = 0; off < bytes.length; ) off += writeSync(2, bytes, off);
  } catch {
    // Dropped: see above.
  }
}
