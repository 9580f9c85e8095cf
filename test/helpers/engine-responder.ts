/**
 * The smallest FUSE server that exercises src/engine/device.ts on a real mount: a root
 * directory holding one regular file `file` backed by a real file. It answers INIT,
 * GETATTR, LOOKUP, OPEN (with FOPEN_PASSTHROUGH and a backing id when asked), READ (from
 * the backing fd, off the JS thread), FLUSH, RELEASE, OPENDIR/READDIR/RELEASEDIR (empty
 * listing but the file), FORGET (no reply); everything else ENOSYS. The struct layouts are
 * written out here on purpose, independently of src/engine/wire.ts.
 */
import { closeSync, fstatSync, openSync, type Stats } from 'node:fs';
import type { FuseDevice } from '../../src/engine/device.js';

export const FUSE = {
  LOOKUP: 1, FORGET: 2, GETATTR: 3, SETATTR: 4, OPEN: 14, READ: 15, WRITE: 16, RELEASE: 18, FLUSH: 25, INIT: 26,
  OPENDIR: 27, READDIR: 28, RELEASEDIR: 29, ACCESS: 34, INTERRUPT: 36, DESTROY: 38, BATCH_FORGET: 42,
} as const;
const ENOENT = -2;
const ENOSYS = -38;
const FILE_NODE = 2n;
const FUSE_ASYNC_READ = 1 << 0;
const FUSE_BIG_WRITES = 1 << 5;
const FUSE_MAX_PAGES = 1 << 22;
const FUSE_INIT_EXT = 1 << 30;
const FUSE_PASSTHROUGH_FLAGS2 = 1 << (37 - 32);
const FOPEN_DIRECT_IO = 1 << 0;
const FOPEN_PASSTHROUGH = 1 << 7;

export interface ResponderOptions {
  /** The file `file` in the mount shows. */
  backingPath: string;
  /** Offer FUSE_PASSTHROUGH in INIT and open `file` with it. */
  passthrough: boolean;
  /** Entry and attribute timeout of every reply (default 0: the kernel asks each time). */
  cacheSeconds?: number;
  /** Reader threads for device.start (0: read on the JS thread). */
  threads?: number;
  /** `file` is writable (mode 0644): WRITE goes to the backing file through writeToFd. */
  writable?: boolean;
  /** With passthrough: only the first N OPENs get it; later ones answer FOPEN_DIRECT_IO. */
  passthroughOpens?: number;
}

export interface Responder {
  /** Requests seen, by opcode. */
  readonly counts: Map<number, number>;
  /** What INIT negotiated: the kernel's minor version and flags2. */
  readonly init: { minor: number; flags: number; flags2: number } | undefined;
  /** The backing ids handed out (and not yet closed), by fh. */
  readonly backing: Map<bigint, number>;
  /** Errors from backingOpen, in order (the open then fell back to READ requests). */
  readonly backingErrors: string[];
  /** The largest WRITE payload seen. */
  readonly maxWrite: number;
  close(): void;
}

function attrBytes(st: Stats, ino: bigint, mode: number, nlink: number): Buffer {
  const b = Buffer.alloc(88);
  b.writeBigUInt64LE(ino, 0);
  b.writeBigUInt64LE(BigInt(st.size), 8);
  b.writeBigUInt64LE(BigInt(st.blocks), 16);
  for (const [off, t] of [[24, st.atimeMs], [32, st.mtimeMs], [40, st.ctimeMs]] as const) b.writeBigUInt64LE(BigInt(Math.floor(t / 1000)), off);
  b.writeUInt32LE(mode, 60);
  b.writeUInt32LE(nlink, 64);
  b.writeUInt32LE(st.uid, 68);
  b.writeUInt32LE(st.gid, 72);
  b.writeUInt32LE(4096, 80);
  return b;
}

