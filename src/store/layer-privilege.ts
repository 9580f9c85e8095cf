/**
 * How this process writes and removes layer caches, by who runs it (README "Rootless"):
 *
 * - root: in this process, real owners, `trusted.overlay.*` markers.
 * - an ordinary user with ranges in /etc/subuid and /etc/subgid: in a helper process
 *   inside a user namespace mapped as podman maps it (userns/id-map.ts), so chown gives
 *   image uids their mapped host uids; markers in `user.overlay.*`. Removing such a cache
 *   also needs the namespace (its files belong to subordinate uids).
 * - an ordinary user without ranges: in this process, a single mapping; owners and modes
 *   in user.containers.override_stat (extract-ownership.ts); `user.overlay.*` markers.
 *   Said once on stderr, since images then look different to tools reading the disk.
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { LayerfsError, type ErrorCode } from '../core/errors.js';
import { isRootless } from '../core/user-dirs.js';
import { ownMapping, type UsernsMapping, runInUserns, spawnInUserns } from '../userns/index.js';
import { extractLayer, type ExtractOptions, type ExtractStats } from './layer-extractor.js';

export type LayerPrivilege =
  | { kind: 'root' }
  | { kind: 'userns'; mapping: UsernsMapping }
  | { kind: 'single-mapping' };

let cached: Promise<LayerPrivilege> | undefined;

/** This process's way of writing layers (looked up once). */
export function layerPrivilege(): Promise<LayerPrivilege> {
  return (cached ??= decide());
}

async function decide(): Promise<LayerPrivilege> {
  if (!isRootless()) return { kind: 'root' };
  const mapping = ownMapping();
  if (mapping) return { kind: 'userns', mapping };
  process.stderr.write(
    'layerfs: this user has no subordinate id range in /etc/subuid and /etc/subgid: layers are written with a single mapping, ' +
      'image owners and modes kept in the user.containers.override_stat xattr (the mount reports them)\n',
  );
  return { kind: 'single-mapping' };
}

/** Extraction options, minus the per-layer ones, for a privilege. */
function modeOptions(p: LayerPrivilege): Pick<ExtractOptions, 'owners' | 'overlayXattrs'> {
  if (p.kind === 'root') return { owners: 'chown', overlayXattrs: 'trusted' };
  return { owners: p.kind === 'userns' ? 'chown' : 'override-xattr', overlayXattrs: 'user' };
}

/** Extracts `tar` into the empty folder `dir` the way this process may. */
export async function extractWithPrivilege(tar: Readable, dir: string, opts: ExtractOptions): Promise<ExtractStats> {
  const p = await layerPrivilege();
  const full = { ...opts, ...modeOptions(p) };
  if (p.kind !== 'userns') return extractLayer(tar, dir, full);
  return extractInUserns(p.mapping, tar, dir, full);
}

/** The helper's protocol: options as argv[2] (JSON), the tar on stdin, one JSON line on stdout. */
export interface ExtractHelperResult {
  stats?: ExtractStats;
  error?: { code: ErrorCode; message: string; hint?: string };
}

async function extractInUserns(mapping: UsernsMapping, tar: Readable, dir: string, opts: ExtractOptions): Promise<ExtractStats> {
  const helper = join(import.meta.dirname, 'extract-main.js');
  const child = await spawnInUserns(mapping, [process.execPath, helper, JSON.stringify({ dir, ...opts })], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
  // A verification failure upstream (digest, size) destroys `tar`: stop the helper too.
  tar.once('error', () => child.kill('SIGKILL'));
  tar.pipe(child.stdin!);
  child.stdin!.on('error', () => {}); // EPIPE when the helper stopped early; its result says why
  const code = await exited;
  tar.unpipe(child.stdin!);
  if (tar.errored) throw tar.errored;
  let res: ExtractHelperResult;
  try {
    res = JSON.parse(out) as ExtractHelperResult;
  } catch {
    throw new LayerfsError('IO', `${opts.what}: the extraction helper in the user namespace exited with ${code} and no result`);
  }
  if (res.error) throw new LayerfsError(res.error.code, res.error.message, res.error.hint ? { hint: res.error.hint } : {});
  return res.stats!;
}

/** Removes a tree the store wrote (a layer cache, a staging folder), whoever owns its files. */
export async function removeTree(path: string): Promise<void> {
  const p = await layerPrivilege();
  if (p.kind !== 'userns') return rm(path, { recursive: true, force: true });
  await runInUserns(p.mapping, ['rm', '-rf', '--one-file-system', '--', path]);
}

