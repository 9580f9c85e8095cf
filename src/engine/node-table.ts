/**
 * The kernel's node ids, one per OBJECT (keyed by st_ino): every hard-link name of a file
 * maps to one node, so the kernel holds one inode per object and the attributes it caches
 * are right through every name. A node knows the names (parent node + name) by which the
 * kernel reached it; its path, as the PathFilesystem wants it, is built from the first.
 * Node ids are never reused (a counter from 2 up, a number: exact far beyond any mount's
 * life), so the generation is always 0.
 *
 * A node is kept small: a cold walk of an image makes one per entry (100k and more), and
 * the mount process's peak RSS is mostly this table. The first name lives in the node
 * itself (other names of a hard link in a side list), a directory holds its looked-up
 * children by name (no per-node key string), and the set of open handles exists only
 * while the object is open (native-notes/engine.md, "A smaller node table").
 */
import type { FileStat } from '../core/filesystem.js';
import { FUSE_ROOT_ID } from './wire.js';

export interface Link {
  parent: Node;
  name: string;
}

/** st_ino as the node table keys it: a number when exact (always, for the union's
 * numbering), else the bigint. */
export type Ino = number | bigint;

/** The key `ino` is filed under (a bigint that fits a number becomes one, so both forms
 * of one st_ino meet). */
export function inoKey(ino: number | bigint): Ino {
  return typeof ino === 'bigint' && ino <= BigInt(Number.MAX_SAFE_INTEGER) && ino >= 0n ? Number(ino) : ino;
}

const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;

/** Before the root's first GETATTR: no st_ino is negative. */
const ROOT_INO_UNKNOWN = -1;

export class Node {
  /** Kernel references: +1 per entry reply, −nlookup per FORGET. */
  lookups = 0;
  /** The first name the kernel knows for this object (its path is built from it). */
  parent: Node | undefined = undefined;
  name = '';
  /** Names after the first (hard links), in the order the kernel learnt them. */
  private more: Link[] | undefined = undefined;
  /** Looked-up names in this directory → their nodes. */
  children: Map<string, Node> | undefined = undefined;
  /** Open file handles of this object (GETATTR of an object whose last name is gone). */
  private handles: Set<number> | undefined = undefined;
  /** Set by NodeTable.retire: the kernel reaches this node only through open files. */
  retired = false;
  /** Registered for the device's own read-only opens (lower-opens.ts) in `epoch` (-1: no
   * longer); `ino` is st_ino as fgetattr reports it for those opens. */
  lowerOpen: { epoch: number; ino: number } | undefined = undefined;
  /** The backing file (st_dev, st_ino of the fd) the kernel would not pass through
   * (open-files.ts shareBacking): its later opens do not ask again. */
  backingRefused: { dev: number; ino: number } | undefined = undefined;
  /** The attributes last sent to the kernel, kept only while the node is open (what a
   * retired node keeps showing: Dispatcher.statOpen). */
  lastStat: FileStat | undefined = undefined;
  /** Set when the node's last name went and `lastStat` is all that is left of its object
   * (Dispatcher.openCopyBeforeUnlink): statOpen answers it, as for a retired node. */
  showsLastStat = false;
  private noXattrsKnown = false;

  constructor(
    readonly id: number,
    /** st_ino, the object's identity. */
    public ino: Ino,
    private readonly onNoXattrs?: NoXattrsHook,
  ) {}

  /** Names the kernel knows for this object, the first one used for its path (a copy). */
  get links(): Link[] {
    if (this.parent === undefined) return [];
    const first = { parent: this.parent, name: this.name };
    return this.more === undefined ? [first] : [first, ...this.more];
  }

  get linkCount(): number {
    return this.parent === undefined ? 0 : 1 + (this.more?.length ?? 0);
  }

  /** The filesystem said the object has no xattr (PathFilesystem.hasNoXattrs): getxattr
   * and listxattr are answered without it (by the device's request loop, through the
   * hook). Cleared by whatever may add one through the mount (setxattr, removexattr,
   * link), when the node changes identity, and when it is forgotten. */
  get noXattrs(): boolean {
    return this.noXattrsKnown;
  }

  set noXattrs(on: boolean) {
    if (on === this.noXattrsKnown) return;
    this.noXattrsKnown = on;
    this.onNoXattrs?.(this.id, on);
  }

  /** The request loop found the object has no xattr, and said so itself (no hook). */
  noXattrsFromLoop(): void {
    this.noXattrsKnown = true;
  }

