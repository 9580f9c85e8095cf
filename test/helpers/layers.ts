/**
 * Builds overlayfs-format layer directories from inline specs for tests, under one temp
 * directory that `cleanup()` removes. A spec maps a relative path to what it holds:
 *   'a/b.txt': 'content'                       a regular file (parents made as 0755 dirs)
 *   'd/': {}                                   a directory ('/' suffix), { opaque: true } marks it opaque
 *   'f': { content, mode, uid, gid, xattrs }   a file with metadata
 *   'l': { symlink: 'target' }                 a symlink
 *   'h': { hardlink: 'a/b.txt' }               a hard link inside the same layer
 *   'w': { whiteout: true }                    a whiteout (char device 0/0)
 *   'p': { fifo: true }                        a named pipe
 * Paths are byte strings (latin1) so tests can hold non-UTF-8 names.
 */
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { toFsPath } from '../../src/core/filesystem.js';
import { OPAQUE_XATTR } from '../../src/overlay/index.js';
import { sys } from '../../src/union/sys.js';

export interface FileSpec {
  content?: string | Buffer;
  mode?: number;
  uid?: number;
  gid?: number;
  xattrs?: Record<string, string>;
  symlink?: string;
  hardlink?: string;
  whiteout?: boolean;
  fifo?: boolean;
  opaque?: boolean;
  mtime?: { sec: number; nsec: number };
}

export type LayerSpec = Record<string, string | FileSpec>;

/** Layer directories made for a test. */
export interface TestLayers {
  /** Temp root holding everything. */
  root: string;
  /** Lower dirs, top first. */
  lowers: string[];
  upper: string;
  work: string;
  cleanup(): Promise<void>;
}

/** Makes a temp dir with lower layers from `specs` (TOP FIRST) plus empty upper and work dirs. */
export async function makeLayers(specs: LayerSpec[], prefix = 'layerfs-layers-'): Promise<TestLayers> {
  const root = await fsp.mkdtemp(path.join(os.tmpdir(), prefix));
  const lowers: string[] = [];
  for (let i = 0; i < specs.length; i++) {
    const dir = path.join(root, `lower${i}`);
    await fsp.mkdir(dir);
    await writeLayer(dir, specs[i]!);
    lowers.push(dir);
  }
  const upper = path.join(root, 'upper');
  const work = path.join(root, 'work');
  await fsp.mkdir(upper);
  await fsp.mkdir(work);
  return { root, lowers, upper, work, cleanup: () => fsp.rm(root, { recursive: true, force: true }) };
}

/** Writes one layer's entries into `dir`. */
export async function writeLayer(dir: string, spec: LayerSpec): Promise<void> {
  const keys = Object.keys(spec).sort();
  const deferredTimes: [Buffer, { sec: number; nsec: number }][] = [];
  for (const key of keys) {
    const raw = spec[key]!;
    const s: FileSpec = typeof raw === 'string' ? { content: raw } : raw;
    const isDir = key.endsWith('/');
    const rel = isDir ? key.slice(0, -1) : key;
    const real = Buffer.concat([Buffer.from(dir), toFsPath('/' + rel)]);
    await fsp.mkdir(Buffer.concat([Buffer.from(dir), toFsPath('/' + parentRel(rel))]), { recursive: true });
    if (isDir) {
      await fsp.mkdir(real, { recursive: true });
      if (s.opaque) await sys.lsetxattr(real, OPAQUE_XATTR, Buffer.from('y'));
    } else if (s.symlink !== undefined) {
      await fsp.symlink(toFsPath(s.symlink), real);
    } else if (s.hardlink !== undefined) {
      await fsp.link(Buffer.concat([Buffer.from(dir), toFsPath('/' + s.hardlink)]), real);
      continue;
    } else if (s.whiteout) {
      await sys.mknod(real, 0o020000, sys.makedev(0, 0));
      continue;
    } else if (s.fifo) {
      await sys.mknod(real, 0o010000 | (s.mode ?? 0o644), 0);
    } else {
      await fsp.writeFile(real, s.content ?? '');
    }
    if (s.uid !== undefined || s.gid !== undefined) await fsp.lchown(real, s.uid ?? 0, s.gid ?? 0);
    if (s.mode !== undefined && s.symlink === undefined) await fsp.chmod(real, s.mode);
    for (const [name, value] of Object.entries(s.xattrs ?? {})) await sys.lsetxattr(real, name, Buffer.from(value));
    if (s.mtime) deferredTimes.push([real, s.mtime]);
  }
  for (const [real, t] of deferredTimes) await sys.utimens(real, t, t);
}

function parentRel(rel: string): string {
  const i = rel.lastIndexOf('/');
  return i < 0 ? '' : rel.slice(0, i);
}

/** Root caller for direct union calls. */
export const ROOT = { uid: 0, gid: 0, pid: process.pid, umask: 0o022 };
