/**
 * Reading and cleaning the kernel's mount table. A stuck FUSE mount is aborted through
 * /sys/fs/fuse/connections/N/abort (N is the mount's device minor) and then detached
 * with `umount -l`, the only order that never hangs.
 */
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface MountEntry {
  mountpoint: string;
  fstype: string;
  source: string;
  /** "major:minor" of the mount's device; for FUSE the minor is the connection number. */
  device: string;
}

function unescape(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** Parses /proc/self/mountinfo. */
export function listMounts(): MountEntry[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const fields = line.split(' ');
      const dash = fields.indexOf('-');
      return {
        mountpoint: unescape(fields[4] ?? ''),
        fstype: fields[dash + 1] ?? '',
        source: unescape(fields[dash + 2] ?? ''),
        device: fields[2] ?? '',
      };
    });
}

/** FUSE and overlay mounts: the kinds layerfs tests create. */
export function unionMounts(): MountEntry[] {
  return listMounts().filter((m) => m.fstype.startsWith('fuse') && m.fstype !== 'fusectl' || m.fstype === 'overlay');
}

export function isMounted(mountpoint: string): boolean {
  return listMounts().some((m) => m.mountpoint === mountpoint);
}

/** Devices of the mounts stacked on `mountpoint` now. */
export function mountDevices(mountpoint: string): Set<string> {
  return new Set(listMounts().filter((m) => m.mountpoint === mountpoint).map((m) => m.device));
}

/**
 * Aborts the FUSE connection (if any) and lazily unmounts; safe on a dead mount. Mounts
 * whose device is in `keep` (there before we started) are left alone.
 */
export async function forceUnmount(mountpoint: string, keep: Set<string> = new Set()): Promise<void> {
  for (const m of listMounts().filter((e) => e.mountpoint === mountpoint && !keep.has(e.device)).reverse()) {
    if (m.fstype.startsWith('fuse')) {
      const minor = m.device.split(':')[1];
      try {
        writeFileSync(`/sys/fs/fuse/connections/${minor}/abort`, '1');
      } catch {
        // Already gone: nothing to abort.
      }
    }
    await run('umount', ['-l', mountpoint]).catch(() => undefined);
  }
}
