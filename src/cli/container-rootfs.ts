/**
 * A container's merged root filesystem for a host-side operation (`cp`, `export`):
 * its mount point when it is mounted, else a mount made for the operation (in the
 * container's folder, removed after) — always through the union, so writes copy up and
 * replace as the container's own would. A running container is frozen (the runtime's
 * pause) for the duration, as docker does since CVE-2018-15664: no process of it can
 * swap a checked path for a symlink between the check and the use.
 */
import { mkdir, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { findRunContainer, isRunning, OciRuntime } from '../sandbox/index.js';
import type { Store } from '../store/index.js';
import { type ContainerRecord, Supervisor } from '../supervisor/index.js';

/** Runs `fn` with the host path of the container's merged root. */
export async function withContainerRootfs<T>(store: Store, ref: string, fn: (rootfs: string, record: ContainerRecord) => Promise<T>): Promise<T> {
  const supervisor = new Supervisor(store);
  const c = await findRunContainer(store, ref);
  const frozen = c.state && (await isRunning(c)) ? await OciRuntime.locate(c.state.runtime, store.paths.root) : undefined;
  await frozen?.freeze(c.record.id, true);
  try {
    if (c.record.state === 'mounted' && c.record.mountpoint) return await fn(c.record.mountpoint, c.record);
    const mnt = join(c.dir, `op-mount-${process.pid}`);
    await mkdir(mnt, { recursive: true });
    try {
      const record = await supervisor.mount({ imageRef: c.record.image, mountpoint: mnt, name: c.record.name });
      try {
        return await fn(mnt, record);
      } finally {
        await supervisor.unmount(record.id);
      }
    } finally {
      // rmdir, never a recursive rm: were the unmount to have failed, that would empty the container.
      await rmdir(mnt).catch(() => undefined);
    }
  } finally {
    await frozen?.freeze(c.record.id, false);
  }
}
