/**
 * UpperState: what the writable layer holds, kept in memory and exact because every
 * change to it passes through this process. Lookups consult it before the lower index
 * with no syscall: a path absent here has no upper object (and neither has anything
 * beneath it). Loaded once at start by walking the upper directory.
 */
import { atPath, backing } from './backing-path.js';
import { aufsName, inRoot, isOpaqueDir, isWhiteoutStat, isWithin, joinPath, OPAQUE_XATTR, readOrigin, readRedirect, REDIRECT_XATTR, visibleXattrName } from '../overlay/index.js';
import { OVERRIDE_STAT_XATTR } from '../core/override-stat.js';
import { drainQueue } from './work-queue.js';
import type { OverrideStat } from '../core/override-stat.js';
import { readOverride } from './owner-override.js';
import type { MetadataMirror, UpperFacts } from '../core/filesystem.js';

/** One object of the writable layer. */
export interface UpperNode {
  kind: 'dir' | 'whiteout' | 'other';
  /** Directories: trusted.overlay.opaque=y (nothing below shows through). */
  opaque?: boolean;
  /** Directories: trusted.overlay.redirect (where its lower part lives). */
  redirect?: string;
  /** st_ino recorded at copy-up (trusted.overlay.layerfs.origin; trusted.layerfs.origin before). */
  originIno?: number;
  /** The owner and mode a rootless mount could not give it (owner-override.ts); stat reports these. */
  override?: OverrideStat;
  /**
   * Known to have no visible xattr: made in this mount without any (its parent had none,
   * so no default ACL), or copied up from a lower object without any. Cleared by setxattr,
   * removexattr and link (another name could change them). Unknown after a remount.
   */
  noXattrs?: boolean;
  /**
   * Its stat is its own upper object's (st_ino from originIno or the backing inode):
   * every non-directory, and a directory made in the writable layer, which never has a
   * lower part merged in (it is opaque where it shadows one, also after a rename).
   */
  ownStat?: boolean;
  /**
   * Whiteouts only: it is an AUFS whiteout file `.wh.NAME` beside the name, not a char
   * 0/0 at it (overlay/aufs-whiteouts.ts); a change that lands on the name first turns it into one.
   */
  aufsFile?: boolean;
}

/** True when `node` hides what the lower layers have below its path. */
function hidesLowerBelow(node: UpperNode): boolean {
  return node.kind !== 'dir' || node.opaque === true || node.redirect !== undefined;
}

function factsOf(node: UpperNode): UpperFacts {
  return {
    kind: node.kind,
    hidesLower: hidesLowerBelow(node),
    noXattrs: node.noXattrs === true,
    // An override is applied by JS: the native fast path's own lstat would miss it.
    ownStat: (node.kind === 'other' || node.ownStat === true) && node.override === undefined,
    originIno: node.originIno,
  };
}

export class UpperState {
  private readonly nodes = new Map<string, UpperNode>();
  /** Told of every change before the op that made it replies (see MetadataMirror). */
  private mirror: MetadataMirror | undefined;

  constructor(
    readonly root: Buffer,
    /** AUFS whiteout files count as whiteouts and opaque markers (UnionOptions.aufsWhiteouts). */
    readonly aufs = false,
  ) {
    this.nodes.set('/', { kind: 'dir' });
  }

  /** Reads the upper directory `dir` into a state. */
  static async load(dir: string, aufs = false): Promise<UpperState> {
    const state = new UpperState(Buffer.from(dir), aufs);
    const root = state.nodes.get('/')!;
    await state.loadNode('/', root);
    // Known for the root only (one call): what is made below it inherits the answer.
    const rootXattrs = await backing.llistxattr(state.root).catch(() => ['?']);
    if (rootXattrs.every((n) => visibleXattrName(n) === null)) root.noXattrs = true;
    await drainQueue(['/'], 16, (d, push) => state.loadDir(d, push));
    return state;
  }

  /** The node at `path`, or undefined. */
  get(path: string): UpperNode | undefined {
    return this.nodes.get(path);
  }

  /** Sends every node to `mirror`, which from now on hears of every change. */
  attachMirror(mirror: MetadataMirror): void {
    this.mirror = mirror;
    mirror.upperRoot(this.root);
    for (const [path, node] of this.nodes) mirror.upperSet(path, factsOf(node));
  }

  /** Records a node (again after changing its fields, so the mirror sees them). */
  set(path: string, node: UpperNode): void {
    this.nodes.set(path, node);
    this.mirror?.upperSet(path, factsOf(node));
  }

