/**
 * Read-only opens of lower-layer files answered by the device's request loop, in C
 * (native-notes/engine.md "Lower opens in C"). A file is registered in the device with its
 * backing file's path and attributes when a LOOKUP finds it (a regular file only a
 * read-only layer holds), or else at its first open, which reaches JS as any open does and
 * which JS then hands to the loop as well (answerOpen). From then on its read-only OPENs,
 * their RELEASEs and its GETATTRs never reach JS: the loop opens the path, shares the
 * node's backing id, replies. Where the mount has no passthrough (made as root of a user
 * namespace: rootless podman) the loop answers with the page cache kept instead, and
 * answers the READs of its own opens from its fd as well. (READDIRPLUS entries are not
 * registered: it would cost every listing, see native-notes/engine.md.)
 *
 * Directories likewise (native-notes/engine.md "Directory opens in C"): after an OPENDIR
 * reached JS, the loop answers the directory's later OPENDIRs (and their RELEASEDIRs, and
 * its GETATTRs when it is lower-only: the index's attributes, constant) until the epoch
 * ends; so does a lower-only symlink's GETATTR after its READLINK or GETATTR reached JS
 * (reading a link invalidates its atime in the kernel: `tar` would send one per link).
 * A warm `find` or `tar` then reaches JS with nothing per directory or link. A directory
 * of the writable layer whose GETATTR reached JS has the loop answer the next ones with an
 * lstat of its backing directory (its times change with every create inside, and the
 * kernel asks after each: a loop of creates in one directory sends them all to the loop).
 *
 * Directories likewise have the loop answer the LOOKUPs of names in them that the writable
 * layer has nothing of (a mark, native-notes/engine.md "LOOKUP in C"): JS marks a directory
 * at a LOOKUP in it that reached JS, and a lower-only one its LOOKUP finds new; the loop
 * marks those it finds itself, and JS files the nodes the loop makes from its records. A
 * mark ends as a registration does, and at a READDIRPLUS of its directory.
 *
 * A registration holds only while nothing may have changed what it says. Before a request
 * that may change names runs (anything but reads, lookups, listings, closes — READ_ONLY —
 * and requests that only add a name — ADDS_NAME), the registrations it may change end: its
 * one object's (CHANGES_ONE), or else all of them at once (the device's epoch). The
 * directories a request copies up lose theirs as they are copied (dispatcher's onCopiedUp).
 * And a registration is made only if no such request started since the open began and none
 * is still running (a copy-up in flight could otherwise leave a registration of the file it
 * is replacing).
 */
import { constants as fsConstants } from 'node:fs';
import type { FileStat, LowerFile, PathFilesystem, UpperDirStat } from '../core/filesystem.js';
import type { FuseDevice } from './device.js';
import type { Node, NodeTable } from './node-table.js';
import type { OpenPolicy } from './open-files.js';
import { FLAG_ATTR, FLAG_FILE, FLAG_MARKED, ID_FIRST } from './formats/loop-lookups.js';
import { attrOut, IN_HEADER_SIZE, LAYOUT, Opcode, writeAttrOut } from './wire.js';

const O_ACCMODE = 3;
const NODEID_OFFSET = LAYOUT.fuse_in_header.fields.nodeid;
/** A path the kernel refuses as one piece goes to JS (backing-path.ts walks it). */
const PATH_MAX = 4096;

/** Requests that never change what a name resolves to. WRITE reaches only files of the
 * writable layer; an OPEN counts only when it cannot copy up (read-only, no O_TRUNC). */
const READ_ONLY = new Set<number>([
  Opcode.INIT, Opcode.DESTROY, Opcode.FORGET, Opcode.BATCH_FORGET, Opcode.INTERRUPT, Opcode.NOTIFY_REPLY,
  Opcode.LOOKUP, Opcode.GETATTR, Opcode.READLINK, Opcode.READ, Opcode.WRITE, Opcode.STATFS, Opcode.RELEASE,
  Opcode.FSYNC, Opcode.FLUSH, Opcode.GETXATTR, Opcode.LISTXATTR, Opcode.OPENDIR, Opcode.READDIR,
  Opcode.READDIRPLUS, Opcode.RELEASEDIR, Opcode.FSYNCDIR, Opcode.ACCESS, Opcode.GETLK, Opcode.LSEEK,
  Opcode.POLL, Opcode.BMAP, Opcode.STATX,
]);

