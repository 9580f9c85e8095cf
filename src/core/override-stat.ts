/**
 * `user.containers.override_stat`: the owner, mode and (when it differs from the file on
 * disk) type a file has in the image, for stores written without the privilege to chown
 * or mknod. The convention of containers-storage (rootless podman and buildah) and
 * fuse-overlayfs, so a layer written by either reads the same:
 *
 *   "<uid>:<gid>:<mode>[:<type>]"    uid, gid decimal; mode octal permission bits (0755)
 *   type: file | dir | symlink | pipe | socket | char-<major>-<minor> | block-<major>-<minor>
 *
 * e.g. "33:33:0640" or "0:0:0666:char-1-3" (a /dev/null stored as an empty regular file).
 * The mount reports the override instead of the file's own owner, mode and type.
 */
import { LayerfsError } from './errors.js';

export const OVERRIDE_STAT_XATTR = 'user.containers.override_stat';

export type OverrideType =
  | { kind: 'file' | 'dir' | 'symlink' | 'pipe' | 'socket' }
  | { kind: 'char' | 'block'; major: number; minor: number };

export interface OverrideStat {
  uid: number;
  gid: number;
  /** Permission bits only (07777). */
  mode: number;
  /** Present when the image's type differs from the type on disk. */
  type?: OverrideType;
}

const TYPE_BITS: Record<string, number> = { file: 0o100000, dir: 0o040000, symlink: 0o120000, pipe: 0o010000, socket: 0o140000, char: 0o020000, block: 0o060000 };

export function formatOverrideStat(o: OverrideStat): Buffer {
  let s = `${o.uid}:${o.gid}:${(o.mode & 0o7777).toString(8).padStart(4, '0')}`;
  if (o.type) s += o.type.kind === 'char' || o.type.kind === 'block' ? `:${o.type.kind}-${o.type.major}-${o.type.minor}` : `:${o.type.kind}`;
  return Buffer.from(s, 'latin1');
}

/** Parses the xattr's value; a malformed one is an INVALID_IMAGE error naming `where`. */
export function parseOverrideStat(value: Buffer, where: string): OverrideStat {
  const m = /^(\d+):(\d+):([0-7]{1,6})(?::(file|dir|symlink|pipe|socket|(char|block)-(\d+)-(\d+)))?$/.exec(value.toString('latin1'));
  if (!m) throw new LayerfsError('INVALID_IMAGE', `${where}: malformed ${OVERRIDE_STAT_XATTR} ${JSON.stringify(value.toString('latin1'))}`);
  const out: OverrideStat = { uid: Number(m[1]), gid: Number(m[2]), mode: parseInt(m[3]!, 8) & 0o7777 };
  if (m[5]) out.type = { kind: m[5] as 'char' | 'block', major: Number(m[6]), minor: Number(m[7]) };
  else if (m[4]) out.type = { kind: m[4] as 'file' | 'dir' | 'symlink' | 'pipe' | 'socket' };
  return out;
}

/** st_mode to report for a file with override `o` whose own st_mode is `diskMode`. */
export function overriddenMode(o: OverrideStat, diskMode: number): number {
  return (o.type ? TYPE_BITS[o.type.kind]! : diskMode & 0o170000) | o.mode;
}

/** The device a file with override `o` stands for, if any. */
export function overriddenDevice(o: OverrideStat): { major: number; minor: number } | undefined {
  return o.type && (o.type.kind === 'char' || o.type.kind === 'block') ? o.type : undefined;
}
