/**
 * The engine's request handler: one kernel FUSE request in, exactly one reply out (none
 * for FORGET, BATCH_FORGET, INTERRUPT), every opcode mapped onto the PathFilesystem
 * contract with the caller from the request header. This is the errno boundary of the
 * engine: a rejection or a throw becomes a negative errno (src/fuse/errno.ts), a request
 * it cannot parse EINVAL, an opcode it does not serve ENOSYS; nothing here can end the
 * process (test/unit/engine-dispatcher.test.ts feeds it random frames).
 */
import { constants as fsConstants } from 'node:fs';
import { constants } from 'node:os';
import { Errno, LayerfsError } from '../core/errors.js';
import { RenameFlags, type Caller, type DirEntry, type FileStat, type PathFilesystem, type TimeUpdate } from '../core/filesystem.js';
import { isUnexpectedFailure, toNegativeErrno } from '../fuse/index.js';
import { CopiedUp, type FuseDevice } from './device.js';
import { isNativeDir, NATIVE_OPEN, nativeOpenFd } from './formats/engine-handles.js';
import { LowerOpens } from './lower-opens.js';
import { inoKey, NodeTable, type Ino, type Node } from './node-table.js';
import { OpenFiles } from './open-files.js';
import { OpenDirs, type PlusEntry } from './readdir.js';
import * as LoopRecord from './formats/loop-lookups.js';
import { negotiateInit, type InitChoice } from './init.js';
import {
  attrOut, Body, entryOut, FAttr, FOpen, getxattrOut, IN_HEADER_SIZE, InitFlag, LAYOUT, Opcode, openOut,
  readInHeader, SetxattrFlag, statfsOut, writeEntry, writeOut, type InHeader, type Validity,
} from './wire.js';

export interface DispatcherOptions {
  /** Seconds the kernel may trust entries, attributes, and negative entries. */
  entrySeconds: number;
  attrSeconds: number;
  negativeSeconds: number;
  /** Ask for FUSE_PASSTHROUGH (needs CAP_SYS_ADMIN for the backing ioctls). */
  passthrough: boolean;
  /** Serve data from fds the filesystem hands over (directIo). */
  directData: boolean;
  /** Let the request loop copy small lower files up at their first write open (with
   * passthrough only; PathFilesystem.copyUpTarget). Default on. */
  loopCopyUp?: boolean;
  /** Let the request loop answer LOOKUPs of names the writable layer has nothing of, from
   * the lower index (PathFilesystem.loopLookups; native-notes/engine.md "LOOKUP in C").
   * Default on. */
  loopLookups?: boolean;
  traceOps?: (op: string, path: string) => void;
  onUnexpectedError?: (err: unknown, op: string) => void;
}

/** The reply's parts; null: no reply; a number: that negative errno, without the cost of
 * a thrown Error (for answers as common as ENODATA to `ls -l`'s getxattr). */
type Reply = Buffer[] | null | number;

const osErrno = constants.errno;
const OPNAME: Record<number, string> = Object.fromEntries(Object.entries(Opcode).map(([k, v]) => [v, k.toLowerCase()]));
/** setattr_in.valid bits that ask nothing of the filesystem (FATTR_LOCKOWNER, FATTR_CTIME). */
const LOCK_BITS = 512 | FAttr.CTIME;
const UTIME_NOW_MASK = { atime: FAttr.ATIME_NOW, mtime: FAttr.MTIME_NOW };
const S_ISGID = 0o2000;
/** setxattr_in as sent without FUSE_SETXATTR_EXT (asked for only with POSIX ACLs). */
const SETXATTR_COMPAT_SIZE = 8;
/** init_in before protocol 7.36. */
const INIT_IN_MIN_SIZE = 16;

export class Dispatcher {
  readonly nodes: NodeTable;
  readonly dirs = new OpenDirs();
  files: OpenFiles;
  readonly lowerOpens: LowerOpens;
  init: InitChoice | undefined;
  private readonly entryValid: Validity;
  private readonly negativeValid: Validity;
  /** The cached-negative LOOKUP reply: the same bytes every time. */
  private readonly negativeEntry: Buffer;
  /** A LOOKUP answered synchronously is written here and sent before handle() returns
   * (the device copies it into the kernel): no Buffer per reply. */
  private readonly entryScratch = Buffer.alloc(LAYOUT.fuse_entry_out.size);
  private initWaiters: ((c: InitChoice) => void)[] = [];
  /** Counts setxattr/removexattr/link requests: a listing taken before one may claim "no
   * xattrs" for an object that has one now. */
  private xattrEpoch = 0;
  /** Requests seen per opcode name (the bench counts READ/WRITE). */
  readonly counts = new Map<string, number>();
  /** Microseconds from a request's arrival to its reply, summed per opcode name (the
   * engine bench divides by counts: where the JavaScript time goes). */
  readonly micros = new Map<string, number>();

  constructor(
    private readonly fs: PathFilesystem,
    private readonly device: FuseDevice,
    private readonly options: DispatcherOptions,
  ) {
    fs.onCopiedUp?.((path) => this.copiedUp(path));
    this.lowerOpens = new LowerOpens(device, fs, options.attrSeconds, (err) => options.onUnexpectedError?.(err, 'registerLowerOpen'));
    this.nodes = new NodeTable(
      (id, on) => {
        try {
          device.setNoXattrs(id, on);
        } catch (err) {
          // Out of memory for the set: the node's xattr requests keep reaching JS.
          options.onUnexpectedError?.(err, 'setNoXattrs');
        }
      },
      (node) => {
        this.lowerOpens.dropped(node);
        this.lowerOpens.gone(node);
      },
      (parent, name, node) => this.lowerOpens.named(parent, name, node),
    );
    this.entryValid = { entry: options.entrySeconds, attr: options.attrSeconds };
    this.negativeValid = { entry: options.negativeSeconds, attr: 0 };
    this.negativeEntry = entryOut(0, null, this.negativeValid);
    this.files = new OpenFiles(fs, device, { passthrough: false, directData: options.directData });
  }

