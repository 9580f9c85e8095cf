/**
 * The supervisor's mount process: serves one union mount until it is unmounted or told to stop.
 *   node union-mount-main.js '<UnionMountConfig JSON>' [--ready-fd N]
 * Writes "READY" on the ready fd (default: stdout) once the kernel has initialised the
 * mount (union-mount-serve.ts); its own output goes wherever its starter pointed stderr.
 */
import { closeSync, writeSync } from 'node:fs';
import { writeMountLog as log } from './mount-process.js';
import { parseUnionMountConfig } from './union-mount-config.js';
import { serveUnionMount } from './union-mount-serve.js';

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const readyIdx = args.indexOf('--ready-fd');
  const readyFd = readyIdx >= 0 ? Number(args[readyIdx + 1]) : 1;
  const config = parseUnionMountConfig(args[0] ?? '');
  // The log says what serves the mount before anyone is told it is ready.
  log(await serveUnionMount(config, log));
  writeSync(readyFd, 'READY\n');
  if (readyFd !== 1) closeSync(readyFd);
}

// The handlers answer every op themselves; anything that still escapes is logged, never
// allowed to end the process and leave a dead mountpoint behind.
process.on('uncaughtException', (err) => log(`uncaught: ${err.stack ?? err.message}`));
process.on('unhandledRejection', (err) => log(`unhandled rejection: ${(err as Error)?.stack ?? String(err)}`));

main().catch((err: unknown) => {
  log(`cannot mount: ${(err as Error).message}`);
  process.exit(1);
});
