/** Serves a union of test layers over a real FUSE mount in a child process. */
import { chmod, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { UnionMountConfig } from '../../src/fuse/union-mount-config.js';
import { mountProcessEntry } from '../../src/fuse/mount-process.js';
import { startMountProcess, type MountProcess } from './mount-process.js';

/** What the supervisor starts: the build's bundle of the mount process (else its entry). */
export const UNION_MOUNT_MAIN = mountProcessEntry();

export async function mountUnion(
  config: Omit<UnionMountConfig, 'mountpoint'> & { mountpoint?: string },
  dir: string,
  env?: NodeJS.ProcessEnv,
): Promise<MountProcess> {
  const mountpoint = config.mountpoint ?? join(dir, 'mnt');
  await mkdir(mountpoint, { recursive: true });
  // Other uids (permission tests) must reach the mountpoint.
  await chmod(dir, 0o755);
  return startMountProcess(process.execPath, [UNION_MOUNT_MAIN, JSON.stringify({ ...config, mountpoint })], mountpoint, {
    ...(env !== undefined ? { env: { ...process.env, ...env } } : {}),
  });
}