  /** Resolves once INIT has been answered. */
  initialized(): Promise<InitChoice> {
    if (this.init) return Promise.resolve(this.init);
    return new Promise((resolve) => this.initWaiters.push(resolve));
  }

  /** One request as read from the device. Never throws. */
  handle(req: Buffer): void {
    let h: InHeader;
    try {
      h = readInHeader(req);
    } catch (err) {
      // Without a whole header there is no `unique` to answer; with one, say EINVAL.
      if (req.length >= IN_HEADER_SIZE) this.send(req.readBigUInt64LE(LAYOUT.fuse_in_header.fields.unique), -Errno.EINVAL, null);
      this.options.onUnexpectedError?.(err, 'frame');
      return;
    }
    const op = OPNAME[h.opcode] ?? `opcode-${h.opcode}`;
    this.counts.set(op, (this.counts.get(op) ?? 0) + 1);
    const started = performance.now();
    const changes = this.lowerOpens.starting(h.opcode, req, this.nodes);
    const took = () => {
      if (changes !== 0) this.lowerOpens.settled(changes);
      this.micros.set(op, (this.micros.get(op) ?? 0) + Math.round((performance.now() - started) * 1000));
    };
    let pending: Promise<Reply> | Reply;
    try {
      pending = this.run(h, new Body(req.subarray(IN_HEADER_SIZE)), op);
    } catch (err) {
      this.fail(h, op, err);
      took();
      return;
    }
    if (!(pending instanceof Promise)) {
      this.answer(h.unique, pending);
      took();
      return;
    }
    pending.then(
      (payload) => {
        this.answer(h.unique, payload);
        took();
      },
      (err: unknown) => {
        this.fail(h, op, err);
        took();
      },
    );
  }

  private answer(unique: bigint, r: Reply): void {
    if (typeof r === 'number') this.send(unique, r, null);
    else if (r) this.send(unique, 0, r);
  }

  private fail(h: InHeader, op: string, err: unknown): void {
    const errno = toNegativeErrno(err);
    // A layer found damaged: the index no longer says what every path is (the filesystem
    // answers the damaged one EIO), so the request loop stops answering from it.
    if (err instanceof LayerfsError && err.code === 'DAMAGED') this.lowerOpens.indexDamaged();
    if (isUnexpectedFailure(err, errno)) this.options.onUnexpectedError?.(err, op);
    if (!NO_REPLY.has(h.opcode)) this.send(h.unique, errno, null);
  }

  private send(unique: bigint, error: number, payload: Buffer[] | null): void {
    try {
      this.device.reply(unique, error, ...(payload ?? []));
    } catch (err) {
      // The request may have been interrupted and the mount gone; nothing to answer.
      this.options.onUnexpectedError?.(err, 'reply');
    }
  }

  /**
   * Setting an ACL as an owner outside the file's group, without CAP_FSETID, clears
   * setgid (the kernel decided: ACL_KILL_SGID); the filesystem set the ACL with the
   * server's rights, which clear nothing. The permission bits are the ones the ACL just
   * gave, so the chmod leaves the ACL as it is.
   */
  private async killSgid(path: string, h: InHeader): Promise<void> {
    const st = await this.fs.getattr(path);
    if ((st.mode & S_ISGID) !== 0) await this.fs.chmod(path, st.mode & 0o7777 & ~S_ISGID, this.caller(h));
  }

  private caller(h: InHeader, umask = 0): Caller {
    return { uid: h.uid, gid: h.gid, pid: h.pid, umask };
  }

  private node(id: number): Node {
    const n = this.nodes.get(id);
    if (n === undefined) throw errno('ESTALE');
    return n;
  }

  private pathOf(n: Node): string {
    const p = this.nodes.path(n);
    if (p === undefined) throw errno('ENOENT');
    return p;
  }

  private childPath(parent: Node, name: string): string {
    if (name === '' || name === '.' || name === '..' || name.includes('/')) throw errno('EINVAL');
    const p = this.nodes.childPath(parent, name);
    if (p === undefined) throw errno('ENOENT');
    return p;
  }

  private trace(op: string, path: string): void {
    this.options.traceOps?.(op, path);
  }

  /**
   * The stat of a node, through the first of its names that still names it. A name that
   * now names another object (a copy-up gave one name of a hard link its own inode) is
   * dropped and the kernel told to look it up again.
   */
  private async statNode(n: Node): Promise<FileStat> {
    const st = await this.statNow(n);
    shown(n, st);
    return st;
  }

  private async statNow(n: Node): Promise<FileStat> {
    if (n === this.nodes.root) {
      const st = await this.fs.getattr('/');
      if (this.nodes.root.ino !== inoKey(st.ino)) this.nodes.setRootIno(st.ino);
      return st;
    }
    for (;;) {
      const path = this.nodes.path(n);
      if (path === undefined) return this.statOpen(n);
      const st = await this.fs.getattr(path);
      if (inoKey(st.ino) === n.ino) return st;
      if (n.linkCount <= 1) {
        this.nodes.rekey(n, st.ino);
        return st;
      }
      const l = n.links[0]!;
      this.nodes.unlinked(l.parent, l.name);
      this.invalEntry(l.parent, l.name);
    }
  }

  /** An object the kernel knows no name of: only its open handles reach it (fstat after
   * unlink; a retired node, whose open files stay on the object they opened). */
  private async statOpen(n: Node): Promise<FileStat> {
    // A retired node shows what it showed: its name may have moved on to a copy (a chmod
    // copied it up) before an open the node could not take retired it, and the kernel's
    // overlayfs shows the copy through the old descriptors too.
    if ((n.retired || n.showsLastStat) && n.lastStat !== undefined) return n.lastStat;
    if (this.fs.fgetattr) {
      // A handle on the object itself before one that still reads the lower file.
      const handles = [...n.openHandles];
      const fh = handles.find((h) => this.fs.lowerFile?.(h) === undefined) ?? handles[0];
      if (fh !== undefined) return this.fs.fgetattr('', fh);
    }
    // Or the opens the device's request loop answered itself (lower-opens.ts).
    const fd = n.lowerOpen !== undefined ? this.device.nativeOpenFd(n.id) : -1;
    if (fd >= 0 && this.fs.fgetattrLowerFd) return this.fs.fgetattrLowerFd(fd, n.lowerOpen!.ino);
    throw errno('ENOENT');
  }