export function serveMinimal(device: FuseDevice, options: ResponderOptions): Responder {
  const backingFd = openSync(options.backingPath, options.writable ? 'r+' : 'r');
  let maxWrite = 0;
  const counts = new Map<number, number>();
  const backing = new Map<bigint, number>();
  const backingErrors: string[] = [];
  let init: Responder['init'];
  let nextFh = 1n;
  let opens = 0;
  const cache = BigInt(options.cacheSeconds ?? 0);
  const fileAttr = () => {
    const st = fstatSync(backingFd);
    return attrBytes(st, FILE_NODE, options.writable ? 0o100644 : 0o100444, 1);
  };
  const rootAttr = () => attrBytes(fstatSync(backingFd), 1n, 0o40755, 2);
  const attrOut = (attr: Buffer) => {
    const head = Buffer.alloc(16);
    head.writeBigUInt64LE(cache, 0); // attr_valid
    return Buffer.concat([head, attr]);
  };

  device.start((req) => {
    const opcode = req.readUInt32LE(4);
    const unique = req.readBigUInt64LE(8);
    const nodeid = req.readBigUInt64LE(16);
    const body = req.subarray(40);
    counts.set(opcode, (counts.get(opcode) ?? 0) + 1);
    switch (opcode) {
      case FUSE.INIT: {
        const minor = body.readUInt32LE(4);
        const flags = body.readUInt32LE(12);
        const flags2 = flags & FUSE_INIT_EXT ? body.readUInt32LE(16) : 0;
        init = { minor, flags, flags2 };
        const out = Buffer.alloc(64);
        out.writeUInt32LE(7, 0);
        out.writeUInt32LE(Math.min(minor, 40), 4);
        out.writeUInt32LE(body.readUInt32LE(8), 8); // max_readahead: as offered
        out.writeUInt32LE((FUSE_ASYNC_READ | FUSE_BIG_WRITES | FUSE_MAX_PAGES | FUSE_INIT_EXT) & flags, 12);
        out.writeUInt16LE(16, 16); // max_background
        out.writeUInt16LE(12, 18); // congestion_threshold
        out.writeUInt32LE(1024 * 1024, 20); // max_write
        out.writeUInt32LE(1, 24); // time_gran
        out.writeUInt16LE(256, 28); // max_pages
        if (options.passthrough && flags2 & FUSE_PASSTHROUGH_FLAGS2) {
          out.writeUInt32LE(FUSE_PASSTHROUGH_FLAGS2, 32);
          out.writeUInt32LE(1, 36); // max_stack_depth: backing files on ext4/xfs/tmpfs
        }
        device.reply(unique, 0, out);
        return;
      }
      case FUSE.GETATTR:
        if (nodeid === 1n) device.reply(unique, 0, attrOut(rootAttr()));
        else if (nodeid === FILE_NODE) device.reply(unique, 0, attrOut(fileAttr()));
        else device.reply(unique, ENOENT);
        return;
      case FUSE.LOOKUP: {
        const name = body.subarray(0, body.indexOf(0)).toString();
        if (nodeid !== 1n || name !== 'file') return device.reply(unique, ENOENT);
        const entry = Buffer.alloc(40);
        entry.writeBigUInt64LE(FILE_NODE, 0);
        entry.writeBigUInt64LE(cache, 16); // entry_valid
        entry.writeBigUInt64LE(cache, 24); // attr_valid
        device.reply(unique, 0, entry, fileAttr());
        return;
      }
      case FUSE.OPEN: {
        const fh = nextFh++;
        const out = Buffer.alloc(16);
        out.writeBigUInt64LE(fh, 0);
        opens++;
        if (options.passthroughOpens !== undefined && opens > options.passthroughOpens) {
          out.writeUInt32LE(FOPEN_DIRECT_IO, 8);
        } else if (options.passthrough && init && init.flags2 & FUSE_PASSTHROUGH_FLAGS2) {
          try {
            const id = device.backingOpen(backingFd);
            backing.set(fh, id);
            out.writeUInt32LE(FOPEN_PASSTHROUGH, 8);
            out.writeInt32LE(id, 12);
          } catch (err) {
            backingErrors.push((err as NodeJS.ErrnoException).code ?? String(err));
          }
        }
        device.reply(unique, 0, out);
        return;
      }
      case FUSE.READ: {
        const offset = body.readBigUInt64LE(8);
        const size = body.readUInt32LE(16);
        device.replyFromFd(unique, backingFd, offset, size);
        return;
      }
      case FUSE.WRITE: {
        const offset = body.readBigUInt64LE(8);
        const size = body.readUInt32LE(16);
        maxWrite = Math.max(maxWrite, size);
        device.writeToFd(unique, backingFd, offset, body.subarray(40, 40 + size));
        return;
      }
      case FUSE.RELEASE: {
        const fh = body.readBigUInt64LE(0);
        const id = backing.get(fh);
        if (id !== undefined) {
          backing.delete(fh);
          device.backingClose(id);
        }
        device.reply(unique, 0);
        return;
      }
      case FUSE.OPENDIR: {
        const out = Buffer.alloc(16);
        device.reply(unique, 0, out);
        return;
      }
      case FUSE.READDIR: {
        const offset = body.readBigUInt64LE(8);
        if (offset > 0n) return device.reply(unique, 0);
        const name = Buffer.from('file');
        const ent = Buffer.alloc(24 + 8); // fuse_dirent + name padded to 8
        ent.writeBigUInt64LE(FILE_NODE, 0);
        ent.writeBigUInt64LE(1n, 8);
        ent.writeUInt32LE(name.length, 16);
        ent.writeUInt32LE(8, 20); // DT_REG
        name.copy(ent, 24);
        device.reply(unique, 0, ent);
        return;
      }
      case FUSE.FLUSH:
      case FUSE.RELEASEDIR:
        device.reply(unique, 0);
        return;
      case FUSE.FORGET:
      case FUSE.BATCH_FORGET:
      case FUSE.INTERRUPT:
        return; // no reply
      default:
        device.reply(unique, ENOSYS);
    }
  }, options.threads);
  return {
    counts,
    get init() {
      return init;
    },
    backing,
    backingErrors,
    get maxWrite() {
      return maxWrite;
    },
    close: () => closeSync(backingFd),
  };
}
