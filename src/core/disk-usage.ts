/**
 * Disk usage of a tree as containerd's snapshotters report it (fs.DiskUsage): allocated
 * bytes (st_blocks × 512) and the number of inodes, each hard-linked inode once.
 */
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { hasErrnoCode } from './errors.js';

/** Size in bytes and inode count; a missing tree uses nothing. */
export async function diskUsage(root: string): Promise<{ size: number; inodes: number }> {
  const seen = new Set<bigint>();
  let size = 0;
  const visit = async (path: string): Promise<void> => {
    let st;
    try {
      st = await lstat(path, { bigint: true });
    } catch (err) {
      if (hasErrnoCode(err, 'ENOENT')) return; // removed while we walked
      throw err;
    }
    if (!seen.has(st.ino)) {
      seen.add(st.ino);
      size += Number(st.blocks) * 512;
    }
    if (!st.isDirectory()) return;
    let names: string[];
    try {
      names = await readdir(path);
    } catch (err) {
      if (hasErrnoCode(err, 'ENOENT')) return;
      throw err;
    }
    for (const n of names) await visit(join(path, n));
  };
  await visit(root);
  return { size, inodes: seen.size };
}
