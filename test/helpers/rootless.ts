/**
 * The ordinary users rootless tests run layerfs as (made by scripts/rootless-users from
 * the global setup): `layerfs-rootless` and `layerfs-rootless2` have subordinate id
 * ranges, `layerfs-nosubid` has none. Verbs run as them with their own HOME and
 * XDG_RUNTIME_DIR (a folder of the test, as a login session would make /run/user/UID).
 */
import { execFileSync } from 'node:child_process';
import { chmod, chown, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { LAYERFS, runNode, type CliResult } from './cli.js';
import { tempDir } from './temp.js';

export type TestUserName = 'layerfs-rootless' | 'layerfs-rootless2' | 'layerfs-nosubid';

export interface TestUser {
  name: TestUserName;
  uid: number;
  gid: number;
  home: string;
  /** First host uid/gid of the subordinate range, when the user has one. */
  subuid?: number;
  subgid?: number;
}

function rangeStart(file: string, name: string): number | undefined {
  const line = execFileSync('cat', [file], { encoding: 'utf8' }).split('\n').find((l) => l.startsWith(`${name}:`));
  return line ? Number(line.split(':')[1]) : undefined;
}

export function testUser(name: TestUserName): TestUser {
  const [, , uid, gid, , home] = execFileSync('getent', ['passwd', name], { encoding: 'utf8' }).trim().split(':');
  const u: TestUser = { name, uid: Number(uid), gid: Number(gid), home: home! };
  const su = rangeStart('/etc/subuid', name);
  const sg = rangeStart('/etc/subgid', name);
  if (su !== undefined) u.subuid = su;
  if (sg !== undefined) u.subgid = sg;
  return u;
}

/** A temp folder owned by `user` (under the run's root, which everyone may traverse). */
export async function userTempDir(user: TestUser, prefix = 'layerfs-rootless-'): Promise<string> {
  const dir = await tempDir(prefix);
  await chown(dir, user.uid, user.gid);
  await chmod(dir, 0o755);
  return dir;
}

/** The environment a login of `user` would have, with a runtime folder under `base`. */
export async function userEnv(user: TestUser, base: string, extra: NodeJS.ProcessEnv = {}): Promise<NodeJS.ProcessEnv> {
  const runtime = join(base, 'xdg-runtime');
  await mkdir(runtime, { recursive: true, mode: 0o700 });
  await chown(runtime, user.uid, user.gid);
  return { PATH: process.env.PATH, HOME: user.home, USER: user.name, LOGNAME: user.name, XDG_RUNTIME_DIR: runtime, ...extra };
}

/** `layerfs ARGS…` as `user` (no --root unless ARGS has it). */
export function layerfsAs(user: TestUser, env: NodeJS.ProcessEnv, args: string[], input?: Buffer): Promise<CliResult> {
  return runNode(LAYERFS, args, { uid: user.uid, gid: user.gid, env, ...(input ? { input } : {}), cwd: '/' });
}

/** Like layerfsAs(), but rejects with the output when the exit code is not 0. */
export async function layerfsAsOk(user: TestUser, env: NodeJS.ProcessEnv, args: string[]): Promise<string> {
  const r = await layerfsAs(user, env, args);
  if (r.code !== 0) throw new Error(`layerfs ${args.join(' ')} as ${user.name} exited ${r.code}:\n${r.stderr}${r.stdout}`);
  return r.stdout;
}