  /** A directory copied up for a change below it, or a file copied up as a new inode (one
   * name of a lower hard link): the kernel's cached attributes of it are stale (nlink above
   * all: a merged directory has 1; the file's st_ino too, which the next GETATTR re-keys).
   * Attributes only (offset -1): no page lock, no directory lock. So are the index's
   * attributes the device answers a lower-only directory's GETATTR with: its registration
   * goes (a CREATE or MKDIR below it ends no other, lower-opens.ts ADDS_NAME). */
  private copiedUp(path: string): void {
    let n: Node | undefined = this.nodes.root;
    for (const name of path.split('/')) {
      if (name === '') continue;
      n = this.nodes.child(n, name);
      if (n === undefined) return; // the kernel has not looked it up: nothing cached
    }
    this.lowerOpens.dropped(n);
    const id = n.id;
    this.notify(() => this.device.notifyInvalInode(id, -1n, 0n));
  }

  private invalEntry(parent: Node, name: string): void {
    this.notify(() => this.device.notifyInvalEntry(parent.id, Buffer.from(name, 'latin1')));
  }

  /**
   * Sends a notification without waiting for it: the kernel may need a lock that the
   * request being served holds. A failure (thrown or rejected) is only reported.
   */
  private notify(send: () => Promise<unknown>): void {
    const report = (err: unknown) => this.options.onUnexpectedError?.(err, 'notify');
    try {
      send().catch(report);
    } catch (err) {
      report(err);
    }
  }

  /** An entry reply for `name` in `parent`, which now exists (lookup, create, link…). */
  private async entry(parent: Node, name: string, path: string): Promise<{ node: Node; st: FileStat; out: Buffer }> {
    const st = await this.fs.getattr(path);
    // As for a LOOKUP: a new object's lack of xattrs is known at once, so the kernel's
    // security.capability probe at its first write (and `ls -l`'s) is answered in C, not
    // by a request through JS per created file.
    const node = this.found(parent, name, path, st, undefined);
    return { node, st, out: entryOut(node.id, st, this.entryValid) };
  }