/**
 * Requests that only add a name: they change nothing a registration says, except the
 * attributes of the directories they copy up (the parent and the ancestors not yet on the
 * writable layer), whose registrations the dispatcher drops as each is copied (onCopiedUp).
 * The kernel sends CREATE only for a name it found missing (fuse_atomic_open looks it up
 * first), and the names registered are existing lower files, directories and links; a
 * whiteout the new name replaces was an UNLINK or RMDIR, which ended every registration.
 * Not LINK: it copies its source up (CHANGES_ONE).
 */
const ADDS_NAME = new Set<number>([Opcode.CREATE, Opcode.MKDIR, Opcode.MKNOD, Opcode.SYMLINK]);

/**
 * Requests that change one existing object (`nodeid`; UNLINK, RMDIR: the name's; LINK: its
 * source) and nothing else a registration says: that object's registration goes — a lower
 * file copied up or whited out, a lower directory's or link's attributes — and so do those
 * of the directories copied up with it (onCopiedUp, as for ADDS_NAME); the others stay. An
 * OPEN is here when it may copy up (not read-only). RMDIR removes a directory that is empty
 * in the union: every name below it went first, each ending its own registration. LINK
 * copies its source up; other names of a lower hard link are nodes of their own (a copy-up
 * breaks the link, as on the kernel's overlayfs) and keep the lower file. Not RENAME: a
 * directory's rename changes every name below it (its handler decides: renaming()).
 */
const CHANGES_ONE = new Set<number>([Opcode.SETATTR, Opcode.SETXATTR, Opcode.REMOVEXATTR, Opcode.OPEN, Opcode.FALLOCATE, Opcode.UNLINK, Opcode.RMDIR, Opcode.LINK]);

/** Requests whose handler says which registrations end, before it awaits anything
 * (renaming(): a rename of files ends theirs, of a directory all). */
const DECIDED_BY_HANDLER = new Set<number>([Opcode.RENAME, Opcode.RENAME2]);

/** starting()'s answers. */
const ADDS = 1;
const CHANGES = 2;

/** Whether an open with these flags reads only (the union copies up for anything else). */
export function readOnlyOpen(flags: number): boolean {
  return (flags & O_ACCMODE) === fsConstants.O_RDONLY && (flags & fsConstants.O_TRUNC) === 0;
}

/** The object a CHANGES_ONE request changes, if the node table has it. */
function objectOf(opcode: number, req: Buffer, nodes: Pick<NodeTable, 'get' | 'child'>): Node | undefined {
  // LINK names its source in fuse_link_in.oldnodeid, the body's first field.
  const at = opcode === Opcode.LINK ? IN_HEADER_SIZE : NODEID_OFFSET;
  if (req.length < at + 8) return undefined;
  const id = req.readBigUInt64LE(at);
  if (id > BigInt(Number.MAX_SAFE_INTEGER)) return undefined;
  const node = nodes.get(Number(id));
  if ((opcode !== Opcode.UNLINK && opcode !== Opcode.RMDIR) || node === undefined) return node;
  const end = req.indexOf(0, IN_HEADER_SIZE);
  return end < 0 ? undefined : nodes.child(node, req.toString('latin1', IN_HEADER_SIZE, end));
}

export class LowerOpens {
  /** Ended registrations so far (the device's epoch counts the same calls). */
  private epoch = 0;
  /** Some node is registered in this epoch. */
  private live = false;
  /** Requests started that may change names, and how many of them are unanswered. */
  private changes = 0;
  private changing = 0;
  /** Requests that add a name or may change names, unanswered (changing counts the latter). */
  private inFlight = 0;
  /** Directory and symlink node ids registered (registerAttr) → the epoch they were
   * registered in. */
  private readonly attrs = new Map<number, number>();
  /** Writable-layer directories registered (registerUpperDir) → the epoch. */
  private readonly upperDirs = new Map<number, number>();
  /** Directories whose LOOKUPs the loop answers (markLookups, or marked by the loop) → the
   * epoch. */
  private readonly marks = new Map<number, number>();
  /** Directories the filesystem said the loop cannot look names up in → the epoch. */
  private readonly unmarkable = new Map<number, number>();
  /** JS's nodes the loop knows a name of (lookupChild); the loop's own (from ID_FIRST) it
   * knows by their ids. */
  private readonly namedInLoop = new Set<number>();
  /** The loop answers LOOKUPs in marked directories (Dispatcher.lookupsInLoop). */
  loopLookups = false;
  private readonly attrScratch = Buffer.alloc(LAYOUT.fuse_attr_out.size);

