/**
 * Open directories: OPENDIR takes a snapshot of the listing, READDIR/READDIRPLUS pack it
 * into the kernel's buffer from an offset (entry index + 1 is each dirent's `off`, so a
 * seekdir/telldir cookie is stable for the life of the handle). rewinddir (offset 0 after
 * entries were served) takes a fresh snapshot, as POSIX asks.
 */
import type { DirEntry, FileStat } from '../core/filesystem.js';
import type { Ino } from './node-table.js';
import { direntSize, direntType, LAYOUT, writeDirent, writeEntry, type Validity } from './wire.js';

interface OpenDir {
  path: string;
  /** Taken at the first READDIR, not at OPENDIR: with the listing in the kernel's cache
   * (FOPEN_CACHE_DIR) most opens read nothing, and building one costs ~1 ms per 100 entries. */
  entries: DirEntry[] | undefined;
  served: boolean;
  /** The caller's xattr-change count when the listing was taken (its noXattrs are facts
   * of that moment). */
  xattrEpoch: number;
}

/** An entry as the dispatcher resolves it for READDIRPLUS: a node id (0: no entry) and stat. */
export interface PlusEntry {
  nodeid: number;
  stat: FileStat;
}

/** ino when a '.'/'..' entry's inode is not known (libfuse's FUSE_UNKNOWN_INO). */
const UNKNOWN_INO = 0xffffffff;
const DOTS = [Buffer.from('.'), Buffer.from('..')];

export class OpenDirs {
  private readonly dirs = new Map<number, OpenDir>();
  private next = 1;

  open(path: string, entries?: DirEntry[]): number {
    while (this.dirs.has(this.next)) this.next = this.next >= 0x7fffffff ? 1 : this.next + 1;
    const fh = this.next++;
    this.dirs.set(fh, { path, entries, served: false, xattrEpoch: -1 });
    return fh;
  }

  /** A handle made elsewhere (an OPENDIR the device's request loop answered) becomes ours. */
  adopt(fh: number, path: string): OpenDir {
    const d: OpenDir = { path, entries: undefined, served: false, xattrEpoch: -1 };
    this.dirs.set(fh, d);
    return d;
  }

  get(fh: number): OpenDir | undefined {
    return this.dirs.get(fh);
  }

  release(fh: number): void {
    this.dirs.delete(fh);
  }

  /** Whether READDIR at `offset` wants a listing first: none taken yet, or a rewind. */
  wantsRefresh(fh: number, offset: number): boolean {
    const d = this.dirs.get(fh);
    return d !== undefined && (d.entries === undefined || (offset === 0 && d.served));
  }

  refresh(fh: number, entries: DirEntry[], xattrEpoch = -1): void {
    const d = this.dirs.get(fh);
    if (d) Object.assign(d, { entries, served: false, xattrEpoch });
  }

  /** READDIR: the dirents from `offset` that fit in `size` bytes. */
  pack(fh: number, offset: number, size: number, dotInos: [Ino, Ino]): Buffer {
    const d = this.dirs.get(fh);
    if (d?.entries === undefined) return Buffer.alloc(0);
    d.served = true;
    const out = Buffer.alloc(Math.min(size, 1 << 20));
    let used = 0;
    for (let i = offset; i < d.entries.length + 2; i++) {
      const { name, ino, type } = this.row(d, i, dotInos);
      const len = direntSize(name.length, false);
      if (used + len > out.length) break;
      used += writeDirent(out, used, ino, i + 1, type, name);
    }
    return out.subarray(0, used);
  }

  /**
   * READDIRPLUS: like pack, with an entry_out per dirent. `resolve` gives each entry (not
   * '.'/'..') its node — counting a kernel reference — and is only called for entries that
   * fit, so every reference handed out reaches the kernel.
   */
  async packPlus(
    fh: number,
    offset: number,
    size: number,
    dotInos: [Ino, Ino],
    resolve: (e: DirEntry) => PlusEntry | null | Promise<PlusEntry | null>,
    valid: Validity,
  ): Promise<Buffer> {
    const d = this.dirs.get(fh);
    if (d?.entries === undefined) return Buffer.alloc(0);
    d.served = true;
    const out = Buffer.alloc(Math.min(size, 1 << 20));
    const entrySize = LAYOUT.fuse_entry_out.size;
    let used = 0;
    for (let i = offset; i < d.entries.length + 2; i++) {
      const name = i < 2 ? DOTS[i]! : Buffer.from(d.entries[i - 2]!.name, 'latin1');
      const len = direntSize(name.length, true);
      if (used + len > out.length) break;
      let plus: PlusEntry | null = null;
      if (i >= 2) {
        // Entries that came with their stat resolve without a microtask each.
        const r = resolve(d.entries[i - 2]!);
        plus = r instanceof Promise ? await r : r;
      }
      if (plus) writeEntry(out, used, plus.nodeid, plus.stat, valid);
      const row = plus ? { ino: plus.stat.ino, type: direntType(plus.stat.mode) } : this.row(d, i, dotInos);
      writeDirent(out, used + entrySize, row.ino, i + 1, row.type, name);
      used += len;
    }
    return out.subarray(0, used);
  }

  private row(d: OpenDir, i: number, dotInos: [Ino, Ino]): { name: Buffer; ino: Ino; type: number } {
    if (i < 2) return { name: DOTS[i]!, ino: dotInos[i] || UNKNOWN_INO, type: 4 };
    const e = d.entries![i - 2]!;
    const st = e.stat; // once: it may be made on each ask (union-view.ts LowerChild)
    // DT_UNKNOWN when no stat came with the entry: readdir(3) users then stat it.
    return { name: Buffer.from(e.name, 'latin1'), ino: st ? st.ino : UNKNOWN_INO, type: st ? direntType(st.mode) : 0 };
  }
}
