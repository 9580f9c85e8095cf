/**
 * `layerfs diff`: what a container changed, as `docker diff` reports it — `A` added,
 * `C` changed, `D` deleted — computed by comparing the container's merged view with the
 * image's merged view path by path, but only where the writable layer holds something.
 *
 * Comparing the two VIEWS (not just listing the upper folder) is what makes the special
 * cases come out right:
 * - a whiteout is `D` for the name it hides;
 * - an opaque directory is `C`, each name it now holds is `A` (or `C` when the image had
 *   that name too), and every image name it hides is `D` — where Docker, which only
 *   lists the upper folder, reports an opaque directory as deleted;
 * - a renamed directory (trusted.overlay.redirect) is `A` at its new place with every
 *   path of its subtree `A`, and `D` at the old place — what a copy would have shown.
 * Directories follow Docker's rule: a directory is `C` when its own metadata changed or
 * a name directly in it was added or deleted, not because something deeper changed.
 */
import type { FileStat } from '../core/filesystem.js';
import { isLowerDir, lowerStat, type Resolved } from '../union/index.js';
import { joinPath, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG } from '../overlay/index.js';
import type { ContainerView } from './container-view.js';

/** One change, as `docker diff` prints it. */
export interface Change {
  kind: 'A' | 'C' | 'D';
  /** Absolute byte-string path (latin1). */
  path: string;
  type: 'file' | 'dir' | 'symlink' | 'other';
  /** Why, in a few words: the overlay mechanism behind the change. */
  why: string;
}

/** Byte order of paths, as Docker sorts its changes. */
export function comparePaths(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function typeOfMode(mode: number): Change['type'] {
  const t = mode & S_IFMT;
  return t === S_IFDIR ? 'dir' : t === S_IFREG ? 'file' : t === S_IFLNK ? 'symlink' : 'other';
}

/** Docker's sameFsTime: equal, or equal seconds when one side lost its nanoseconds. */
function sameTime(a: FileStat['mtime'], b: FileStat['mtime']): boolean {
  return a.sec === b.sec && (a.nsec === b.nsec || a.nsec === 0 || b.nsec === 0);
}

/** Computes the changes of a container, sorted by path. */
export async function containerDiff(cv: ContainerView): Promise<Change[]> {
  const out: Change[] = [];
  await new DiffWalk(cv, out).dir('/');
  return out.sort((x, y) => comparePaths(x.path, y.path));
}

class DiffWalk {
  constructor(
    private readonly cv: ContainerView,
    private readonly out: Change[],
  ) {}

  private async statOf(r: Resolved): Promise<FileStat> {
    return this.cv.view.stat(r);
  }

  /** Compares directory `p` (a directory in both views); true when a direct child was added or deleted. */
  async dir(p: string): Promise<boolean> {
    const { view, upper, stack } = this.cv;
    const r = view.resolve(p);
    const merged = (await view.readdir(r)).map((e) => e.name);
    const have = new Set(merged);
    const img = stack.index.get(p);
    let direct = false;
    for (const name of img?.children ?? []) {
      if (have.has(name)) continue;
      const c = joinPath(p, name);
      const why = upper.get(c)?.kind === 'whiteout' ? 'whiteout' : r.upper?.opaque ? `opaque directory ${p}` : r.upper?.redirect ? `directory replaced by the one renamed from ${r.upper.redirect}` : 'hidden';
      this.out.push({ kind: 'D', path: c, type: typeOfMode(stack.index.get(c)!.mode), why });
      direct = true;
    }
    for (const name of merged) {
      const c = joinPath(p, name);
      const cr = view.resolve(c);
      const ci = stack.index.get(c);
      if (ci === undefined) {
        await this.added(c, cr);
        direct = true;
        continue;
      }
      // No upper object and looked up at its own path: the image's object, untouched.
      if (cr.upper === undefined && cr.lowerPath === c) continue;
      const st = await this.statOf(cr);
      if (cr.isDir && isLowerDir(ci)) {
        const childDirect = await this.dir(c);
        const was = lowerStat(ci);
        if (childDirect || st.mode !== was.mode || st.uid !== was.uid || st.gid !== was.gid || !sameTime(st.mtime, was.mtime)) {
          this.out.push({ kind: 'C', path: c, type: 'dir', why: cr.upper?.opaque ? 'opaque directory' : 'directory changed' });
        }
        continue;
      }
      const why = cr.upper === undefined ? `served from ${cr.lowerPath ?? '?'} (renamed directory)` : cr.isDir !== isLowerDir(ci) ? 'replaced by another type' : 'copied up';
      this.out.push({ kind: 'C', path: c, type: typeOfMode(st.mode), why });
      if (cr.isDir) await this.addedChildren(c, cr);
    }
    return direct;
  }

  /** `path` and its whole merged subtree are new. */
  private async added(path: string, r: Resolved): Promise<void> {
    const st = await this.statOf(r);
    const why = r.upper === undefined ? `renamed from ${r.lowerPath ?? '?'}` : r.upper.redirect ? `directory renamed from ${r.upper.redirect}` : 'new in the writable layer';
    this.out.push({ kind: 'A', path, type: typeOfMode(st.mode), why });
    if (r.isDir) await this.addedChildren(path, r);
  }

  private async addedChildren(path: string, r: Resolved): Promise<void> {
    for (const e of await this.cv.view.readdir(r)) {
      const c = joinPath(path, e.name);
      await this.added(c, this.cv.view.resolve(c));
    }
  }
}

/** `docker diff` text: one `K /path` line per change (names as their raw bytes). */
export function formatChanges(changes: Change[]): Buffer {
  return Buffer.concat(changes.map((c) => Buffer.from(`${c.kind} ${c.path}\n`, 'latin1')));
}