  constructor(
    private readonly device: FuseDevice,
    private readonly fs: PathFilesystem,
    /** Seconds the kernel may cache attributes (as the GETATTR reply says). */
    private readonly attrSeconds: number,
    private readonly report: (err: unknown) => void,
  ) {}

  /**
   * Before request `req` (opcode `opcode`) runs: ends the registrations it may change
   * (CHANGES_ONE: its object's; else every one). Returns what to pass to settled() once it
   * was answered: 0 for a request that changes nothing on the writable layer (then no
   * call), ADDS for one that only adds a name, CHANGES for one that may change names.
   * `nodes` finds the request's object.
   */
  starting(opcode: number, req: Buffer, nodes: Pick<NodeTable, 'get' | 'child'>): 0 | typeof ADDS | typeof CHANGES {
    if (READ_ONLY.has(opcode)) return 0;
    if (opcode === Opcode.OPEN && req.length >= IN_HEADER_SIZE + 8 && readOnlyOpen(req.readUInt32LE(IN_HEADER_SIZE))) return 0;
    // The request loop copies nothing up while this runs (copy-up-open.h).
    if (this.inFlight++ === 0) this.device.setChanging(true);
    if (ADDS_NAME.has(opcode)) return ADDS;
    this.changes++;
    this.changing++;
    if (CHANGES_ONE.has(opcode)) {
      const node = objectOf(opcode, req, nodes);
      // Unknown to the table: the kernel never had it, so nothing was registered for it.
      if (node !== undefined) this.dropped(node);
      return CHANGES;
    }
    if (!DECIDED_BY_HANDLER.has(opcode)) this.endAll();
    return CHANGES;
  }

  /**
   * A RENAME, before it changes anything: `objects` (the moved object, the one it replaces
   * or exchanges with; undefined where the table has none) when none is a directory — only
   * theirs end —, or null: a directory's rename changes every name below it, so all end.
   */
  renaming(objects: (Node | undefined)[] | null): void {
    if (objects === null) this.endAll();
    else for (const n of objects) if (n !== undefined) this.dropped(n);
  }

  private endAll(): void {
    if (!this.live) return;
    this.device.lowerOpensEpoch();
    this.epoch++;
    this.live = false;
  }

  settled(kind: typeof ADDS | typeof CHANGES): void {
    if (kind === CHANGES) this.changing--;
    if (--this.inFlight === 0) this.device.setChanging(false);
  }

  /** The request loop copied `node`'s lower file up: its registration ended there, and an
   * open of it begun before must not register it again (a change happened meanwhile). */
  copiedUp(node: Node): void {
    this.changes++;
    if (node.lowerOpen !== undefined) node.lowerOpen.epoch = -1;
  }

  /** What register() needs to know of when an open began. */
  mark(): number {
    return this.changes;
  }

  /** After a JS open of `node` (handle `fh`, begun at `mark`) was answered by passthrough,
   * or (`cached`) with the page cache kept on a mount without passthrough. Returns whether
   * the node is registered now. */
  opened(node: Node, fh: number, flags: number, mark: number, cached: boolean): boolean {
    if (!readOnlyOpen(flags) || mark !== this.changes || this.changing > 0) return false;
    if (node.lowerOpen?.epoch === this.epoch) return true;
    return this.register(node, this.fs.lowerFile?.(fh), cached);
  }

  /**
   * A LOOKUP found `node` to be `file`, a regular file only a read-only layer holds: even its
   * first open is the loop's (an exec or ld.so reaches files by name, each opened once per
   * container). `policy`: the mount's, as it answers opens — without directData all file
   * data goes through the filesystem, so nothing is registered, as the open path does.
   */
  lookedUp(node: Node, file: LowerFile, policy: OpenPolicy): void {
    if (!policy.directData || this.changing > 0 || node.lowerOpen?.epoch === this.epoch) return;
    this.register(node, file, !policy.passthrough);
  }