  private run(h: InHeader, b: Body, op: string): Promise<Reply> | Reply {
    if (h.opcode !== Opcode.INIT && this.init === undefined) throw errno('EIO');
    switch (h.opcode) {
      case Opcode.INIT:
        return this.doInit(b);
      case Opcode.DESTROY:
        return [];
      case Opcode.FORGET:
        this.nodes.forget(h.nodeid, b.struct('fuse_forget_in').num('nlookup'));
        return null;
      case Opcode.BATCH_FORGET: {
        const count = b.struct('fuse_batch_forget_in').u32('count');
        for (let i = 0; i < count && b.remaining >= LAYOUT.fuse_forget_one.size; i++) {
          const one = b.struct('fuse_forget_one');
          this.nodes.forget(one.num('nodeid'), one.num('nlookup'));
        }
        return null;
      }
      case Opcode.INTERRUPT:
        // Handlers cannot be stopped half-way; the interrupted request still gets its reply.
        return null;
      case Opcode.LOOKUP:
        return this.lookup(h, b.name());
      case Opcode.GETATTR:
        return this.getattr(h, b);
      case Opcode.SETATTR:
        return this.setattr(h, b);
      case Opcode.READLINK: {
        const n = this.node(h.nodeid);
        const path = this.pathOf(n);
        this.trace(op, path);
        // Reading a link invalidates its atime in the kernel: the next lstat asks again.
        this.lowerOpens.seenLink(n, () => this.lowerOnly(path, fsConstants.S_IFLNK));
        return this.fs.readlink(path).then((t) => [Buffer.from(t, 'latin1')]);
      }
      case Opcode.SYMLINK: {
        const name = b.name();
        const target = b.name();
        return this.create(h, op, name, (path, who) => this.fs.symlink(target, path, who));
      }
      case Opcode.MKNOD: {
        const s = b.struct('fuse_mknod_in');
        const [mode, rdev, umask] = [s.u32('mode'), s.u32('rdev'), s.u32('umask')];
        return this.create(h, op, b.name(), (path, who) => this.fs.mknod(path, mode, rdev, who), umask);
      }
      case Opcode.MKDIR: {
        const s = b.struct('fuse_mkdir_in');
        const [mode, umask] = [s.u32('mode'), s.u32('umask')];
        return this.create(h, op, b.name(), (path, who) => this.fs.mkdir(path, mode, who), umask);
      }
      case Opcode.UNLINK:
      case Opcode.RMDIR:
        return this.remove(h, op, b.name());
      case Opcode.RENAME: {
        const newdir = b.struct('fuse_rename_in').num('newdir');
        return this.rename(h, newdir, 0, b.name(), b.name());
      }
      case Opcode.RENAME2: {
        const s = b.struct('fuse_rename2_in');
        return this.rename(h, s.num('newdir'), s.u32('flags'), b.name(), b.name());
      }
      case Opcode.LINK: {
        const old = b.struct('fuse_link_in').num('oldnodeid');
        return this.link(h, old, b.name());
      }
      case Opcode.OPEN:
        return this.open(h, b.struct('fuse_open_in').u32('flags'));
      case Opcode.CREATE: {
        const s = b.struct('fuse_create_in');
        return this.createOpen(h, s.u32('flags'), s.u32('mode'), s.u32('umask'), b.name());
      }
      case Opcode.READ:
        return this.read(h, b.struct('fuse_read_in'));
      case Opcode.WRITE: {
        const s = b.struct('fuse_write_in');
        return this.write(h, s.u64('fh'), s.u64('offset'), b.bytes(s.u32('size')));
      }
      case Opcode.FLUSH: {
        const fh = Number(b.struct('fuse_flush_in').u64('fh'));
        // Without a flush op the kernel stops sending FLUSH (ENOSYS is remembered).
        if (!this.fs.flush) throw errno('ENOSYS');
        // An open the request loop answered: a lower file, nothing to flush.
        if (nativeOpenFd(fh) >= 0) return [];
        return this.fs.flush(this.nodes.path(this.node(h.nodeid)) ?? '', fh).then(() => []);
      }
      case Opcode.RELEASE:
        return this.release(h, Number(b.struct('fuse_release_in').u64('fh')));
      case Opcode.FSYNC: {
        const s = b.struct('fuse_fsync_in');
        const path = this.nodes.path(this.node(h.nodeid)) ?? '';
        // An open the request loop answered: a lower file, never written through the mount.
        if (nativeOpenFd(Number(s.u64('fh'))) >= 0) return [];
        return this.fs.fsync(path, (s.u32('fsync_flags') & 1) !== 0, Number(s.u64('fh'))).then(() => []);
      }
      case Opcode.STATFS:
        return this.fs.statfs(this.nodes.path(this.node(h.nodeid)) ?? '/').then((s) => [statfsOut(s)]);
      case Opcode.SETXATTR: {
        const ext = ((this.init?.flags ?? 0n) & InitFlag.SETXATTR_EXT) !== 0n;
        const s = b.struct('fuse_setxattr_in', ext ? LAYOUT.fuse_setxattr_in.size : SETXATTR_COMPAT_SIZE);
        const [size, flags] = [s.u32('size'), s.u32('flags')];
        const killSgid = ext && (s.u32('setxattr_flags') & SetxattrFlag.ACL_KILL_SGID) !== 0;
        const name = b.name();
        const value = Buffer.from(b.bytes(size));
        const n = this.node(h.nodeid);
        const path = this.pathOf(n);
        this.trace(op, path);
        this.xattrChanged(n);
        // Again once done: a getxattr or listing meanwhile may have seen none yet.
        return this.fs.setxattr(path, name, value, flags, this.caller(h)).then(async () => {
          this.xattrChanged(n);
          if (killSgid) await this.killSgid(path, h);
          return [];
        });
      }
      case Opcode.GETXATTR: {
        const size = b.struct('fuse_getxattr_in').u32('size');
        return this.getxattr(h, size, b.name());
      }
      case Opcode.LISTXATTR:
        return this.listxattr(h, b.struct('fuse_getxattr_in').u32('size'));
      case Opcode.REMOVEXATTR: {
        const name = b.name();
        const n = this.node(h.nodeid);
        const path = this.pathOf(n);
        this.trace(op, path);
        this.xattrChanged(n);
        return this.fs.removexattr(path, name, this.caller(h)).then(() => (this.xattrChanged(n), []));
      }
      case Opcode.OPENDIR:
        return this.opendir(h);
      case Opcode.READDIR:
      case Opcode.READDIRPLUS:
        return this.readdir(h, b.struct('fuse_read_in'), h.opcode === Opcode.READDIRPLUS);
      case Opcode.RELEASEDIR:
        this.dirs.release(Number(b.struct('fuse_release_in').u64('fh')));
        return [];
      case Opcode.FSYNCDIR:
        return [];
      default:
        // ACCESS (default_permissions decides), locks (the kernel's own), ioctl, poll,
        // fallocate, lseek, copy_file_range, statx, tmpfile…: the kernel remembers ENOSYS.
        throw errno('ENOSYS');
    }
  }

  private doInit(b: Body): Reply {
    const size = Math.min(b.remaining, LAYOUT.fuse_init_in.size);
    if (size < INIT_IN_MIN_SIZE) throw errno('EINVAL');
    const { choice, reply } = negotiateInit(b.struct('fuse_init_in', size), { passthrough: this.options.passthrough, posixAcls: this.fs.posixAcls === true });
    if (this.init === undefined) {
      this.init = choice;
      this.files = new OpenFiles(this.fs, this.device, { passthrough: choice.passthrough, directData: this.options.directData });
      if (choice.passthrough && this.options.directData && this.options.loopCopyUp !== false) this.copyUpInLoop();
      if (this.options.loopLookups !== false) this.lookupsInLoop(choice);
      for (const w of this.initWaiters.splice(0)) w(choice);
    }
    if (choice.error) throw errno(choice.error);
    return [reply];
  }

  /** Has the request loop copy up what the filesystem lets it (native-notes/engine.md
   * "Copy-up in the request loop"). */
  private copyUpInLoop(): void {
    const target = this.fs.adoptCopyUp && this.fs.forgetAdopted ? this.fs.copyUpTarget?.() : undefined;
    if (target === undefined) return;
    try {
      this.device.configureCopyUp(target, (kind, node, fd, uid, flags) => {
        if (kind === CopiedUp.RELEASED) this.releasedInLoop(fd);
        else this.copiedUpInLoop(node, fd, uid, (flags & CopiedUp.PASSTHROUGH) !== 0, (flags & CopiedUp.UNANSWERED) !== 0);
      });
    } catch (err) {
      this.options.onUnexpectedError?.(err, 'configureCopyUp');
    }
  }

  /** Has the request loop answer LOOKUPs in the directories LowerOpens marks
   * (native-notes/engine.md "LOOKUP in C"), registering what it finds as the LOOKUP handler
   * below would. */
  private lookupsInLoop(choice: InitChoice): void {
    const loop = this.fs.loopLookups?.();
    if (loop === undefined) return;
    const policy = this.files.policy;
    try {
      this.device.configureLookups(
        {
          index: loop.index,
          entryValid: this.entryValid.entry,
          attrValid: this.entryValid.attr,
          negativeValid: this.negativeValid.entry,
          registerFiles: policy.directData,
          cached: !policy.passthrough,
          // As copyUpInLoop decides: the loop copies up only with passthrough.
          copyUp: loop.copyUp && choice.passthrough,
        },
        (records) => this.lookedUpInLoop(records),
      );
      this.lowerOpens.loopLookups = true;
    } catch (err) {
      this.options.onUnexpectedError?.(err, 'configureLookups');
    }
  }

