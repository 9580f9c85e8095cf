/**
 * The dispatcher on request frames built here, serving a real union: INIT negotiation,
 * one node per hard-linked object, lookup counts and FORGET, READDIRPLUS references, and
 * a fuzz: random and truncated frames never throw, never reject unhandled, and every frame
 * with a whole header is answered exactly once (or not at all for FORGET-like opcodes).
 * The device is a recorder of replies: the real device has its own test
 * (test/mount/engine-device.test.ts) and the real mount test/mount/engine.test.ts.
 */
import { constants as C, fstatSync } from 'node:fs';
import { join } from 'node:path';
import * as fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import type { FuseDevice } from '../../src/engine/device.js';
import { Dispatcher } from '../../src/engine/dispatcher.js';
import { NATIVE_DIR } from '../../src/engine/formats/engine-handles.js';
import { FAttr, InitFlag, LAYOUT, Opcode } from '../../src/engine/wire.js';
import { UnionFilesystem } from '../../src/union/union-fs.js';
import { makeLayers, type LayerSpec, type TestLayers } from '../helpers/layers.js';

interface Sent {
  unique: bigint;
  error: number;
  payload: Buffer;
}

class Recorder implements FuseDevice {
  readonly fd = -1;
  readonly mountpoint = '/nowhere';
  readonly closed = new Promise<void>(() => undefined);
  sent: Sent[] = [];
  backings = 0;
  inval: string[] = [];
  start(): void {}
  reply(unique: bigint, error: number, ...payload: Uint8Array[]): void {
    this.sent.push({ unique, error, payload: Buffer.concat(payload) });
  }
  replyFromFd(unique: bigint, _fd: number, _offset: bigint, size: number): void {
    this.sent.push({ unique, error: 0, payload: Buffer.alloc(Math.min(size, 1)) });
  }
  writeToFd(unique: bigint, _fd: number, _offset: bigint, data: Uint8Array): void {
    this.sent.push({ unique, error: 0, payload: Buffer.from(data) });
  }
  backingOpen(): number {
    return ++this.backings;
  }
  backingClose(): void {}
  /** The device's per-node backing table, modelled: id, file identity, references. */
  readonly nodeBackings = new Map<bigint, { id: number; key: string; writable: boolean; refs: number }>();
  backingShare(nodeid: number | bigint, fd: number, write: boolean): number | 'none' | 'busy' {
    const b = this.nodeBackings.get(BigInt(nodeid));
    if (b === undefined) return 'none';
    if (fd < 0 || (write && !b.writable) || b.key !== fileKey(fd)) return 'busy';
    b.refs++;
    return b.id;
  }
  backingAdopt(nodeid: number | bigint, fd: number, writable: boolean): number {
    const id = this.backingOpen();
    this.nodeBackings.set(BigInt(nodeid), { id, key: fileKey(fd), writable, refs: 1 });
    return id;
  }
  backingRelease(nodeid: number | bigint): void {
    const b = this.nodeBackings.get(BigInt(nodeid));
    if (b !== undefined && --b.refs === 0) this.nodeBackings.delete(BigInt(nodeid));
  }
  readonly lowerOpens = new Map<bigint, string>();
  /** Of those, the ones registered to be answered without passthrough. */
  readonly cachedOpens = new Set<bigint>();
  registerLowerOpen(nodeid: number | bigint, path: Uint8Array | null, _size: number, _attr: Uint8Array | null, cached: boolean): void {
    this.cachedOpens.delete(BigInt(nodeid));
    if (path === null) {
      this.lowerOpens.delete(BigInt(nodeid));
      this.dirOpens.delete(BigInt(nodeid));
      this.upperDirs.delete(BigInt(nodeid));
      return;
    }
    this.lowerOpens.set(BigInt(nodeid), Buffer.from(path).toString('latin1'));
    if (cached) this.cachedOpens.add(BigInt(nodeid));
  }
  /** Registered directories and symlinks: whether their GETATTR was given, and OPENDIR. */
  readonly dirOpens = new Map<bigint, { attr: boolean; opendir: boolean }>();
  registerAttr(nodeid: number | bigint, attr: Uint8Array | null, opendir: boolean): void {
    this.dirOpens.set(BigInt(nodeid), { attr: attr !== null, opendir });
  }
  /** Registered writable-layer directories: backing path, st_ino shown, one link. */
  readonly upperDirs = new Map<bigint, { path: string; ino: number; nlinkOne: boolean }>();
  registerUpperDir(nodeid: number | bigint, path: Uint8Array, ino: number, nlinkOne: boolean): void {
    this.upperDirs.set(BigInt(nodeid), { path: Buffer.from(path).toString('latin1'), ino, nlinkOne });
  }
  changing = false;
  setChanging(on: boolean): void {
    this.changing = on;
  }
  configureCopyUp(): void {}
  readonly adoptedDirs = new Set<number>();
  adoptDirHandle(fh: number): void {
    this.adoptedDirs.add(fh);
  }
  lowerOpensEpoch(): void {
    this.lowerOpens.clear();
    this.dirOpens.clear();
    this.upperDirs.clear();
  }
  nativeOpenFd(): number {
    return -1;
  }
  answerOpen(): boolean {
    return false;
  }
  noXattrs = new Set<bigint>();
  setNoXattrs(nodeid: number | bigint, on: boolean): void {
    if (on) this.noXattrs.add(BigInt(nodeid));
    else this.noXattrs.delete(BigInt(nodeid));
  }
  nativeAnswers(): { GETXATTR: number; LISTXATTR: number; 'copy-up': number; LOOKUP: number } {
    return { GETXATTR: 0, LISTXATTR: 0, 'copy-up': 0, LOOKUP: 0 };
  }
  // No request loop here: marked directories' LOOKUPs still reach the dispatcher.
  marks = new Set<number>();
  configureLookups(): void {}
  markLookups(nodeid: number): void {
    this.marks.add(nodeid);
  }
  unmarkLookups(nodeid: number): void {
    this.marks.delete(nodeid);
  }
  lookupChild(): void {}
  lookupForget(): void {}
  async notifyInvalEntry(parent: number | bigint, name: Uint8Array): Promise<void> {
    this.inval.push(`${parent}/${Buffer.from(name).toString('latin1')}`);
  }
  async notifyInvalInode(): Promise<void> {}
  async unmount(): Promise<void> {}
}