  /**
   * After JS answered OPENDIR of `node` (not while a request that may change names is
   * unanswered: an rmdir in flight could leave a registration of a directory that is gone).
   * `lowerOnly` gives the directory's attributes when they are the index's (constant).
   */
  openedDir(node: Node, lowerOnly: () => FileStat | undefined): void {
    this.registerAttr(node, lowerOnly, true);
  }

  /** READLINK or GETATTR of the symlink `node` reached JS: its GETATTR is the loop's if it
   * is lower-only (`lowerOnly`), until the epoch ends. */
  seenLink(node: Node, lowerOnly: () => FileStat | undefined): void {
    this.registerAttr(node, lowerOnly, false);
  }

  /** GETATTR of the directory `node` reached JS: if it is on the writable layer (`upper`
   * says how its GETATTR is made), the loop makes the next ones, until the epoch ends or the
   * directory's own registration does (a change to it, or its removal). */
  seenDir(node: Node, upper: () => UpperDirStat | undefined): void {
    if (this.changing > 0 || this.upperDirs.get(node.id) === this.epoch) return;
    const how = upper();
    if (how === undefined || how.path.length >= PATH_MAX) return;
    try {
      this.device.registerUpperDir(node.id, how.path, how.ino ?? 0, how.nlinkOne, this.attrSeconds);
    } catch (err) {
      this.report(err);
      return;
    }
    this.upperDirs.set(node.id, this.epoch);
    this.live = true;
  }

  /**
   * A LOOKUP through JS found `node`, new to the table, to be a directory only the lower
   * layers hold, at `indexPath` in the index: the loop answers the LOOKUPs in it from now
   * on (native-notes/engine.md "LOOKUP in C"). Not while a request that may change names is
   * unanswered, as for every registration; not once JS holds names in it (the loop would
   * not know them).
   */
  lookedUpDir(node: Node, indexPath: string, samePath: boolean): void {
    if (!this.loopLookups || this.changing > 0 || node.children !== undefined || this.marks.get(node.id) === this.epoch) return;
    try {
      this.device.markLookups(node.id, Buffer.from(indexPath, 'latin1'), null, samePath);
    } catch (err) {
      this.report(err);
      return;
    }
    this.marks.set(node.id, this.epoch);
    this.live = true;
  }

  /**
   * A LOOKUP in directory `dir` reached JS: the loop answers the next ones there, if the
   * filesystem says how (PathFilesystem.loopDir) — a directory of the writable layer too,
   * whose names the loop checks there first. The loop learns every name JS holds in it
   * first. Not while any request that may change names is unanswered. The path is made only
   * past the checks: a directory that cannot be marked (an AUFS writable layer's) sends
   * every LOOKUP here.
   */
  lookedUpIn(dir: Node, nodes: Pick<NodeTable, 'path'>): void {
    if (!this.loopLookups || this.inFlight > 0 || this.marks.get(dir.id) === this.epoch || this.unmarkable.get(dir.id) === this.epoch) return;
    const path = nodes.path(dir);
    if (path === undefined || this.fs.loopDir === undefined) return;
    const how = this.fs.loopDir(path);
    if (how === undefined || (how.upper !== null && how.upper.length >= PATH_MAX)) {
      // Not asked again in this epoch: a LOOKUP through JS would pay for it each time.
      this.unmarkable.set(dir.id, this.epoch);
      return;
    }
    try {
      for (const [name, child] of dir.children ?? []) {
        this.device.lookupChild(dir.id, Buffer.from(name, 'latin1'), child.id);
        if (child.id < ID_FIRST) this.namedInLoop.add(child.id);
      }
      this.device.markLookups(dir.id, how.index === null ? null : Buffer.from(how.index, 'latin1'), how.upper, how.index === path);
    } catch (err) {
      this.report(err);
      return;
    }
    this.marks.set(dir.id, this.epoch);
    this.live = true;
  }

