/**
 * The one secure join for paths inside a layer (umoci's SecureJoin, minus the symlink
 * walking: layerfs resolves *lexically* and never follows symlinks while joining).
 *
 * Every path that comes out of an image — a tar entry name, a hard-link target, a whiteout
 * name — goes through here before it touches the disk. Paths are byte strings (latin1,
 * see core/filesystem.ts). The result is a relative path with no `.`/`..`/empty
 * components ('' means the root itself); joining it under the layer directory can only
 * name something inside that directory. Symlinks *inside* the layer are the caller's
 * business: the extractor checks that no parent component it walks through is a symlink.
 */
import { LayerfsError } from './errors.js';

/** How strictly to treat an image path. */
export interface CleanOptions {
  /**
   * 'reject' (tar entries): any `..` component or a leading `/` is an error, even when it
   * would stay inside the root — a well-formed layer never contains them.
   * 'contain' (link targets, general use): an absolute path is taken relative to the root
   * and `..` is allowed as long as it never climbs above the root.
   */
  mode: 'reject' | 'contain';
  /** Used in error messages: what the path is ("tar entry", "hard link target"…). */
  what?: string;
}

function unsafe(what: string, path: string, why: string): LayerfsError {
  return new LayerfsError('UNSAFE_PATH', `${what} ${JSON.stringify(path)} ${why}`, {
    hint: 'the image is malformed or malicious; nothing was written outside the store',
    errno: 'EPERM',
  });
}

/**
 * Lexically cleans `path` into a relative path inside the root ('' = the root).
 * Throws UNSAFE_PATH when the path would leave the root (or, in 'reject' mode, when it is
 * absolute or has any `..` component) and when it contains a NUL byte.
 */
export function cleanLayerPath(path: string, options: CleanOptions = { mode: 'contain' }): string {
  const what = options.what ?? 'path';
  if (path.includes('\0')) throw unsafe(what, path, 'contains a NUL byte');
  if (options.mode === 'reject' && path.startsWith('/')) throw unsafe(what, path, 'is absolute');
  const out: string[] = [];
  for (const part of path.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (options.mode === 'reject') throw unsafe(what, path, "contains a '..' component");
      if (out.length === 0) throw unsafe(what, path, 'escapes the layer root');
      out.pop();
      continue;
    }
    out.push(part);
  }
  return out.join('/');
}

/**
 * Joins an image path under `root` (a byte-string directory path) after cleaning it;
 * returns the joined byte-string path. Never touches the disk.
 */
export function safeJoin(root: string, path: string, options: CleanOptions = { mode: 'contain' }): string {
  const rel = cleanLayerPath(path, options);
  const base = root.endsWith('/') && root.length > 1 ? root.slice(0, -1) : root;
  return rel === '' ? base : `${base}/${rel}`;
}

/** The parent of a cleaned relative path ('' for a top-level name or the root). */
export function parentOf(rel: string): string {
  const i = rel.lastIndexOf('/');
  return i < 0 ? '' : rel.slice(0, i);
}

/** The last component of a cleaned relative path. */
export function baseOf(rel: string): string {
  return rel.slice(rel.lastIndexOf('/') + 1);
}
