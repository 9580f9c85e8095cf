/**
 * Byte-string path helpers for the union. Paths are absolute inside the filesystem
 * ('/', '/etc/passwd') and each UTF-16 code unit is one byte (see core/filesystem.ts).
 */
import { LayerfsError } from '../core/errors.js';

/** The parent of an absolute path ('/a/b' → '/a', '/a' → '/'). */
export function parentOf(path: string): string {
  const i = path.lastIndexOf('/');
  return i <= 0 ? '/' : path.slice(0, i);
}

/** The last component of an absolute path ('/' → ''). */
export function baseOf(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

/** `dir` + '/' + `name` without doubling the root slash. */
export function joinPath(dir: string, name: string): string {
  return dir === '/' ? '/' + name : dir + '/' + name;
}

/** True when `path` equals `ancestor` or lies beneath it. */
export function isWithin(path: string, ancestor: string): boolean {
  if (ancestor === '/') return true;
  return path === ancestor || path.startsWith(ancestor + '/');
}

/**
 * The components of a path, checked: no empty, '.' or '..' component, so that
 * `root + path` can never name anything outside `root` (containment, issue 4 §4).
 * The kernel never sends such paths; a direct caller gets EINVAL.
 */
export function splitPath(path: string): string[] {
  checkPath(path);
  return path === '/' ? [] : path.slice(1).split('/');
}

/**
 * splitPath's checks without its array: for a walk that takes the components one by one
 * (UnionView.tryResolve, on every request), where most of a path is handed on whole.
 */
export function checkPath(path: string): void {
  if (path === '/') return;
  if (path.charCodeAt(0) !== 0x2f) throw invalidPath(path);
  for (let start = 1; ; ) {
    let end = path.indexOf('/', start);
    if (end < 0) end = path.length;
    const len = end - start;
    if (len === 0 || (path.charCodeAt(start) === 0x2e && (len === 1 || (len === 2 && path.charCodeAt(start + 1) === 0x2e)))) {
      throw invalidPath(path);
    }
    if (len > 255) throw new LayerfsError('INVALID_ARGUMENT', `name too long in ${path}`, { errno: 'ENAMETOOLONG' });
    if (end === path.length) return;
    start = end + 1;
  }
}

function invalidPath(path: string): LayerfsError {
  return new LayerfsError('UNSAFE_PATH', `not a canonical absolute path: ${JSON.stringify(path)}`, {
    errno: 'EINVAL',
  });
}

/** A path inside a layer root as node:fs wants it: root bytes + path bytes. */
export function inRoot(root: Buffer, path: string): Buffer {
  if (path === '/') return root;
  // One allocation (paths are latin1 strings: a byte per character), not two and a copy.
  const b = Buffer.allocUnsafe(root.length + path.length);
  root.copy(b, 0);
  b.write(path, root.length, 'latin1');
  return b;
}