  /** The nodes the request loop's LOOKUPs made or found again (formats/loop-lookups.ts),
   * before any other request: filed as the LOOKUP handler files its own. */
  private lookedUpInLoop(records: Buffer): void {
    for (let at = 0; at + LoopRecord.RECORD_NAME <= records.length; ) {
      const nameLen = records.readUInt32LE(at + LoopRecord.RECORD_NAME_LEN);
      const parentId = records.readDoubleLE(at + LoopRecord.RECORD_PARENT);
      const id = records.readDoubleLE(at + LoopRecord.RECORD_ID);
      const ino = records.readDoubleLE(at + LoopRecord.RECORD_INO);
      const flags = records.readUInt32LE(at + LoopRecord.RECORD_FLAGS);
      const name = records.toString('latin1', at + LoopRecord.RECORD_NAME, at + LoopRecord.RECORD_NAME + nameLen);
      at += LoopRecord.recordSize(nameLen);
      const parent = this.nodes.get(parentId);
      if (parent === undefined) {
        // Cannot be: the loop answers only in directories JS has filed.
        this.options.onUnexpectedError?.(new Error(`the request loop looked up ${name} in node ${parentId}, which JS does not know`), 'lookup');
        continue;
      }
      const node = this.nodes.rememberFromLoop(parent, name, id, ino);
      if (flags & LoopRecord.FLAG_NO_XATTRS) node.noXattrsFromLoop();
      this.lowerOpens.filedFromLoop(node, flags, ino);
    }
  }

  /**
   * The request loop copied the lower file of node `id` up (and opened it as `fd`, unless
   * -1): the union records the copy and adopts the open file, before any other request
   * runs. The node has a name: the loop copies only registered files, whose registration
   * a forget, retire or rename ends first.
   */
  private copiedUpInLoop(id: number, fd: number, uid: number, passthrough: boolean, unanswered: boolean): void {
    const n = this.nodes.get(id);
    const path = n === undefined ? undefined : this.nodes.path(n);
    if (n === undefined || path === undefined) {
      this.options.onUnexpectedError?.(new Error(`the request loop copied up node ${id}, which has no name`), 'copyUp');
      return;
    }
    this.lowerOpens.copiedUp(n);
    const fh = fd >= 0 ? NATIVE_OPEN + fd : -1;
    try {
      this.fs.adoptCopyUp!(path, fd, fh, uid);
    } catch (err) {
      // Cannot be (the loop copied a registered lower file, which resolves): reported, the
      // handle left to the kernel's RELEASE.
      this.options.onUnexpectedError?.(err, 'copyUp');
      return;
    }
    if (fd < 0) return;
    this.files.adopted(n, fh, fd, passthrough);
    if (unanswered) {
      this.files.released(fh);
      this.fs.release(path, fh).catch((err: unknown) => this.options.onUnexpectedError?.(err, 'release'));
    }
  }

  /** The request loop answered the RELEASE of the handle of such a copy-up (NATIVE_OPEN +
   * `fd`), closed the fd and dropped its backing reference: JS only forgets it. */
  private releasedInLoop(fd: number): void {
    const fh = NATIVE_OPEN + fd;
    this.files.forget(fh);
    this.fs.forgetAdopted!(fh);
  }

  /**
   * Synchronous when the filesystem can answer at once (PathFilesystem.lookupSync: the
   * union's lower-only paths and misses): no promise, no thrown ENOENT, no Buffer — a cold
   * `stat` of every path of an image is one of these per component (native-notes/engine.md).
   */
  private lookup(h: InHeader, name: string): Promise<Reply> | Reply {
    const parent = this.node(h.nodeid);
    const path = this.childPath(parent, name);
    this.trace('lookup', path);
    const known = this.fs.lookupSync?.(path);
    this.lowerOpens.lookedUpIn(parent, this.nodes);
    if (typeof known === 'number') return this.negative(known);
    if (known !== undefined) {
      const node = this.found(parent, name, path, known.stat, known.noXattrs);
      if (known.lowerFile !== undefined) this.lowerOpens.lookedUp(node, known.lowerFile, this.files.policy);
      else if (known.lowerDir !== undefined && node.lookups === 1) this.lowerOpens.lookedUpDir(node, known.lowerDir, known.lowerDir === path);
      writeEntry(this.entryScratch, 0, node.id, known.stat, this.entryValid);
      return [this.entryScratch];
    }
    return this.fs.getattr(path).then(
      (st) => [entryOut(this.found(parent, name, path, st, undefined).id, st, this.entryValid)],
      (err: unknown) => {
        const errno = toNegativeErrno(err);
        if (errno === -Errno.ENOENT) return this.negative(errno);
        throw err;
      },
    );
  }

  /** A LOOKUP that found nothing: a cached negative entry for ENOENT (the kernel does not
   * ask again for this name), else the error. */
  private negative(errno: number): Reply {
    return errno === -Errno.ENOENT && this.negativeValid.entry > 0 ? [this.negativeEntry] : errno;
  }

  /** `name` in `parent` is object `st`: its node, one more reference, and what is known
   * about its xattrs (`noXattrs` undefined: ask the filesystem). */
  private found(parent: Node, name: string, path: string, st: FileStat, noXattrs: boolean | undefined): Node {
    const node = this.nodes.remember(parent, name, st);
    shown(node, st);
    if (!node.noXattrs) {
      if (noXattrs === undefined) this.learnNoXattrs(node, path);
      else if (noXattrs) node.noXattrs = true;
    }
    return node;
  }