  /** Open file handles of this object. */
  get openHandles(): ReadonlySet<number> {
    return this.handles ?? NO_HANDLES;
  }

  addHandle(fh: number): void {
    (this.handles ??= new Set()).add(fh);
  }

  deleteHandle(fh: number): void {
    if (this.handles?.delete(fh) && this.handles.size === 0) this.handles = undefined;
  }

  /** @internal NodeTable's: adds a name. */
  addLink(parent: Node, name: string): void {
    if (this.parent === undefined) {
      this.parent = parent;
      this.name = name;
    } else {
      (this.more ??= []).push({ parent, name });
    }
  }

  /** @internal NodeTable's: drops a name (the next one, if any, becomes the first). */
  dropLink(parent: Node, name: string): void {
    if (this.parent === parent && this.name === name) {
      const next = this.more?.shift();
      this.parent = next?.parent;
      this.name = next?.name ?? '';
    } else if (this.more !== undefined) {
      const i = this.more.findIndex((l) => l.parent === parent && l.name === name);
      if (i >= 0) this.more.splice(i, 1);
    } else {
      return;
    }
    if (this.more?.length === 0) this.more = undefined;
  }

  /** Names after the first, if any (no copy). */
  get otherLinks(): readonly Link[] | undefined {
    return this.more;
  }

  /** @internal NodeTable's: forgets every name. */
  clearLinks(): void {
    this.parent = undefined;
    this.name = '';
    this.more = undefined;
  }
}

const NO_HANDLES: ReadonlySet<number> = new Set();

/** Told when a node's noXattrs changes (the device answers for marked nodes). */
export type NoXattrsHook = (id: number, on: boolean) => void;

export class NodeTable {
  private readonly byId = new Map<number, Node>();
  private readonly byIno = new Map<Ino, Node>();
  private nextId = FUSE_ROOT_ID + 1;
  readonly root: Node;

  constructor(
    private readonly onNoXattrs?: NoXattrsHook,
    /** Told when a node is forgotten, retired or changes identity. */
    private readonly onDropped?: (node: Node) => void,
    /** Told when a lookup, create or listing gives `node` the name `name` in `parent`. */
    private readonly onNamed?: (parent: Node, name: string, node: Node) => void,
  ) {
    this.root = new Node(FUSE_ROOT_ID, ROOT_INO_UNKNOWN, onNoXattrs);
    this.root.lookups = 1;
    this.byId.set(FUSE_ROOT_ID, this.root);
  }

  get size(): number {
    return this.byId.size;
  }

  get(id: number): Node | undefined {
    return this.byId.get(id);
  }

  /** The filesystem path of `node`, or undefined when the kernel knows no name for it. */
  path(node: Node): string | undefined {
    if (node === this.root) return '/';
    let p = '';
    let n = node;
    for (let depth = 0; n !== this.root; depth++) {
      if (n.parent === undefined || depth > 4096) return undefined;
      p = '/' + n.name + p;
      n = n.parent;
    }
    return p;
  }

  /** The path of `name` in directory `parent`. */
  childPath(parent: Node, name: string): string | undefined {
    const p = this.path(parent);
    if (p === undefined) return undefined;
    return p === '/' ? '/' + name : p + '/' + name;
  }

  /** The node the kernel knows as `name` in `parent`, if any. */
  child(parent: Node, name: string): Node | undefined {
    return parent.children?.get(name);
  }

  /**
   * Records that the kernel got an entry for object `ino` as `name` in `parent` (a lookup,
   * a create, a readdirplus entry): returns its node with one more kernel reference. When
   * the name pointed at another object (a copy-up gave it its own inode), it moves here.
   * `st.perName`: the object gets a node for this name alone (FileStat.perName).
   */
  remember(parent: Node, name: string, st: Pick<FileStat, 'ino' | 'nlink' | 'mode' | 'perName'>): Node {
    const k = inoKey(st.ino);
    const perName = st.perName === true;
    const old = parent.children?.get(name);
    let node = old !== undefined && old.ino === k ? old : undefined;
    if (node === undefined) {
      node = perName ? undefined : this.byIno.get(k);
      if (node === undefined) {
        node = new Node(this.nextId++, k, this.onNoXattrs);
        this.byId.set(node.id, node);
        // Only an object another name may lead to is found by st_ino: a non-directory
        // with more than one link (one that gets its second name through LINK is filed
        // then: file()). Most objects have one name, and the map entry is a fifth of a node.
        if (!perName && st.nlink > 1 && (st.mode & S_IFMT) !== S_IFDIR) this.byIno.set(k, node);
      }
      if (old !== undefined) old.dropLink(parent, name);
      node.addLink(parent, name);
      (parent.children ??= new Map()).set(name, node);
      this.onNamed?.(parent, name, node);
    }
    node.lookups++;
    return node;
  }

