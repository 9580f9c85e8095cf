/**
 * Synchronous views of the mount table for tests, on top of src/sys/mount-table.ts
 * (which also does the cleaning: abort the FUSE connection, then `umount -l`).
 */
import { readFileSync } from 'node:fs';
import { abortAndDetach, parseMountinfo, type MountEntry } from '../../src/sys/mount-table.js';

export type { MountEntry };

export function listMounts(): MountEntry[] {
  return parseMountinfo(readFileSync('/proc/self/mountinfo', 'utf8'));
}

/** FUSE and overlay mounts: the kinds layerfs tests create. */
export function unionMounts(): MountEntry[] {
  return listMounts().filter((m) => (m.fstype.startsWith('fuse') && m.fstype !== 'fusectl') || m.fstype === 'overlay');
}

export function isMounted(mountpoint: string): boolean {
  return listMounts().some((m) => m.mountpoint === mountpoint);
}

/** Devices of the mounts stacked on `mountpoint` now. */
export function mountDevices(mountpoint: string): Set<string> {
  return new Set(listMounts().filter((m) => m.mountpoint === mountpoint).map((m) => m.device));
}

/** Aborts and lazily unmounts everything at `mountpoint` except devices in `keep`. */
export function forceUnmount(mountpoint: string, keep: Set<string> = new Set()): Promise<void> {
  return abortAndDetach(mountpoint, keep);
}
