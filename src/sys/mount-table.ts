/**
 * The kernel's mount table, and the one safe way to clear a FUSE mount whose server is
 * gone: abort its connection (/sys/fs/fuse/connections/N/abort, N = the mount's device
 * minor) so nothing stays blocked, then detach it with `umount -l`.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import * as lazy from '../core/lazy-builtins.js';
import { isRootless } from '../core/user-dirs.js';

/** A program's run to its end (child processes load at first use: core/lazy-builtins.ts). */
const run = (file: string, args: string[]) => promisify(lazy.childProcess().execFile)(file, args);

export interface MountEntry {
  /** The mount's ID and its parent's (the mount it sits on). */
  id: number;
  parent: number;
  mountpoint: string;
  fstype: string;
  source: string;
  /** "major:minor" of the mount's device; for FUSE the minor is the connection number. */
  device: string;
}

function unescapeField(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** Parses mountinfo text (fields per proc(5)). */
export function parseMountinfo(text: string): MountEntry[] {
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const fields = line.split(' ');
      const dash = fields.indexOf('-');
      return {
        id: Number(fields[0]),
        parent: Number(fields[1]),
        mountpoint: unescapeField(fields[4] ?? ''),
        fstype: fields[dash + 1] ?? '',
        source: unescapeField(fields[dash + 2] ?? ''),
        device: fields[2] ?? '',
      };
    });
}

export async function listMounts(): Promise<MountEntry[]> {
  return parseMountinfo(await readFile('/proc/self/mountinfo', 'utf8'));
}

export async function mountsAt(mountpoint: string): Promise<MountEntry[]> {
  return (await listMounts()).filter((m) => m.mountpoint === mountpoint);
}

/**
 * The mount on top at `mountpoint` — what a path lookup reaches and what umount(8)
 * removes: of the mounts there, the one none of the others sits on.
 */
export async function topMountAt(mountpoint: string): Promise<MountEntry | undefined> {
  const at = await mountsAt(mountpoint);
  return [...at].reverse().find((m) => !at.some((o) => o !== m && o.parent === m.id));
}

/**
 * Aborts the FUSE connection of every mount at `mountpoint` (except devices in `keep`)
 * and detaches it. Safe on dead mounts ("Transport endpoint is not connected"). An
 * ordinary user may abort their own connections (fusectl gives the mounter the abort
 * file) but not umount(8): their FUSE mounts are detached with `fusermount3 -u -z`.
 */
export async function abortAndDetach(mountpoint: string, keep: ReadonlySet<string> = new Set()): Promise<void> {
  const entries = (await mountsAt(mountpoint)).filter((m) => !keep.has(m.device)).reverse();
  for (const m of entries) {
    if (m.fstype.startsWith('fuse')) {
      const minor = m.device.split(':')[1];
      await writeFile(`/sys/fs/fuse/connections/${minor}/abort`, '1').catch(() => undefined);
    }
    if (isRootless() && m.fstype.startsWith('fuse')) await run('fusermount3', ['-u', '-z', mountpoint]).catch(() => undefined);
    else await run('umount', ['-l', mountpoint]).catch(() => undefined);
  }
}