function fileKey(fd: number): string {
  const st = fstatSync(fd);
  return `${st.dev}:${st.ino}`;
}

let layers: TestLayers | undefined;
afterEach(async () => {
  await layers?.cleanup();
  layers = undefined;
});

let nextUnique = 1n;
function frame(opcode: number, nodeid: bigint, ...body: Buffer[]): Buffer {
  const b = Buffer.concat(body);
  const h = Buffer.alloc(LAYOUT.fuse_in_header.size);
  h.writeUInt32LE(h.length + b.length, 0);
  h.writeUInt32LE(opcode, 4);
  h.writeBigUInt64LE(nextUnique++, 8);
  h.writeBigUInt64LE(nodeid, 16);
  return Buffer.concat([h, b]);
}
const z = (s: string) => Buffer.from(s + '\0', 'latin1');
const u32s = (...v: number[]) => Buffer.from(new Uint32Array(v).buffer);
const u64 = (v: bigint) => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(v);
  return b;
};

async function setup(specs: LayerSpec[], passthrough = true): Promise<{ d: Dispatcher; dev: Recorder; call: (f: Buffer) => Promise<Sent> }> {
  layers = await makeLayers(specs);
  const fs = await UnionFilesystem.open({ lowerDirs: layers.lowers, upperDir: layers.upper, workDir: layers.work });
  const dev = new Recorder();
  const d = new Dispatcher(fs, dev, { entrySeconds: 3600, attrSeconds: 3600, negativeSeconds: 3600, passthrough, directData: true });
  const call = async (f: Buffer): Promise<Sent> => {
    const unique = f.readBigUInt64LE(8);
    d.handle(f);
    for (let i = 0; i < 500; i++) {
      const s = dev.sent.find((x) => x.unique === unique);
      if (s) return s;
      await new Promise((r) => setTimeout(r, 2));
    }
    throw new Error(`no reply to ${unique}`);
  };
  // The kernel's INIT: 7.45, everything offered.
  const all = (1n << 63n) - 1n;
  const init = await call(frame(Opcode.INIT, 0n, u32s(7, 45, 131072, Number(all & 0xffffffffn), Number(all >> 32n)), Buffer.alloc(44)));
  expect(init.error).toBe(0);
  return { d, dev, call };
}

