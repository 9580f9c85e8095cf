/**
 * The subordinate id ranges of a user, from /etc/subuid and /etc/subgid (shadow's
 * subuid(5): "name-or-uid:start:count" per line), which newuidmap and newgidmap check
 * before writing a user namespace's maps. Only the first range is used, as podman does
 * by default: 65536 ids cover every uid an ordinary image uses.
 */
import { readFileSync } from 'node:fs';
import { userInfo } from 'node:os';

export interface IdRange {
  /** First host id of the range. */
  start: number;
  count: number;
}

/** The first range of `user` (name or numeric id) in `file`'s content, or undefined. */
export function findRange(content: string, user: { name: string; id: number }): IdRange | undefined {
  for (const line of content.split('\n')) {
    const [who, start, count] = line.trim().split(':');
    if (who === undefined || start === undefined || count === undefined) continue;
    if (who !== user.name && who !== String(user.id)) continue;
    const s = Number(start);
    const c = Number(count);
    if (Number.isSafeInteger(s) && Number.isSafeInteger(c) && c > 0) return { start: s, count: c };
  }
  return undefined;
}

function readOrEmpty(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

/** This process's user's ranges (either may be missing). Two small reads: synchronous. */
export function ownRanges(files = { uid: '/etc/subuid', gid: '/etc/subgid' }): { uid?: IdRange; gid?: IdRange } {
  const me = userInfo();
  const uid = findRange(readOrEmpty(files.uid), { name: me.username, id: me.uid });
  // newgidmap, too, finds a user's gid ranges by user name or uid (not gid).
  const gid = findRange(readOrEmpty(files.gid), { name: me.username, id: me.uid });
  return { ...(uid ? { uid } : {}), ...(gid ? { gid } : {}) };
}
