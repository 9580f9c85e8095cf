/**
 * The kernel's node ids, one per OBJECT (keyed by st_ino): every hard-link name of a file
 * maps to one node, so the kernel holds one inode per object and the attributes it caches
 * are right through every name. A node knows the names (parent node + name) by which the
 * kernel reached it; its path, as the PathFilesystem wants it, is built from the first.
 * Node ids are never reused (a 64-bit counter), so the generation is always 0.
 */
import type { FileStat } from '../core/filesystem.js';
import { FUSE_ROOT_ID } from './wire.js';

export interface Link {
  parent: Node;
  name: string;
}

export class Node {
  /** Kernel references: +1 per entry reply, −nlookup per FORGET. */
  lookups = 0n;
  /** Names the kernel knows for this object, first one used for its path. */
  readonly links: Link[] = [];
  /** Open file handles of this object (GETATTR of an object whose last name is gone). */
  readonly openHandles = new Set<number>();
  /** Set by NodeTable.retire: the kernel reaches this node only through open files. */
  retired = false;
  /** The attributes last sent to the kernel for it (what a retired node keeps showing). */
  lastStat: FileStat | undefined;
  /** Registered for the device's own read-only opens (lower-opens.ts) in `epoch` (-1: no
   * longer); `ino` is st_ino as fgetattr reports it for those opens. */
  lowerOpen: { epoch: number; ino: number } | undefined;
  private noXattrsKnown = false;

  constructor(
    readonly id: bigint,
    /** st_ino, the object's identity. */
    public ino: string,
    private readonly onNoXattrs?: NoXattrsHook,
  ) {}

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
}

/** Told when a node's noXattrs changes (the device answers for marked nodes). */
export type NoXattrsHook = (id: bigint, on: boolean) => void;

export class NodeTable {
  private readonly byId = new Map<bigint, Node>();
  private readonly byIno = new Map<string, Node>();
  private readonly byName = new Map<string, Node>();
  private nextId = FUSE_ROOT_ID + 1n;
  readonly root: Node;

  constructor(
    private readonly onNoXattrs?: NoXattrsHook,
    /** Told when a node is forgotten, retired or changes identity. */
    private readonly onDropped?: (node: Node) => void,
  ) {
    this.root = new Node(FUSE_ROOT_ID, 'root', onNoXattrs);
    this.root.lookups = 1n;
    this.byId.set(FUSE_ROOT_ID, this.root);
  }

  get size(): number {
    return this.byId.size;
  }

  get(id: bigint): Node | undefined {
    return this.byId.get(id);
  }

  /** The filesystem path of `node`, or undefined when the kernel knows no name for it. */
  path(node: Node): string | undefined {
    const parts: string[] = [];
    let n = node;
    for (let depth = 0; n !== this.root; depth++) {
      const l = n.links[0];
      if (l === undefined || depth > 4096) return undefined;
      parts.push(l.name);
      n = l.parent;
    }
    return parts.length === 0 ? '/' : '/' + parts.reverse().join('/');
  }

  /** The path of `name` in directory `parent`. */
  childPath(parent: Node, name: string): string | undefined {
    const p = this.path(parent);
    if (p === undefined) return undefined;
    return p === '/' ? '/' + name : p + '/' + name;
  }

  /** The node the kernel knows as `name` in `parent`, if any. */
  child(parent: Node, name: string): Node | undefined {
    return this.byName.get(key(parent, name));
  }

  /**
   * Records that the kernel got an entry for object `ino` as `name` in `parent` (a lookup,
   * a create, a readdirplus entry): returns its node with one more kernel reference. When
   * the name pointed at another object (a copy-up gave it its own inode), it moves here.
   * `perName`: the object gets a node for this name alone (FileStat.perName).
   */
  remember(parent: Node, name: string, ino: number | bigint, perName = false): Node {
    const k = String(ino);
    const nk = key(parent, name);
    const old = this.byName.get(nk);
    let node = old !== undefined && old.ino === k ? old : undefined;
    if (node === undefined) {
      node = perName ? undefined : this.byIno.get(k);
      if (node === undefined) {
        node = new Node(this.nextId++, k, this.onNoXattrs);
        this.byId.set(node.id, node);
        if (!perName) this.byIno.set(k, node);
      }
      if (old !== undefined) dropLink(old, parent, name);
      node.links.push({ parent, name });
      this.byName.set(nk, node);
    }
    node.lookups++;
    return node;
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
    for (const l of node.links) {
      const nk = key(l.parent, l.name);
      if (this.byName.get(nk) === node) this.byName.delete(nk);
    }
    node.links.length = 0;
    if (this.byIno.get(node.ino) === node) this.byIno.delete(node.ino);
  }

  /** `name` in `parent` is gone (unlink, rmdir, or replaced by a rename). */
  unlinked(parent: Node, name: string): Node | undefined {
    const nk = key(parent, name);
    const node = this.byName.get(nk);
    if (node === undefined) return undefined;
    this.byName.delete(nk);
    dropLink(node, parent, name);
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
  forget(id: bigint, n: bigint): void {
    const node = this.byId.get(id);
    if (node === undefined || node === this.root) return;
    node.lookups -= n;
    if (node.lookups > 0n) return;
    this.byId.delete(id);
    node.noXattrs = false;
    this.onDropped?.(node);
    if (this.byIno.get(node.ino) === node) this.byIno.delete(node.ino);
    for (const l of node.links) {
      const nk = key(l.parent, l.name);
      if (this.byName.get(nk) === node) this.byName.delete(nk);
    }
    node.links.length = 0;
  }

  /** The root's st_ino joins the identity map (so a lookup of '..' style aliases match). */
  setRootIno(ino: number | bigint): void {
    this.byIno.delete(this.root.ino);
    this.root.ino = String(ino);
    this.byIno.set(this.root.ino, this.root);
  }

  /** `node`'s only name now names object `ino` (its identity changed in place). */
  rekey(node: Node, ino: number | bigint): void {
    const k = String(ino);
    if (this.byIno.get(node.ino) === node) this.byIno.delete(node.ino);
    node.ino = k;
    node.noXattrs = false;
    this.onDropped?.(node);
    if (!this.byIno.has(k)) this.byIno.set(k, node);
  }

  private addLink(node: Node, parent: Node, name: string): void {
    node.links.push({ parent, name });
    this.byName.set(key(parent, name), node);
  }
}

function key(parent: Node, name: string): string {
  return `${parent.id}/${name}`;
}

function dropLink(node: Node, parent: Node, name: string): void {
  const i = node.links.findIndex((l) => l.parent === parent && l.name === name);
  if (i >= 0) node.links.splice(i, 1);
}
