/**
 * Child-process entry that serves the probe filesystem:
 *   vite-node test/helpers/probe-main.ts -- MOUNTPOINT LOGFILE [SLOW_MS] [EXTRA_OPTION...]
 * Prints "READY" once mounted; unmounts on SIGTERM/SIGINT. Reads of /gated/big wait for
 * SIGUSR1 (probe-filesystem.ts).
 */
import { serveFilesystem } from '../../src/fuse/fuse-server.js';
import { createProbeFilesystem } from './probe-filesystem.js';

const [mountpoint, logFile, slowMs = '30000', ...extra] = process.argv.slice(2).filter((a) => a !== '--');
if (!mountpoint || !logFile) {
  console.error('usage: probe-main MOUNTPOINT LOGFILE [SLOW_MS] [EXTRA_OPTION...]');
  process.exit(2);
}
const gate = new Promise<void>((open) => process.on('SIGUSR1', () => open()));
try {
  const mount = await serveFilesystem(createProbeFilesystem({ logFile, slowMs: Number(slowMs), gate }), mountpoint, {
    fsname: 'layerfs-probe',
    extra,
    onUnexpectedError: (err, op) => console.error(`probe: ${op}: ${(err as Error).message}`),
  });
  const stop = () => void mount.unmount().finally(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  console.log('READY');
} catch (err) {
  console.error(`probe: ${(err as Error).message}`);
  process.exit(1);
}