  private async getattr(h: InHeader, b: Body): Promise<Reply> {
    const s = b.struct('fuse_getattr_in');
    const n = this.node(h.nodeid);
    this.trace('getattr', this.nodes.path(n) ?? '');
    // By name while the node has one (a descriptor then sees a copy-up as the kernel's
    // overlayfs shows it); by its open handles once it has none (fstat after unlink).
    const st = await this.statNode(n);
    if ((st.mode & fsConstants.S_IFMT) === fsConstants.S_IFLNK) {
      // A link read before (its READLINK registered it in another epoch): the loop's next time.
      const path = this.nodes.path(n);
      if (path !== undefined) this.lowerOpens.seenLink(n, () => this.lowerOnly(path, fsConstants.S_IFLNK));
    } else if ((st.mode & fsConstants.S_IFMT) === fsConstants.S_IFDIR && n !== this.nodes.root && this.fs.upperDirStat) {
      // The kernel asks again after every create inside: the loop's from now on.
      const path = this.nodes.path(n);
      if (path !== undefined) this.lowerOpens.seenDir(n, () => this.fs.upperDirStat!(path));
    }
    return [attrOut(st, this.options.attrSeconds)];
  }

  private async setattr(h: InHeader, b: Body): Promise<Reply> {
    const s = b.struct('fuse_setattr_in');
    const valid = s.u32('valid');
    const n = this.node(h.nodeid);
    const fh = Number(s.u64('fh'));
    const withFh = (valid & FAttr.FH) !== 0 && n.openHandles.has(fh);
    // A file whose names are all gone is still open: only its handle reaches it (ftruncate).
    const path = withFh && (valid & ~(FAttr.FH | FAttr.SIZE | LOCK_BITS)) === 0 ? this.nodes.path(n) ?? '' : this.pathOf(n);
    this.trace('setattr', path);
    const who = this.caller(h);
    if (valid & FAttr.MODE) await this.fs.chmod(path, s.u32('mode'), who);
    if (valid & (FAttr.UID | FAttr.GID)) {
      // chown(2)'s "leave unchanged" is -1, which the union takes as 0xffffffff.
      await this.fs.chown(path, valid & FAttr.UID ? s.u32('uid') : 0xffffffff, valid & FAttr.GID ? s.u32('gid') : 0xffffffff, who);
    }
    if (valid & FAttr.SIZE) {
      const size = Number(s.u64('size'));
      if (withFh) await this.fs.ftruncate(path, fh, size);
      else await this.fs.truncate(path, size, who);
    }
    if (valid & (FAttr.ATIME | FAttr.MTIME)) {
      const time = (which: 'atime' | 'mtime', bit: number): TimeUpdate => {
        if ((valid & bit) === 0) return 'omit';
        if (valid & UTIME_NOW_MASK[which]) return 'now';
        return { sec: Number(s.u64(which)), nsec: s.u32(`${which}nsec`) };
      };
      await this.fs.utimens(path, time('atime', FAttr.ATIME), time('mtime', FAttr.MTIME), who);
    }
    const st = await this.statNode(n);
    return [attrOut(st, this.options.attrSeconds)];
  }

  private async create(h: InHeader, op: string, name: string, make: (path: string, who: Caller) => Promise<void>, umask = 0): Promise<Reply> {
    const parent = this.node(h.nodeid);
    const path = this.childPath(parent, name);
    this.trace(op, path);
    await make(path, this.caller(h, umask));
    return [(await this.entry(parent, name, path)).out];
  }

  private async remove(h: InHeader, op: string, name: string): Promise<Reply> {
    const parent = this.node(h.nodeid);
    const path = this.childPath(parent, name);
    this.trace(op, path);
    const who = this.caller(h);
    const copy = op === 'unlink' ? await this.openCopyBeforeUnlink(parent, name, path) : undefined;
    await (op === 'rmdir' ? this.fs.rmdir(path, who) : this.fs.unlink(path, who));
    this.nodes.unlinked(parent, name);
    if (copy) this.showUnlinkedCopy(copy);
    return [];
  }

  /** From now on `copy.node` shows the copy as it was, one link fewer (see openCopyBeforeUnlink). */
  private showUnlinkedCopy(copy: { node: Node; st: FileStat }): void {
    copy.node.lastStat = { ...copy.st, nlink: Math.max(0, copy.st.nlink - 1) };
    copy.node.showsLastStat = true;
  }

  /**
   * The node `name` names and its attributes, when its last name is about to go (unlink, or
   * a rename over it) while the kernel holds it open only through the device's read-only
   * opens of the lower file (lower-opens.ts) or handles still reading the lower file, and
   * the union has since copied it up (a chmod, say). Once unlinked, those descriptors must
   * show the copy as it was, one link fewer (the kernel's overlayfs keeps the unlinked upper
   * file behind its inode); the lower file they read would show the attributes from before
   * the copy-up.
   * Undefined in every other case: a lower-only file is what those opens show anyway, and
   * a handle on the copy reaches it itself.
   */
  private async openCopyBeforeUnlink(parent: Node, name: string, path: string): Promise<{ node: Node; st: FileStat } | undefined> {
    const node = this.nodes.child(parent, name);
    if (node === undefined || node.linkCount !== 1) return undefined;
    const handles = [...node.openHandles];
    if (handles.length === 0 && node.lowerOpen === undefined) return undefined;
    if (handles.some((fh) => this.fs.lowerFile?.(fh) === undefined)) return undefined;
    if (this.lowerOnly(path, fsConstants.S_IFREG) !== undefined) return undefined;
    const st = await this.fs.getattr(path).catch(() => undefined);
    return st !== undefined && inoKey(st.ino) === node.ino ? { node, st } : undefined;
  }

