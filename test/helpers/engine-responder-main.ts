/**
 * A child process serving the minimal responder (engine-responder.ts) on a real mount:
 *   vite-node test/helpers/engine-responder-main.ts -- MOUNTPOINT BACKING_FILE [fusermount|attach-fd=N]
 * (attach-fd=N: serve the already mounted connection inherited as fd N, without detaching
 * it at the end: the parent that mounted it removes it. exit: process.exit(0) right after
 * READY, without unmounting.)
 * Prints READY once mounted and INIT answered, then `read <sha256>` of `file` as read
 * through the mount by this process itself (async, so the JS thread keeps serving).
 * SIGTERM unmounts, prints `left <n>` (mounts still at MOUNTPOINT in this process's mount
 * namespace) and exits 0.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { mountsAt } from '../../src/sys/mount-table.js';
import { join } from 'node:path';
import { attachFuseDevice, mountFuseDevice } from '../../src/engine/device.js';
import { FUSE, serveMinimal } from './engine-responder.js';

const [mountpoint, backingPath, mode] = process.argv.slice(2).filter((a) => a !== '--');
if (!mountpoint || !backingPath) {
  console.error('usage: engine-responder-main MOUNTPOINT BACKING_FILE [fusermount|attach-fd=N]');
  process.exit(2);
}
const attachFd = mode?.startsWith('attach-fd=') ? Number(mode.slice('attach-fd='.length)) : undefined;
const device = attachFd !== undefined
  ? attachFuseDevice(attachFd, mountpoint, { detach: false })
  : await mountFuseDevice({ // mode 'exit' mounts like the default
      mountpoint, fsname: 'engine-test', subtype: 'layerfs-engine-test', allowOther: false, defaultPermissions: true,
      rootMode: 0o40755, useFusermount: mode === 'fusermount',
    });
const responder = serveMinimal(device, { backingPath, passthrough: false });
process.on('SIGTERM', () => {
  void device.unmount().then(
    async () => {
      console.log(`left ${(await mountsAt(mountpoint)).length}`);
      process.exit(0);
    },
    (err: unknown) => {
      console.error(String(err));
      process.exit(1);
    },
  );
});
const content = await readFile(join(mountpoint, 'file'));
if (!responder.counts.get(FUSE.INIT)) throw new Error('no INIT before the first read');
console.log('READY');
console.log(`read ${createHash('sha256').update(content).digest('hex')}`);
if (mode === 'exit') process.exit(0);
