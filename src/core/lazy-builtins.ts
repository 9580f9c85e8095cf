/**
 * Node built-ins that only rare paths of a mount process use, loaded at first use rather
 * than at start-up. Every container's mount is a fresh node process whose time to ready
 * its starter waits for, and loading one of these costs it milliseconds (measured on the
 * 2-core machine, loaded: node:zlib 5 ms, node:crypto 7 ms, node:child_process 7 ms) —
 * while only writing a new index cache (zlib's crc32, a random temp name), clearing a dead
 * mount or extracting in a user namespace (child processes) needs them.
 * `createRequire` loads a built-in synchronously, so callers stay as they were.
 */
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

export function zlib(): typeof import('node:zlib') {
  return require('node:zlib') as typeof import('node:zlib');
}

export function crypto(): typeof import('node:crypto') {
  return require('node:crypto') as typeof import('node:crypto');
}

export function childProcess(): typeof import('node:child_process') {
  return require('node:child_process') as typeof import('node:child_process');
}