  /** JS gave `node` the name `name` in `parent` (a lookup the loop left to JS, a listing):
   * if the loop looks names up there, it must answer this one with this node. */
  named(parent: Node, name: string, node: Node): void {
    if (this.marks.size === 0 || this.marks.get(parent.id) !== this.epoch) return;
    try {
      this.device.lookupChild(parent.id, Buffer.from(name, 'latin1'), node.id);
      if (node.id < ID_FIRST) this.namedInLoop.add(node.id);
    } catch (err) {
      // No memory for the name: the loop must not answer in that directory any more.
      this.report(err);
      this.dropped(parent);
    }
  }

  /** A listing with entries (READDIRPLUS) of `dir` reached JS, which names every child
   * itself: the loop stops looking names up there (cheaper than telling it each name; the
   * kernel has every entry now). */
  listing(dir: Node): void {
    if (!this.loopLookups) return;
    // Not marked again in this epoch either: each mark pushes every name JS holds there,
    // which a listing made many of, and `ls -l` then `stat` in turn would pay it each time.
    this.unmarkable.set(dir.id, this.epoch);
    if (this.marks.size === 0 || !this.marks.delete(dir.id)) return;
    this.device.unmarkLookups(dir.id);
  }

  /** The loop looked `node` up (a record with `flags`, formats/loop-lookups.ts; `ino`: its
   * st_ino) and registered what the flags say, in this epoch. */
  filedFromLoop(node: Node, flags: number, ino: number): void {
    if (flags & FLAG_FILE) node.lowerOpen = { epoch: this.epoch, ino };
    if (flags & FLAG_ATTR) this.attrs.set(node.id, this.epoch);
    if (flags & FLAG_MARKED) this.marks.set(node.id, this.epoch);
    if (flags & (FLAG_FILE | FLAG_ATTR | FLAG_MARKED)) this.live = true;
  }

  /** The filesystem found a layer damaged: no LOOKUP in the loop from now on, and every
   * registration ends (a lower file's may describe the damaged path). */
  indexDamaged(): void {
    if (!this.loopLookups) return;
    this.loopLookups = false;
    this.live = true;
    this.endAll();
  }

  /** `node` left the table (forgotten, retired, rekeyed): the loop forgets its name. */
  gone(node: Node): void {
    if (node.id >= ID_FIRST || (this.namedInLoop.size > 0 && this.namedInLoop.delete(node.id))) this.device.lookupForget(node.id);
  }

  private registerAttr(node: Node, lowerOnly: () => FileStat | undefined, opendir: boolean): void {
    if (this.changing > 0 || this.attrs.get(node.id) === this.epoch) return;
    const st = lowerOnly();
    if (st === undefined && !opendir) return;
    try {
      this.device.registerAttr(node.id, st === undefined ? null : attrOut(st, this.attrSeconds), opendir);
    } catch (err) {
      // Out of memory for the table: this node's requests keep reaching JS.
      this.report(err);
      return;
    }
    this.attrs.set(node.id, this.epoch);
    this.live = true;
  }

  private register(node: Node, file: LowerFile | undefined, cached: boolean): boolean {
    if (file === undefined || file.path.length >= PATH_MAX) return false;
    try {
      // The device copies the attributes: one scratch buffer serves every registration (a
      // LOOKUP of a lower file makes one; `stat` of 100,000 files, 100,000).
      this.device.registerLowerOpen(node.id, file.path, file.size, writeAttrOut(this.attrScratch, file.stat, this.attrSeconds), cached, file.unionAt ?? -1);
    } catch (err) {
      // Out of memory for the table: this node's opens keep reaching JS.
      this.report(err);
      return false;
    }
    node.lowerOpen = { epoch: this.epoch, ino: file.ino };
    this.live = true;
    return true;
  }

  /** `node` is forgotten, retired or rekeyed: its registration (if any) goes. */
  dropped(node: Node): void {
    const attr = this.attrs.size > 0 && this.attrs.delete(node.id);
    const upperDir = this.upperDirs.size > 0 && this.upperDirs.delete(node.id);
    const mark = this.marks.size > 0 && this.marks.delete(node.id);
    if (this.unmarkable.size > 0) this.unmarkable.delete(node.id);
    if (!attr && !upperDir && !mark && (node.lowerOpen === undefined || node.lowerOpen.epoch < 0)) return;
    if (node.lowerOpen !== undefined) node.lowerOpen.epoch = -1;
    try {
      this.device.registerLowerOpen(node.id, null, 0, null, false);
    } catch (err) {
      this.report(err);
    }
  }
}
