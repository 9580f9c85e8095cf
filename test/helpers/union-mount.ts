/** Serves a union of test layers over a real FUSE mount in a child process. */
import { chmod, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { UnionMountConfig } from '../../src/fuse/union-mount-config.js';
import { REPO } from './cli.js';
import { startMountProcess, type MountProcess } from './mount-process.js';

export const UNION_MOUNT_MAIN = join(REPO, 'dist', 'fuse', 'union-mount-main.js');

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
