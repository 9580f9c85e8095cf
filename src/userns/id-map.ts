/**
 * The user namespace an ordinary user's layers are written in, laid out as rootless
 * podman lays it out: namespace id 0 is the user's own uid/gid, ids 1…count are the
 * user's subordinate range. So image uid 0 is owned by the user on disk, and image uid
 * N ≥ 1 by host uid start+N-1 (uid 33 → 100032 for a range starting at 100000).
 */
import { userInfo } from 'node:os';
import { ownRanges, type IdRange } from './subids.js';

/** One line of /proc/PID/uid_map: `inside outside count`. */
export interface IdMapLine {
  inside: number;
  outside: number;
  count: number;
}

export interface UsernsMapping {
  uids: IdMapLine[];
  gids: IdMapLine[];
}

/** The podman layout for the host ids `uid`/`gid` and their ranges. */
export function podmanLayout(uid: number, gid: number, uidRange: IdRange, gidRange: IdRange): UsernsMapping {
  return {
    uids: [{ inside: 0, outside: uid, count: 1 }, { inside: 1, outside: uidRange.start, count: uidRange.count }],
    gids: [{ inside: 0, outside: gid, count: 1 }, { inside: 1, outside: gidRange.start, count: gidRange.count }],
  };
}

/**
 * This user's mapping, or undefined when /etc/subuid or /etc/subgid has no range for
 * them (then layerfs falls back to one mapping: see store/extract-ownership.ts).
 */
export function ownMapping(): UsernsMapping | undefined {
  const r = ownRanges();
  if (!r.uid || !r.gid) return undefined;
  const me = userInfo();
  return podmanLayout(me.uid, me.gid, r.uid, r.gid);
}

/** This user alone (the single mapping without subordinate ids): namespace 0 is them. */
export function singleMapping(uid: number, gid: number): UsernsMapping {
  return { uids: [{ inside: 0, outside: uid, count: 1 }], gids: [{ inside: 0, outside: gid, count: 1 }] };
}

/** The namespace id of host id `id`, or undefined when the mapping does not cover it. */
export function fromHost(lines: IdMapLine[], id: number): number | undefined {
  for (const l of lines) if (id >= l.outside && id < l.outside + l.count) return l.inside + (id - l.outside);
  return undefined;
}

/** The host id of namespace id `id`, or undefined when the mapping does not cover it. */
export function toHost(lines: IdMapLine[], id: number): number | undefined {
  for (const l of lines) if (id >= l.inside && id < l.inside + l.count) return l.outside + (id - l.inside);
  return undefined;
}

/** newuidmap/newgidmap's arguments after the pid: inside outside count, per line. */
export function mapArgs(lines: IdMapLine[]): string[] {
  return lines.flatMap((l) => [String(l.inside), String(l.outside), String(l.count)]);
}