  /** Forgets `path` and everything beneath it. */
  deleteTree(path: string): void {
    // Only a directory has anything beneath it (an absent path has nothing either): the
    // common unlink stays O(1) instead of a scan of every path the writable layer holds.
    const subtree = this.nodes.get(path)?.kind === 'dir';
    this.mirror?.upperRemoveTree(path, subtree);
    this.nodes.delete(path);
    if (!subtree) return;
    const prefix = path + '/';
    for (const key of this.nodes.keys()) if (key.startsWith(prefix)) this.nodes.delete(key);
  }

  /** Moves `from` and everything beneath it to `to` (after a rename in the upper). */
  moveTree(from: string, to: string): void {
    const node = this.nodes.get(from);
    if (node !== undefined && node.kind !== 'dir') {
      this.deleteTree(from);
      this.deleteTree(to);
      this.set(to, node);
      return;
    }
    const moved: [string, UpperNode][] = [];
    for (const [key, node] of this.nodes) {
      if (isWithin(key, from)) moved.push([to + key.slice(from.length), node]);
    }
    this.deleteTree(from);
    this.deleteTree(to);
    for (const [key, node] of moved) this.set(key, node);
  }

  /** Swaps the subtrees at `a` and `b` (after RENAME_EXCHANGE; neither contains the other). */
  swapTrees(a: string, b: string): void {
    const moved: [string, UpperNode][] = [];
    for (const [key, node] of this.nodes) {
      if (isWithin(key, a)) moved.push([b + key.slice(a.length), node]);
      else if (isWithin(key, b)) moved.push([a + key.slice(b.length), node]);
    }
    this.deleteTree(a);
    this.deleteTree(b);
    for (const [key, node] of moved) this.set(key, node);
  }

  /** The backing path of `path` in the upper directory. */
  realPath(path: string): Buffer {
    return inRoot(this.root, path);
  }

  private async loadDir(dir: string, push: (dir: string) => void): Promise<void> {
    const dirents = await backing.readdirTyped(this.realPath(dir));
    const aufsWhiteouts: string[] = [];
    await Promise.all(
      dirents.map(async (d) => {
        const name = d.name.toString('latin1');
        if (this.aufs) {
          const a = aufsName(name);
          if (a.kind === 'whiteout') aufsWhiteouts.push(a.target);
          if (a.kind === 'opaque') this.nodes.get(dir)!.opaque = true;
          if (a.kind !== 'plain') return;
        }
        const path = joinPath(dir, name);
        if (d.isCharacterDevice() && isWhiteoutStat(await backing.lstat(this.realPath(path)))) {
          this.nodes.set(path, { kind: 'whiteout' });
          return;
        }
        const node: UpperNode = { kind: d.isDirectory() ? 'dir' : 'other' };
        await this.loadNode(path, node);
        this.nodes.set(path, node);
        if (node.kind === 'dir') push(path);
      }),
    );
    // A real name beside its `.wh.NAME` wins: the whiteout file speaks of the layers below.
    // (A directory beside its whiteout is one deleted and made again: opaque, as the
    // lower index reads it.)
    for (const name of aufsWhiteouts) {
      const path = joinPath(dir, name);
      const node = this.nodes.get(path);
      if (node === undefined) this.nodes.set(path, { kind: 'whiteout', aufsFile: true });
      else if (node.kind === 'dir') node.opaque = true;
    }
  }

  private async loadNode(path: string, node: UpperNode): Promise<void> {
    const real = this.realPath(path);
    // One listxattr, then reads of the names present only: an object made in the writable
    // layer (most of them) has none and costs this one call, whichever name of the origin
    // mark (readOrigin) its layer was written with.
    const names = await backing.llistxattr(real).catch(() => [] as string[]);
    if (names.length === 0) return;
    const origin = await atPath(real, (p) => readOrigin(p, names));
    if (origin !== undefined) node.originIno = origin;
    const override = names.includes(OVERRIDE_STAT_XATTR) ? await readOverride(real) : undefined;
    if (override) node.override = override;
    if (node.kind !== 'dir') return;
    if (names.includes(OPAQUE_XATTR) && (await atPath(real, isOpaqueDir))) node.opaque = true;
    const redirect = names.includes(REDIRECT_XATTR) ? await atPath(real, readRedirect) : undefined;
    if (redirect !== undefined) node.redirect = redirect;
  }
}