  /**
   * The request loop answered a LOOKUP of `name` in `parent` with node `id`, of object `ino`
   * (formats/loop-lookups.ts): the node, filed as remember() files a lower object of one
   * name (the loop keeps a node per name, as remember() does for a lower hard link), with
   * one more kernel reference.
   */
  rememberFromLoop(parent: Node, name: string, id: number, ino: number): Node {
    let node = this.byId.get(id);
    if (node === undefined) {
      node = new Node(id, ino, this.onNoXattrs);
      this.byId.set(id, node);
      parent.children?.get(name)?.dropLink(parent, name);
      node.addLink(parent, name);
      (parent.children ??= new Map()).set(name, node);
    }
    node.lookups++;
    return node;
  }

  /** `node`'s object is about to get another name (LINK): the new name must find it. */
  file(node: Node): void {
    if (!this.byIno.has(node.ino)) this.byIno.set(node.ino, node);
  }

  /**
   * The kernel must stop reaching `node` by its names (its open files keep it): the next
   * lookup of each name makes a new node. For an open the current node cannot take (a copy
   * of the file now answers for the name, but the node's other opens pin the old one).
   */
  retire(node: Node): void {
    node.retired = true;
    node.noXattrs = false;
    this.onDropped?.(node);
    this.unfile(node);
    if (this.byIno.get(node.ino) === node) this.byIno.delete(node.ino);
  }

  /** `name` in `parent` is gone (unlink, rmdir, or replaced by a rename). */
  unlinked(parent: Node, name: string): Node | undefined {
    const node = parent.children?.get(name);
    if (node === undefined) return undefined;
    parent.children!.delete(name);
    node.dropLink(parent, name);
    return node;
  }

  /** A rename: the object at from moves to `to`; with `exchange`, the one at `to` to `from`. */
  renamed(fromParent: Node, fromName: string, toParent: Node, toName: string, exchange: boolean): void {
    const moving = this.unlinked(fromParent, fromName);
    const other = this.unlinked(toParent, toName);
    if (moving !== undefined) this.addLink(moving, toParent, toName);
    if (exchange && other !== undefined) this.addLink(other, fromParent, fromName);
  }

  /** The kernel dropped `n` references to node `id`; at zero the node is forgotten. */
  forget(id: number, n: number): void {
    const node = this.byId.get(id);
    if (node === undefined || node === this.root) return;
    node.lookups -= n;
    if (node.lookups > 0) return;
    this.byId.delete(id);
    node.noXattrs = false;
    this.onDropped?.(node);
    if (this.byIno.get(node.ino) === node) this.byIno.delete(node.ino);
    this.unfile(node);
  }

  /** The root's st_ino joins the identity map (so a lookup of '..' style aliases match). */
  setRootIno(ino: number | bigint): void {
    this.byIno.delete(this.root.ino);
    this.root.ino = inoKey(ino);
    this.byIno.set(this.root.ino, this.root);
  }

  /** `node`'s only name now names object `ino` (its identity changed in place). */
  rekey(node: Node, ino: number | bigint): void {
    const k = inoKey(ino);
    if (this.byIno.get(node.ino) === node) this.byIno.delete(node.ino);
    node.ino = k;
    node.noXattrs = false;
    this.onDropped?.(node);
    if (!this.byIno.has(k)) this.byIno.set(k, node);
  }

  private addLink(node: Node, parent: Node, name: string): void {
    node.addLink(parent, name);
    (parent.children ??= new Map()).set(name, node);
  }

  /** Takes every name of `node` out of its parents' child maps. */
  private unfile(node: Node): void {
    if (node.parent !== undefined) unfileName(node, node.parent, node.name);
    for (const l of node.otherLinks ?? []) unfileName(node, l.parent, l.name);
    node.clearLinks();
  }
}

function unfileName(node: Node, parent: Node, name: string): void {
  const c = parent.children;
  if (c?.get(name) === node) {
    c.delete(name);
    if (c.size === 0) parent.children = undefined;
  }
}