/** fuse_setattr_in that sets the mode only. */
function setattrMode(mode: number): Buffer {
  const b = Buffer.alloc(LAYOUT.fuse_setattr_in.size);
  b.writeUInt32LE(FAttr.MODE, LAYOUT.fuse_setattr_in.fields.valid);
  b.writeUInt32LE(mode, LAYOUT.fuse_setattr_in.fields.mode);
  return b;
}

const nodeidOf = (s: Sent) => s.payload.readBigUInt64LE(0);
const inoOfEntry = (s: Sent) => s.payload.readBigUInt64LE(40);
const nlinkOfEntry = (s: Sent) => s.payload.readUInt32LE(40 + 64);

describe('engine dispatcher', () => {
  it('negotiates 7.40 with 1 MiB requests, readdirplus and passthrough', async () => {
    const { dev } = await setup([{ a: 'x' }]);
    const out = dev.sent[0]!.payload;
    expect(out.length).toBe(64);
    expect([out.readUInt32LE(0), out.readUInt32LE(4)]).toEqual([7, 40]);
    const flags = BigInt(out.readUInt32LE(12)) | (BigInt(out.readUInt32LE(32)) << 32n);
    for (const f of [InitFlag.MAX_PAGES, InitFlag.DO_READDIRPLUS, InitFlag.PARALLEL_DIROPS, InitFlag.CACHE_SYMLINKS, InitFlag.PASSTHROUGH, InitFlag.ATOMIC_O_TRUNC]) {
      expect(flags & f).toBe(f);
    }
    expect(flags & InitFlag.WRITEBACK_CACHE).toBe(0n);
    expect(out.readUInt32LE(20)).toBe(1 << 20); // max_write
    expect(out.readUInt16LE(28)).toBe(256); // max_pages
    expect(out.readUInt32LE(36)).toBe(1); // max_stack_depth
  });

  it('gives every name of a hard-linked object one node, counts lookups, forgets', async () => {
    const { d, call } = await setup([{ 'dir/': '', 'dir/f': 'data' }]);
    const dir = await call(frame(Opcode.LOOKUP, 1n, z('dir')));
    const dirId = nodeidOf(dir);
    const f = await call(frame(Opcode.LOOKUP, dirId, z('f')));
    const link = await call(frame(Opcode.LINK, 1n, u64(nodeidOf(f)), z('g')));
    expect(link.error).toBe(0);
    expect(nodeidOf(link)).toBe(nodeidOf(f));
    expect(nlinkOfEntry(link)).toBe(2);
    const again = await call(frame(Opcode.LOOKUP, 1n, z('g')));
    expect([nodeidOf(again), inoOfEntry(again)]).toEqual([nodeidOf(f), inoOfEntry(f)]);
    const node = d.nodes.get(Number(nodeidOf(f)))!;
    expect(node.lookups).toBe(3);
    // Unlinking one name keeps the node reachable through the other.
    expect((await call(frame(Opcode.UNLINK, dirId, z('f')))).error).toBe(0);
    expect(d.nodes.path(node)).toBe('/g');
    const attr = await call(frame(Opcode.GETATTR, nodeidOf(f), Buffer.alloc(16)));
    expect(attr.payload.readUInt32LE(16 + 64)).toBe(1);
    // FORGET and BATCH_FORGET are not answered and drop the node at zero.
    const before = d.nodes.size;
    d.handle(frame(Opcode.FORGET, nodeidOf(f), u64(1n)));
    d.handle(frame(Opcode.BATCH_FORGET, 0n, u32s(1, 0), u64(nodeidOf(f)), u64(2n)));
    expect(d.nodes.get(Number(nodeidOf(f)))).toBeUndefined();
    expect(d.nodes.size).toBe(before - 1);
  });

  it('answers a missing name with a cached negative entry and unknown opcodes ENOSYS', async () => {
    const { call } = await setup([{ a: 'x' }]);
    const miss = await call(frame(Opcode.LOOKUP, 1n, z('nope')));
    expect([miss.error, nodeidOf(miss), miss.payload.readBigUInt64LE(16)]).toEqual([0, 0n, 3600n]);
    expect((await call(frame(999, 1n))).error).toBe(-38);
    expect((await call(frame(Opcode.LOOKUP, 1n, Buffer.from('no-nul')))).error).toBe(-22);
    expect((await call(frame(Opcode.GETATTR, 12345n, Buffer.alloc(16)))).error).toBe(-116); // ESTALE
  });

  it('registers a lower file at its LOOKUP, to be answered without passthrough where the mount has none', async () => {
    for (const passthrough of [true, false]) {
      const { dev, call } = await setup([{ a: 'x', 'd/': '' }], passthrough);
      const a = await call(frame(Opcode.LOOKUP, 1n, z('a')));
      expect(dev.lowerOpens.get(nodeidOf(a))).toBe(join(layers!.lowers[0]!, 'a'));
      expect(dev.cachedOpens.has(nodeidOf(a))).toBe(!passthrough);
      // Not a regular file: nothing to open.
      const d = await call(frame(Opcode.LOOKUP, 1n, z('d')));
      expect(dev.lowerOpens.has(nodeidOf(d))).toBe(false);
      // A copied-up file is the writable layer's: a change ends registrations, and its
      // next LOOKUP registers nothing.
      expect((await call(frame(Opcode.SETATTR, nodeidOf(a), setattrMode(0o600)))).error).toBe(0);
      expect(dev.lowerOpens.size).toBe(0);
      expect((await call(frame(Opcode.LOOKUP, 1n, z('a')))).error).toBe(0);
      expect(dev.lowerOpens.size).toBe(0);
      await layers!.cleanup();
      layers = undefined;
    }
  });

  it('opens with passthrough, one backing per node, and counts READDIRPLUS references', async () => {
    const { d, dev, call } = await setup([{ a: 'x', b: 'y' }]);
    const a = await call(frame(Opcode.LOOKUP, 1n, z('a')));
    const o1 = await call(frame(Opcode.OPEN, nodeidOf(a), u32s(C.O_RDONLY, 0)));
    const o2 = await call(frame(Opcode.OPEN, nodeidOf(a), u32s(C.O_RDONLY, 0)));
    for (const o of [o1, o2]) expect([o.payload.readUInt32LE(8) & 128, o.payload.readInt32LE(12)]).toEqual([128, 1]);
    expect(dev.backings).toBe(1);
    // The device may answer the node's next read-only opens itself: its lower file is known.
    expect(dev.lowerOpens.get(nodeidOf(a))).toBe(join(layers!.lowers[0]!, 'a'));
    // A writer gets the upper copy, another backing file, which the kernel refuses on an
    // inode with passthrough opens: ESTALE (the VFS looks the name up again), and the name
    // gets a new node whose open shares nothing with the old one.
    const w = await call(frame(Opcode.OPEN, nodeidOf(a), u32s(C.O_RDWR, 0)));
    expect(w.error).toBe(-116);
    expect(d.nodes.get(Number(nodeidOf(a)))!.retired).toBe(true);
    // A request that may copy up ended every registration before it ran.
    expect(dev.lowerOpens.size).toBe(0);
    const a2 = await call(frame(Opcode.LOOKUP, 1n, z('a')));
    expect(nodeidOf(a2)).not.toBe(nodeidOf(a));
    const w2 = await call(frame(Opcode.OPEN, nodeidOf(a2), u32s(C.O_RDWR, 0)));
    expect([w2.payload.readUInt32LE(8) & 129, w2.payload.readInt32LE(12)]).toEqual([128, 2]);
    const od = await call(frame(Opcode.OPENDIR, 1n, u32s(0, 0)));
    const fh = od.payload.readBigUInt64LE(0);
    const plus = await call(frame(Opcode.READDIRPLUS, 1n, u64(fh), u64(0n), u32s(65536, 0), Buffer.alloc(16)));
    expect(plus.error).toBe(0);
    // '.', '..', a, b: the new node of a counted twice now.
    expect(d.nodes.get(Number(nodeidOf(a2)))!.lookups).toBe(2);
    let off = 0;
    const names: string[] = [];
    while (off < plus.payload.length) {
      const namelen = plus.payload.readUInt32LE(off + 128 + 16);
      names.push(plus.payload.toString('latin1', off + 128 + 24, off + 128 + 24 + namelen));
      off += (128 + 24 + namelen + 7) & ~7;
    }
    expect(names.sort()).toEqual(['.', '..', 'a', 'b']);
  });

  it('keeps registrations across a CREATE or MKDIR, dropping those of the directories it copies up', async () => {
    const { dev, call } = await setup([{ 'd/a': 'x', 'd/e/b': 'y' }]);
    const d = await call(frame(Opcode.LOOKUP, 1n, z('d')));
    const e = await call(frame(Opcode.LOOKUP, nodeidOf(d), z('e')));
    const a = await call(frame(Opcode.LOOKUP, nodeidOf(d), z('a')));
    for (const n of [d, e]) {
      expect((await call(frame(Opcode.OPENDIR, nodeidOf(n), u32s(0, 0)))).error).toBe(0);
      expect(dev.dirOpens.get(nodeidOf(n))).toEqual({ attr: true, opendir: true }); // lower-only: the index's attributes
    }
    const created = await call(frame(Opcode.CREATE, nodeidOf(e), u32s(C.O_WRONLY | C.O_CREAT, 0o644, 0o022, 0), z('new')));
    expect(created.error).toBe(0);
    // e and d were copied up: the index's attributes are no longer theirs. a is still the loop's.
    expect(dev.dirOpens.has(nodeidOf(d))).toBe(false);
    expect(dev.dirOpens.has(nodeidOf(e))).toBe(false);
    expect(dev.lowerOpens.has(nodeidOf(a))).toBe(true);
    expect((await call(frame(Opcode.MKDIR, nodeidOf(d), u32s(0o755, 0o022), z('m')))).error).toBe(0);
    expect(dev.lowerOpens.has(nodeidOf(a))).toBe(true);
    // Removing the new directory ends its own registration only.
    expect((await call(frame(Opcode.RMDIR, nodeidOf(d), z('m')))).error).toBe(0);
    expect(dev.lowerOpens.has(nodeidOf(a))).toBe(true);
    // A directory's rename ends them all.
    expect((await call(frame(Opcode.RENAME, nodeidOf(d), u64(nodeidOf(d)), z('e'), z('e2')))).error).toBe(0);
    expect(dev.lowerOpens.size).toBe(0);
  });

  it('ends only the changed object\'s registration at a SETATTR, write OPEN, UNLINK, LINK or a file\'s RENAME; a directory\'s RENAME ends all', async () => {
    const { dev, call } = await setup([{ a: 'a', b: 'b', c: 'c', d: 'd', g: 'g', 'dir/x': 'x', ln: { symlink: 'a' } }]);
    const id = async (name: string, parent = 1n) => nodeidOf(await call(frame(Opcode.LOOKUP, parent, z(name))));
    const [a, b, c, d, g, dir] = [await id('a'), await id('b'), await id('c'), await id('d'), await id('g'), await id('dir')];
    const x = await id('x', dir);
    const ln = await id('ln');
    expect((await call(frame(Opcode.READLINK, ln))).error).toBe(0);
    expect([...dev.lowerOpens.keys()].sort()).toEqual([a, b, c, d, g, x].sort());
    // LINK copies its source up.
    expect((await call(frame(Opcode.LINK, 1n, u64(g), z('g2')))).error).toBe(0);
    expect(dev.lowerOpens.has(g)).toBe(false);
    expect(dev.dirOpens.get(ln)).toEqual({ attr: true, opendir: false });
    expect((await call(frame(Opcode.SETATTR, a, setattrMode(0o600)))).error).toBe(0);
    expect(dev.lowerOpens.has(a)).toBe(false);
    const w = await call(frame(Opcode.OPEN, b, u32s(C.O_WRONLY, 0)));
    expect(w.error).toBe(0);
    expect(dev.lowerOpens.has(b)).toBe(false);
    expect((await call(frame(Opcode.UNLINK, 1n, z('c')))).error).toBe(0);
    expect(dev.lowerOpens.has(c)).toBe(false);
    // The others keep theirs: d, x below a directory, the link's attributes.
    expect([...dev.lowerOpens.keys()].sort()).toEqual([d, x].sort());
    expect(dev.dirOpens.get(ln)).toEqual({ attr: true, opendir: false });
    // A copy-up of the link drops its attributes (they are the writable layer's now).
    const times = Buffer.alloc(LAYOUT.fuse_setattr_in.size);
    times.writeUInt32LE(FAttr.MTIME, LAYOUT.fuse_setattr_in.fields.valid);
    expect((await call(frame(Opcode.SETATTR, ln, times))).error).toBe(0);
    expect(dev.dirOpens.has(ln)).toBe(false);
    // A file's rename ends its own; a directory's all of them.
    expect((await call(frame(Opcode.RENAME, 1n, u64(1n), z('d'), z('e')))).error).toBe(0);
    expect([...dev.lowerOpens.keys()]).toEqual([x]);
    expect((await call(frame(Opcode.RENAME, 1n, u64(1n), z('dir'), z('dir2')))).error).toBe(0);
    expect(dev.lowerOpens.size).toBe(0);
  });

  it('asks once for a backing the kernel refuses (ELOOP: a layer on another FUSE mount), and afresh for the copy-up', async () => {
    const { dev, call } = await setup([{ a: 'x' }]);
    const asked: boolean[] = [];
    const adopt = dev.backingAdopt.bind(dev);
    dev.backingAdopt = (nodeid, fd, writable) => {
      asked.push(writable);
      if (writable) return adopt(nodeid, fd, writable);
      throw Object.assign(new Error('ELOOP: FUSE_DEV_IOC_BACKING_OPEN'), { code: 'ELOOP', errno: -40 });
    };
    const a = await call(frame(Opcode.LOOKUP, 1n, z('a')));
    for (let i = 0; i < 3; i++) {
      const o = await call(frame(Opcode.OPEN, nodeidOf(a), u32s(C.O_RDONLY, 0)));
      expect([o.error, o.payload.readUInt32LE(8) & 129]).toEqual([0, 1]); // FOPEN_DIRECT_IO
    }
    expect(asked).toEqual([false]);
    // The copy-up is another file, on the writable layer: the kernel takes it.
    const w = await call(frame(Opcode.OPEN, nodeidOf(a), u32s(C.O_RDWR, 0)));
    expect([w.error, w.payload.readUInt32LE(8) & 129]).toEqual([0, 128]); // FOPEN_PASSTHROUGH
    expect(asked).toEqual([false, true]);
  });

  it('registers opened directories and read links for the device, adopts its directory handles, ends both at a change', async () => {
    const { d, dev, call } = await setup([{ 'dir/x': 'x', ln: { symlink: 'dir/x' } }]);
    const dir = nodeidOf(await call(frame(Opcode.LOOKUP, 1n, z('dir'))));
    const ln = nodeidOf(await call(frame(Opcode.LOOKUP, 1n, z('ln'))));
    expect((await call(frame(Opcode.OPENDIR, dir, u32s(0, 0)))).error).toBe(0);
    // The root is the writable layer's too: OPENDIR only. dir and ln: their constant attributes.
    expect((await call(frame(Opcode.OPENDIR, 1n, u32s(0, 0)))).error).toBe(0);
    expect((await call(frame(Opcode.READLINK, ln))).payload.toString()).toBe('dir/x');
    expect(dev.dirOpens.get(dir)).toEqual({ attr: true, opendir: true });
    expect(dev.dirOpens.get(1n)).toEqual({ attr: false, opendir: true });
    expect(dev.dirOpens.get(ln)).toEqual({ attr: true, opendir: false });
    // A handle the device made: READDIR adopts it (its RELEASEDIR then comes to JS).
    const fh = NATIVE_DIR + 7;
    const rd = await call(frame(Opcode.READDIR, dir, u64(BigInt(fh)), u64(0n), u32s(4096, 0), Buffer.alloc(16)));
    expect(rd.error).toBe(0);
    expect(rd.payload.includes(Buffer.from('x'))).toBe(true);
    expect([...dev.adoptedDirs]).toEqual([fh]);
    expect((await call(frame(Opcode.RELEASEDIR, dir, u64(BigInt(fh)), Buffer.alloc(16)))).error).toBe(0);
    expect(d.dirs.get(fh)).toBeUndefined();
    // A new name below dir copies dir up: its registration goes, the others hold.
    expect((await call(frame(Opcode.MKDIR, dir, u32s(0o755, 0), z('new')))).error).toBe(0);
    expect(dev.dirOpens.has(dir)).toBe(false);
    expect(dev.dirOpens.get(ln)).toEqual({ attr: true, opendir: false });
    // A directory's rename changes every name below it: it ends them all.
    expect((await call(frame(Opcode.RENAME, 1n, u64(1n), z('dir'), z('dir2')))).error).toBe(0);
    expect(dev.dirOpens.size).toBe(0);
    // The next OPENDIR registers again; the directory is merged now: no attributes.
    expect((await call(frame(Opcode.OPENDIR, dir, u32s(0, 0)))).error).toBe(0);
    expect(dev.dirOpens.get(dir)).toEqual({ attr: false, opendir: true });
  });

  it('registers a writable-layer directory at its GETATTR with how its lstat is shaped, ends it at a change to it', async () => {
    const { dev, call } = await setup([{ 'low/x': 'x', 'low/sub/y': 'y' }]);
    const getattr = (n: bigint) => call(frame(Opcode.GETATTR, n, Buffer.alloc(LAYOUT.fuse_getattr_in.size)));
    const low = nodeidOf(await call(frame(Opcode.LOOKUP, 1n, z('low'))));
    const made = nodeidOf(await call(frame(Opcode.MKDIR, 1n, u32s(0o755, 0o022), z('made'))));
    // Lower-only: the index answers (no lstat rule); the root: never.
    for (const n of [low, 1n]) expect((await getattr(n)).error).toBe(0);
    expect(dev.upperDirs.size).toBe(0);
    expect((await getattr(made)).error).toBe(0);
    expect(dev.upperDirs.get(made)).toEqual({ path: join(layers!.upper, 'made'), ino: 0, nlinkOne: false });
    // A create copies `low` up: merged now, it keeps its lower st_ino and shows one link.
    expect((await call(frame(Opcode.CREATE, low, u32s(C.O_WRONLY | C.O_CREAT, 0o644, 0o022, 0), z('new')))).error).toBe(0);
    const st = await getattr(low);
    const ino = Number(st.payload.readBigUInt64LE(16));
    expect(dev.upperDirs.get(low)).toEqual({ path: join(layers!.upper, 'low'), ino, nlinkOne: true });
    // A create inside ends nothing; a chmod of the directory ends its own; a rename of a
    // directory all.
    expect((await call(frame(Opcode.MKDIR, made, u32s(0o755, 0o022), z('in')))).error).toBe(0);
    expect([...dev.upperDirs.keys()].sort()).toEqual([low, made].sort());
    expect((await call(frame(Opcode.SETATTR, made, setattrMode(0o700)))).error).toBe(0);
    expect([...dev.upperDirs.keys()]).toEqual([low]);
    expect((await call(frame(Opcode.RENAME, 1n, u64(1n), z('made'), z('moved')))).error).toBe(0);
    expect(dev.upperDirs.size).toBe(0);
  });

  it('answers RENAME2 flags: NOREPLACE refuses an existing target, EXCHANGE swaps nodes', async () => {
    const { d, call } = await setup([{ a: 'A', b: 'B' }]);
    const a = nodeidOf(await call(frame(Opcode.LOOKUP, 1n, z('a'))));
    const b = nodeidOf(await call(frame(Opcode.LOOKUP, 1n, z('b'))));
    expect((await call(frame(Opcode.RENAME2, 1n, u64(1n), u32s(1, 0), z('a'), z('b')))).error).toBe(-17);
    expect((await call(frame(Opcode.RENAME2, 1n, u64(1n), u32s(2, 0), z('a'), z('b')))).error).toBe(0);
    expect(d.nodes.path(d.nodes.get(Number(a))!)).toBe('/b');
    expect(d.nodes.path(d.nodes.get(Number(b))!)).toBe('/a');
  });

  it('survives random and truncated frames, answering each whole header once', async () => {
    const { dev, d } = await setup([{ 'dir/': '', 'dir/f': 'data', l: { symlink: 'dir/f' } }]);
    const unhandled: unknown[] = [];
    const onUnhandled = (e: unknown) => unhandled.push(e);
    process.on('unhandledRejection', onUnhandled);
    const opcodes = [...Object.values(Opcode).filter((o) => o !== Opcode.INIT && o !== Opcode.DESTROY), 0, 77, 4096];
    try {
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom(...opcodes),
          fc.constantFrom(0n, 1n, 2n, 3n, 2n ** 64n - 1n),
          fc.uint8Array({ maxLength: 200 }),
          fc.nat(260),
          async (opcode, nodeid, body, cut) => {
            const whole = frame(opcode, nodeid, Buffer.from(body));
            const f = cut < whole.length ? whole.subarray(0, cut) : whole;
            const unique = whole.readBigUInt64LE(8);
            const before = dev.sent.length;
            expect(() => d.handle(f)).not.toThrow();
            const noReply = f.length < 40 || (f === whole && [Opcode.FORGET, Opcode.BATCH_FORGET, Opcode.INTERRUPT, Opcode.NOTIFY_REPLY].includes(opcode as 2));
            const answers = () => dev.sent.slice(before).filter((s) => s.unique === unique).length;
            // A reply may come after the filesystem's I/O (a busy machine): wait for it.
            for (let i = 0; i < 1000 && !noReply && answers() === 0; i++) await new Promise((r) => setTimeout(r, 5));
            await new Promise((r) => setTimeout(r, 2));
            expect(answers()).toBe(noReply ? 0 : 1);
          },
        ),
        { numRuns: 400 },
      );
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
    expect(unhandled).toEqual([]);
  });
});
