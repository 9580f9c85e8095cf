/**
 * `USER` / `-u user[:group]` resolved the way Docker does (moby/sys/user GetExecUser),
 * against the image's own /etc/passwd and /etc/group read from the merged rootfs:
 *  - a name must exist in passwd; a number need not (uid N, gid 0, HOME /);
 *  - the group, when given, is a name that must exist in /etc/group, or any number;
 *  - without a group, the primary gid comes from passwd; supplementary groups are those
 *    that list the user's name as a member.
 */
import { LayerfsError } from '../core/errors.js';
import { readRootfsFile } from './rootfs-path.js';

/** The ids a container process runs with, and the home directory for $HOME. */
export interface ResolvedUser {
  uid: number;
  gid: number;
  additionalGids: number[];
  home: string;
}

interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

const NUMERIC = /^\d+$/;

function toId(s: string | undefined): number | undefined {
  return s !== undefined && NUMERIC.test(s) && Number(s) <= 0xffffffff ? Number(s) : undefined;
}

/** Parses passwd(5) text; malformed lines are skipped like libc does. */
export function parsePasswd(text: string): PasswdEntry[] {
  const out: PasswdEntry[] = [];
  for (const line of text.split('\n')) {
    const f = line.split(':');
    const uid = toId(f[2]);
    const gid = toId(f[3]);
    if (!f[0] || uid === undefined || gid === undefined || line.startsWith('#')) continue;
    out.push({ name: f[0], uid, gid, home: f[5] || '/' });
  }
  return out;
}

/** Parses group(5) text; malformed lines are skipped. */
export function parseGroup(text: string): GroupEntry[] {
  const out: GroupEntry[] = [];
  for (const line of text.split('\n')) {
    const f = line.split(':');
    const gid = toId(f[2]);
    if (!f[0] || gid === undefined || line.startsWith('#')) continue;
    out.push({ name: f[0], gid, members: (f[3] ?? '').split(',').map((m) => m.trim()).filter(Boolean) });
  }
  return out;
}

/** Resolves `spec` (`""` = root) against passwd and group file contents. */
export function resolveUser(spec: string, passwdText: string | undefined, groupText: string | undefined): ResolvedUser {
  const [userPart = '', groupPart] = spec.split(/:(.*)/s) as [string, string | undefined];
  const users = parsePasswd(passwdText ?? '');
  const groups = parseGroup(groupText ?? '');
  const wanted = userPart === '' ? '0' : userPart;
  const uidWanted = toId(wanted);
  const entry = users.find((u) => (uidWanted === undefined ? u.name === wanted : u.uid === uidWanted));
  if (!entry && uidWanted === undefined) {
    throw new LayerfsError('INVALID_ARGUMENT', `unable to find user ${wanted}: no matching entries in the image's /etc/passwd`);
  }
  const uid = entry?.uid ?? uidWanted!;
  let gid = entry?.gid ?? 0;
  if (groupPart !== undefined && groupPart !== '') {
    const gidWanted = toId(groupPart);
    const g = groups.find((x) => (gidWanted === undefined ? x.name === groupPart : x.gid === gidWanted));
    if (!g && gidWanted === undefined) throw new LayerfsError('INVALID_ARGUMENT', `unable to find group ${groupPart}: no matching entries in the image's /etc/group`);
    gid = g?.gid ?? gidWanted!;
  }
  const additionalGids = entry ? [...new Set(groups.filter((g) => g.members.includes(entry.name)).map((g) => g.gid))].filter((g) => g !== gid) : [];
  return { uid, gid, additionalGids, home: entry?.home ?? '/' };
}

/** Resolves `spec` against the rootfs's own /etc/passwd and /etc/group. */
export async function resolveUserInRootfs(rootfs: string, spec: string): Promise<ResolvedUser> {
  return resolveUser(spec, await readRootfsFile(rootfs, '/etc/passwd'), await readRootfsFile(rootfs, '/etc/group'));
}