  private async rename(h: InHeader, newdir: number, flags: number, oldName: string, newName: string): Promise<Reply> {
    const from = this.node(h.nodeid);
    const to = this.node(newdir);
    const oldPath = this.childPath(from, oldName);
    const newPath = this.childPath(to, newName);
    this.trace('rename', oldPath);
    const exchange = (flags & RenameFlags.EXCHANGE) !== 0;
    // A rename over another object is that object's unlink (an exchange keeps both named;
    // a rename onto another name of the same object changes nothing).
    const moving = this.nodes.child(from, oldName);
    this.lowerOpens.renaming(this.noDirectoryAt(oldPath, newPath) ? [moving, this.nodes.child(to, newName)] : null);
    const replaced = exchange || moving === this.nodes.child(to, newName) ? undefined : await this.openCopyBeforeUnlink(to, newName, newPath);
    await this.fs.rename(oldPath, newPath, flags, this.caller(h));
    this.nodes.renamed(from, oldName, to, newName, exchange);
    if (replaced) this.showUnlinkedCopy(replaced);
    return [];
  }

  /** Whether none of `paths` names a directory, as far as the filesystem can tell at once
   * (a missing name is none; an answer only getattr could give counts as one). */
  private noDirectoryAt(...paths: string[]): boolean {
    return paths.every((p) => {
      const kind = this.fs.kindSync?.(p);
      return kind === 'other' || kind === 'missing';
    });
  }

  private async link(h: InHeader, oldId: number, newName: string): Promise<Reply> {
    const old = this.node(oldId);
    const parent = this.node(h.nodeid);
    const oldPath = this.pathOf(old);
    const newPath = this.childPath(parent, newName);
    this.trace('link', newPath);
    this.xattrChanged(old);
    this.nodes.file(old);
    await this.fs.link(oldPath, newPath, this.caller(h));
    this.xattrChanged(old);
    // Linking may have copied the old name up as an object of its own (a lower hard link):
    // its node takes the new identity first, so the new name joins it.
    await this.statNode(old).catch(() => undefined);
    return [(await this.entry(parent, newName, newPath)).out];
  }

  private async open(h: InHeader, flags: number): Promise<Reply> {
    const n = this.node(h.nodeid);
    const path = this.pathOf(n);
    this.trace('open', path);
    const mark = this.lowerOpens.mark();
    const fh = await this.fs.open(path, flags, this.caller(h));
    const [openFlags, backingId] = this.openedOrRetire(n, path, fh, flags);
    // A lower file's open by passthrough, or one that kept the page cache where there is no
    // passthrough: the device answers the next ones itself — and this one, so that its
    // READs and RELEASE do not come back here (the handle just made goes again).
    const cached = (openFlags & FOpen.KEEP_CACHE) !== 0 && this.files.policy.directData;
    if ((openFlags & FOpen.PASSTHROUGH || cached) && this.lowerOpens.opened(n, fh, flags, mark, cached) && this.device.answerOpen(h.unique, n.id, flags)) {
      this.release(h, fh);
      return null;
    }
    return [openOut(fh, openFlags, backingId)];
  }

  /**
   * open_out's flags and backing id for a new handle of `n`. When `n` cannot take it (its
   * passthrough opens pin a backing file this open does not share: the open copied the
   * file up), the handle is released, `n` keeps only its open files, and ESTALE makes the
   * VFS repeat the open with a fresh lookup, which gives the name a new node.
   */
  private openedOrRetire(n: Node, path: string, fh: number, flags: number): [number, number] {
    const r = this.files.opened(n, fh, flags);
    if (r !== null) return [r.openFlags, r.backingId];
    this.fs.release(path, fh).catch((err: unknown) => this.options.onUnexpectedError?.(err, 'release'));
    this.nodes.retire(n);
    throw errno('ESTALE');
  }

  private async createOpen(h: InHeader, flags: number, mode: number, umask: number, name: string): Promise<Reply> {
    const parent = this.node(h.nodeid);
    const path = this.childPath(parent, name);
    this.trace('create', path);
    const fh = await this.fs.create(path, mode, flags, this.caller(h, umask));
    let e;
    try {
      e = await this.entry(parent, name, path);
    } catch (err) {
      await this.fs.release(path, fh).catch(() => undefined);
      throw err;
    }
    try {
      return [e.out, openOut(fh, ...this.openedOrRetire(e.node, path, fh, flags))];
    } catch (err) {
      // The entry never reached the kernel: take back its reference.
      this.nodes.forget(e.node.id, 1);
      throw err;
    }
  }

  private async read(h: InHeader, s: ReturnType<Body['struct']>): Promise<Reply> {
    const fh = Number(s.u64('fh'));
    const path = this.nodes.path(this.node(h.nodeid)) ?? '';
    this.trace('read', path);
    const data = await this.files.read(h.unique, path, fh, s.u64('offset'), Math.min(s.u32('size'), 1 << 20));
    return data === null ? null : [data];
  }

  private write(h: InHeader, fh: bigint, offset: bigint, data: Buffer): Promise<Reply> | Reply {
    const node = this.node(h.nodeid);
    const path = () => this.nodes.path(node) ?? '';
    if (this.options.traceOps) this.trace('write', path());
    const n = this.files.write(h.unique, path, Number(fh), data, offset);
    if (n === null) return null;
    return typeof n === 'number' ? [writeOut(n)] : n.then((m) => [writeOut(m)]);
  }

  private release(h: InHeader, fh: number): Reply {
    const path = this.nodes.path(this.node(h.nodeid)) ?? '';
    this.trace('release', path);
    // close(2) has returned by the time RELEASE arrives and nobody sees its answer:
    // answer at once, release afterwards.
    this.files.released(fh);
    this.fs.release(path, fh).catch((err: unknown) => this.options.onUnexpectedError?.(err, 'release'));
    return [];
  }

  private getxattr(h: InHeader, size: number, name: string): Promise<Reply> | Reply {
    const n = this.node(h.nodeid);
    // Known: the device's request loop answers these itself; one still in flight lands here.
    if (n.noXattrs) return -Errno.ENODATA;
    const path = this.pathOf(n);
    this.trace('getxattr', path);
    if (this.learnNoXattrs(n, path)) return -Errno.ENODATA;
    return this.fs.getxattr(path, name, this.caller(h)).then((v) => (v === null ? -Errno.ENODATA : sized(v, size)));
  }

