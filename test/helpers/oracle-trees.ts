/**
 * Trees the oracle compares: each subject's raw snapshot made comparable across
 * implementations.
 * - Times: an mtime set before the test began (the layers' own, or one set by utimens)
 *   must be kept to the nanosecond; one set during the test ("now") differs between
 *   subjects by nature, so it compares as 'fresh'.
 * - Inode numbers: each implementation numbers inodes its own way, so an object's number
 *   compares as where it came from: the path that had that number when the test began
 *   (kept by copy-up and rename), or 'new:' + the first path that has it now (so hard
 *   links still group alike).
 * - Devices: the whole tree has one st_dev.
 */
import type { RawTree } from './oracle.js';

/** One object of a comparable tree. */
export interface TreeEntry {
  type: string;
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  ino: string;
  mtime: string;
  rdev?: number;
  size?: number;
  sha256?: string;
  target?: string;
  xattrs: Record<string, string>;
}

export interface Tree {
  entries: Record<string, TreeEntry>;
  /** How many distinct st_dev values the tree has (1 for a proper mount). */
  devices: number;
}

/** Inode number → the first path (in sorted order) that has it. */
export function inodeOrigins(raw: RawTree): Map<bigint, string> {
  const out = new Map<bigint, string>();
  for (const p of Object.keys(raw).sort()) if (!out.has(raw[p]!.ino)) out.set(raw[p]!.ino, p);
  return out;
}

/** The comparable tree of `raw`; `origins` from the same subject's snapshot at the start. */
export function normalizeTree(raw: RawTree, origins: Map<bigint, string>, freshSinceSec: number): Tree {
  const now = inodeOrigins(raw);
  const entries: Record<string, TreeEntry> = {};
  for (const [p, r] of Object.entries(raw)) {
    const e: TreeEntry = {
      type: r.type, mode: r.mode, uid: r.uid, gid: r.gid, nlink: r.nlink,
      ino: origins.get(r.ino) ?? `new:${now.get(r.ino)}`,
      mtime: r.mtime.sec >= freshSinceSec ? 'fresh' : `${r.mtime.sec}.${String(r.mtime.nsec).padStart(9, '0')}`,
      xattrs: r.xattrs,
    };
    if (r.type === 'chr' || r.type === 'blk') e.rdev = r.rdev;
    if (r.size !== undefined) e.size = r.size;
    if (r.sha256 !== undefined) e.sha256 = r.sha256;
    if (r.target !== undefined) e.target = r.target;
    entries[p] = e;
  }
  return { entries, devices: new Set(Object.values(raw).map((r) => r.dev)).size };
}

/** Fields left out of a comparison, with the reason at the call. */
export type TreeField = keyof TreeEntry;

/** Differences between two trees, one line per path (`skip`: fields not compared). */
export function treeDiff(an: string, a: Tree, bn: string, b: Tree, skip: TreeField[] = []): string[] {
  const out: string[] = [];
  if (a.devices !== 1 || b.devices !== 1) out.push(`st_dev: ${an} has ${a.devices} devices, ${bn} has ${b.devices} (one mount, one device)`);
  const strip = (e: TreeEntry | undefined): string | undefined => {
    if (!e) return undefined;
    const c: Partial<TreeEntry> = { ...e };
    for (const f of skip) delete c[f];
    return JSON.stringify(c);
  };
  for (const k of [...new Set([...Object.keys(a.entries), ...Object.keys(b.entries)])].sort()) {
    const [x, y] = [strip(a.entries[k]), strip(b.entries[k])];
    if (x !== y) out.push(`tree ${k}: ${an} ${x ?? 'missing'} ${bn} ${y ?? 'missing'}`);
  }
  return out;
}
