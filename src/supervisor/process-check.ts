/** Whether a recorded pid is still our mount process (and not a recycled pid). */
import { readFile } from 'node:fs/promises';
import { MOUNT_PROCESS_NAME } from '../fuse/index.js';

export async function isMountProcess(pid: number | null): Promise<boolean> {
  if (!pid) return false;
  try {
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8');
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // A zombie has exited already: its mount is dead even if the pid is still listed.
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return cmdline.includes(MOUNT_PROCESS_NAME) && state !== 'Z';
  } catch {
    return false;
  }
}

export async function waitForExit(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!(await isMountProcess(pid))) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return false;
}