  private listxattr(h: InHeader, size: number): Promise<Reply> | Reply {
    const n = this.node(h.nodeid);
    if (n.noXattrs) return sized(Buffer.alloc(0), size);
    const path = this.pathOf(n);
    this.trace('listxattr', path);
    if (this.learnNoXattrs(n, path)) return sized(Buffer.alloc(0), size);
    return this.fs.listxattr(path, this.caller(h)).then((names) => sized(Buffer.from(names.map((x) => x + '\0').join(''), 'latin1'), size));
  }

  private xattrChanged(n: Node): void {
    n.noXattrs = false;
    this.xattrEpoch++;
  }

  /** Whether the object at `path` (node `n`) has no xattr at all; a yes is kept on the
   * node (and in the device), so `ls -l`'s two getxattr per file reach JS at most once. */
  private learnNoXattrs(n: Node, path: string): boolean {
    if (!this.fs.hasNoXattrs?.(path)) return false;
    n.noXattrs = true;
    return true;
  }

  /** The stat of `path` if only read-only layers hold it (constant) and it is of `type`. */
  private lowerOnly(path: string, type: number): FileStat | undefined {
    const known = this.fs.lookupSync?.(path);
    return typeof known === 'object' && (known.stat.mode & fsConstants.S_IFMT) === type ? known.stat : undefined;
  }

  private opendir(h: InHeader): Reply {
    const n = this.node(h.nodeid);
    const path = this.pathOf(n);
    this.trace('opendir', path);
    const fh = this.dirs.open(path);
    // Its next OPENDIRs (and RELEASEDIRs, and a lower-only directory's GETATTRs) are
    // answered by the device's request loop until something changes (lower-opens.ts).
    this.lowerOpens.openedDir(n, () => this.lowerOnly(path, fsConstants.S_IFDIR));
    // The kernel keeps the listing in the directory's page cache and serves later
    // opendir/readdir from it. Every change of a listing is a request to this mount, after
    // which the kernel drops that cache itself (fuse_dir_changed bumps the directory's
    // i_version, checked at offset 0): warm `find` reads no dirents from the engine.
    return [openOut(fh, FOpen.CACHE_DIR | FOpen.KEEP_CACHE, 0)];
  }

  private async readdir(h: InHeader, s: ReturnType<Body['struct']>, plus: boolean): Promise<Reply> {
    const dir = this.node(h.nodeid);
    const fh = Number(s.u64('fh'));
    const offset = Number(s.u64('offset'));
    const size = s.u32('size');
    let open = this.dirs.get(fh);
    if (open === undefined && isNativeDir(fh)) {
      // Opened by the device's request loop (a registered directory): from now on JS's.
      const path = this.nodes.path(dir);
      if (path === undefined) throw errno('ENOENT');
      this.device.adoptDirHandle(fh);
      open = this.dirs.adopt(fh, path);
    }
    if (open === undefined) throw errno('EBADF');
    this.trace(plus ? 'readdirplus' : 'readdir', open.path);
    if (this.dirs.wantsRefresh(fh, offset)) {
      // By the directory's name now (it may have been renamed since OPENDIR).
      const path = this.nodes.path(dir) ?? open.path;
      const epoch = this.xattrEpoch;
      this.dirs.refresh(fh, await this.fs.readdir(path), epoch);
    }
    const parent = dir.parent;
    const dots: [Ino, Ino] = [inoOf(dir), parent ? inoOf(parent) : 0];
    if (!plus) return [this.dirs.pack(fh, offset, size, dots)];
    this.lowerOpens.listing(dir);
    // The listing's "no xattrs" facts hold unless an xattr changed since it was taken.
    const trustNoXattrs = open.xattrEpoch === this.xattrEpoch;
    const entryOf = (e: DirEntry, st: FileStat): PlusEntry => {
      const node = this.nodes.remember(dir, e.name, st);
      shown(node, st);
      // Learnt now, `ls -l`'s two getxattr per entry never reach JS.
      if (e.noXattrs === true && trustNoXattrs) node.noXattrs = true;
      return { nodeid: node.id, stat: st };
    };
    const resolve = (e: DirEntry): PlusEntry | null | Promise<PlusEntry | null> => {
      const st = e.stat; // once: it may be made on each ask
      if (st !== undefined) return entryOf(e, st);
      const p = this.nodes.childPath(dir, e.name);
      if (p === undefined) return null;
      return this.fs.getattr(p).then((st) => entryOf(e, st), () => null);
    };
    return [await this.dirs.packPlus(fh, offset, size, dots, resolve, this.entryValid)];
  }
}

/** Opcodes the kernel expects no reply to. */
const NO_REPLY = new Set<number>([Opcode.FORGET, Opcode.BATCH_FORGET, Opcode.INTERRUPT, Opcode.NOTIFY_REPLY]);

/** A failure with an errno name, as node:fs reports one (the errno boundary maps it). */
function errno(name: keyof typeof osErrno): Error & { errno: number; code: string } {
  return Object.assign(new Error(name), { errno: -osErrno[name], code: name });
}

/** getxattr/listxattr's size protocol: 0 asks for the size, too small is ERANGE. */
function sized(v: Buffer, size: number): Buffer[] {
  if (size === 0) return [getxattrOut(v.length)];
  if (v.length > size) throw errno('ERANGE');
  return [v];
}

/**
 * Keeps `st` as what the kernel was last told of `n`, while only it can be retired: a node
 * with open files (its own handles, or opens the device answered: lowerOpen). A retired
 * node keeps showing it (statOpen); the other nodes of a walk keep no stat.
 */
function shown(n: Node, st: FileStat): void {
  if (n.openHandles.size > 0 || n.lowerOpen !== undefined) n.lastStat = st;
  else if (n.lastStat !== undefined) n.lastStat = undefined;
}

function inoOf(n: Node): Ino {
  return typeof n.ino === 'number' && n.ino < 0 ? 0 : n.ino;
}
