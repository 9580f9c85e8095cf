/**
 * fuse-overlayfs's command line, as containers-storage and mount(8) call it:
 *   PROGRAM [-f] [-d] -o lowerdir=L1:L2,upperdir=U,workdir=W[,opt…] MOUNTPOINT
 *   mount.fuse.layerfs SOURCE MOUNTPOINT -o OPTIONS        (the mount(8) helper form)
 * Relative paths resolve from the current directory (containers-storage runs from its
 * graph root). Options layerfs has no use for are ignored with a note, as fuse-overlayfs
 * ignores them; empty options (",,") are skipped. One option is layerfs's own:
 * `layerfs_index=FILE`, the lower-index cache of lowers that never change (the containerd
 * snapshotter passes it for committed snapshots), loaded instead of walking the lowers.
 */
import { resolve } from 'node:path';
import { LayerfsError } from '../core/errors.js';
import { parseEngine, type EngineName } from '../fuse/index.js';

export interface OverlayArgs {
  lowerDirs: string[];
  upperDir?: string;
  workDir?: string;
  /** `layerfs_index=FILE`: where the merged lower index is cached (see UnionMountConfig.indexCache). */
  indexCache?: string;
  mountpoint: string;
  foreground: boolean;
  readOnly: boolean;
  /**
   * `volatile` (podman asks for it for `--rm` containers) or fuse-overlayfs's `fsync=0`:
   * copy-ups skip flushing their data (UnionMountConfig.volatile).
   */
  volatile: boolean;
  /** `engine=layerfs|fuse-native`: the FUSE engine (src/fuse/engine-choice.ts). */
  engine?: EngineName;
  /** Options passed on to libfuse unchanged. */
  fuseOptions: string[];
  /** One line per option that was ignored. */
  notes: string[];
}

/** Options with no effect on layerfs, accepted for compatibility. */
const IGNORED = new Set([
  'fsync', 'noexec', 'exec', 'rw', 'noatime', 'relatime',
  'strictatime', 'squash_to_root', 'squash_to_uid', 'squash_to_gid', 'static_nlink', 'noacl', 'xino',
  'redirect_dir', 'index', 'metacopy', 'uidmapping', 'gidmapping', 'timeout', 'threaded', 'writeback',
  'noxattrs', 'plugins', 'context', 'fscontext', 'defcontext', 'rootcontext', 'userxattr', 'auto_unmount',
  'max_idle_threads', 'default_permissions', 'allow_other', 'allow_root', 'debug', '_netdev',
]);
/**
 * Options libfuse understands and layerfs passes through. suid/dev matter: mount.fuse3
 * adds them for root (mount(8)'s defaults), and a container rootfs mounted by containerd
 * through it needs setuid binaries and device nodes to work as on overlayfs.
 */
const PASSED = new Set(['ro', 'entry_timeout', 'attr_timeout', 'negative_timeout', 'kernel_cache', 'suid', 'nosuid', 'dev', 'nodev']);

/** Splits on commas, keeping backslash-escaped ones (the libfuse convention). */
function splitOptions(s: string): string[] {
  return s.split(/(?<!\\),/).map((o) => o.replace(/\\,/g, ','));
}

export function parseOverlayArgs(argv: string[], cwd = process.cwd()): OverlayArgs {
  const opts: string[] = [];
  const positional: string[] = [];
  let foreground = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '-o') opts.push(...splitOptions(argv[++i] ?? ''));
    else if (a.startsWith('-o') && a.length > 2) opts.push(...splitOptions(a.slice(2)));
    else if (a === '-f' || a === '-d') foreground = true;
    else if (a === '-n' || a === '-s' || a === '-v') continue; // mount(8) helper flags: no mtab, sloppy, verbose
    else if (a.startsWith('-')) throw new LayerfsError('INVALID_ARGUMENT', `unknown flag ${a}`);
    else positional.push(a);
  }
  // Helper form passes SOURCE first; the program form only the mountpoint.
  const mountpoint = positional.at(-1);
  if (!mountpoint) throw new LayerfsError('INVALID_ARGUMENT', 'no mount point given', { hint: 'usage: layerfs-overlay -o lowerdir=…,upperdir=…,workdir=… MOUNTPOINT' });

  const out: OverlayArgs = { lowerDirs: [], mountpoint: resolve(cwd, mountpoint), foreground, readOnly: false, volatile: false, fuseOptions: [], notes: [] };
  for (const opt of opts) {
    if (opt === '') continue;
    const eq = opt.indexOf('=');
    const key = eq < 0 ? opt : opt.slice(0, eq);
    const value = eq < 0 ? '' : opt.slice(eq + 1);
    if (key === 'lowerdir') out.lowerDirs = value.split(':').filter(Boolean).map((d) => resolve(cwd, d));
    else if (key === 'upperdir') out.upperDir = resolve(cwd, value);
    else if (key === 'workdir') out.workDir = resolve(cwd, value);
    else if (key === 'layerfs_index') out.indexCache = resolve(cwd, value);
    else if (key === 'volatile' || (key === 'fsync' && value === '0')) out.volatile = true;
    else if (key === 'engine') out.engine = parseEngine(value, '-o engine=');
    else if (PASSED.has(key)) {
      out.fuseOptions.push(opt);
      if (key === 'ro') out.readOnly = true;
    } else if (IGNORED.has(key)) out.notes.push(`ignoring option ${opt}`);
    else out.notes.push(`ignoring unknown option ${opt}`);
  }
  if (out.lowerDirs.length === 0) throw new LayerfsError('INVALID_ARGUMENT', 'no lowerdir= given');
  if ((out.upperDir === undefined) !== (out.workDir === undefined)) {
    throw new LayerfsError('INVALID_ARGUMENT', 'upperdir= and workdir= go together');
  }
  return out;
}
