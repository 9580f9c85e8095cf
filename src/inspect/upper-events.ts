/**
 * Live copy-on-write events of a container, observed on its writable layer: the upper
 * folder is watched (inotify, one watch per directory, so a directory made by a copy-up
 * is watched and scanned the moment it appears) and every change is classified against
 * the image's layers:
 *   copy-up   a path the image has appears in the writable layer (bytes = what was copied)
 *   create    a path the image does not have appears
 *   whiteout  a 0/0 character device appears: the image's path is deleted
 *   opaque    a directory gets trusted.overlay.opaque=y: the image's content below it is hidden
 *   rename    an object moves inside the writable layer (same inode), or a directory
 *             appears with trusted.overlay.redirect (a lower directory renamed)
 *   remove    an object of the writable layer goes away
 * Watching the writable layer, not the mount process, means any writer is seen (the
 * layerfs mount, or a kernel overlayfs mount of the same folders) and the mount's hot
 * path is untouched; reads are not events (nothing changes on disk).
 */
import { watch, type FSWatcher } from 'node:fs';
import * as fsp from 'node:fs/promises';
import { EventEmitter } from 'node:events';
import { isOpaqueDir, isWhiteoutStat, joinPath, REDIRECT_XATTR, splitPath } from '../overlay/index.js';
import * as sys from '../sys/native.js';
import { layerOfIndex, type ImageStack, type StackLayer } from './image-stack.js';
import { nullOnSystemError } from '../core/errors.js';

/** How long a name that went away waits for its inode to reappear elsewhere (a rename). */
const RENAME_GRACE_MS = 200;

/** One event. */
export interface CowEvent {
  time: string;
  event: 'copy-up' | 'create' | 'whiteout' | 'opaque' | 'rename' | 'remove';
  path: string;
  /** rename: where it came from. */
  from?: string;
  /** copy-up / whiteout / opaque: the image layer that served the path before. */
  layer?: StackLayer;
  /** copy-up / create: bytes in the writable layer's copy. */
  bytes?: number;
}

interface Known {
  kind: 'dir' | 'whiteout' | 'other';
  ino: bigint;
  /** Birth time: tells a renamed object (kept) from a new one that reuses a freed inode number. */
  btime: bigint;
  opaque: boolean;
  redirect?: string;
}

/** Watches a writable layer; emits 'event' (CowEvent), 'warning' (string), 'error', and 'end' when the layer is deleted. */
export class UpperWatcher extends EventEmitter {
  private readonly known = new Map<string, Known>();
  private readonly watchers = new Map<string, FSWatcher>();
  private queue: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(
    private readonly upperDir: string,
    private readonly stack: ImageStack,
  ) {
    super();
  }

  /** Records the current state (no events for it) and starts watching. */
  async start(): Promise<void> {
    await this.scan('/', false);
  }

  /** Stops every watch. */
  close(): void {
    this.closed = true;
    for (const g of this.recentlyGone.values()) clearTimeout(g.timer);
    for (const w of this.watchers.values()) w.close();
    this.watchers.clear();
  }

  private real(path: string): Buffer {
    return path === '/' ? Buffer.from(this.upperDir) : Buffer.concat([Buffer.from(this.upperDir), Buffer.from(path, 'latin1')]);
  }

  /** Watches `dir` and records (or, with `emit`, reports) everything below it. */
  private async scan(dir: string, emit: boolean): Promise<void> {
    this.watchDir(dir);
    const names = await fsp.readdir(this.real(dir), { encoding: 'buffer' }).catch(() => [] as Buffer[]);
    for (const b of names) await this.check(joinPath(dir, b.toString('latin1')), emit);
  }

  private watchDir(dir: string): void {
    if (this.closed || this.watchers.has(dir)) return;
    try {
      const w = watch(this.real(dir), { encoding: 'buffer' }, (_type, name) => {
        const path = name ? joinPath(dir, Buffer.from(name).toString('latin1')) : dir;
        this.queue = this.queue.then(() => (dir === '/' ? this.checkRoot() : undefined)).then(() => this.check(path, true)).catch((err: unknown) => {
          this.emit('error', err);
        });
      });
      w.on('error', () => {
        this.unwatch(dir);
        if (dir === '/') void this.checkRoot();
      });
      this.watchers.set(dir, w);
    } catch (err) {
      // A directory that went away before it could be watched: its removal is reported.
      // Anything else (ENOSPC: out of inotify watches) means events below it are missed.
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        this.emit('warning', `cannot watch ${dir}: ${(err as Error).message}${(err as NodeJS.ErrnoException).code === 'ENOSPC' ? ' (raise fs.inotify.max_user_watches)' : ''}; events below it are missed`);
      }
    }
  }

  /** Ends the stream when the writable layer itself is gone (container removed). */
  private async checkRoot(): Promise<void> {
    if (this.closed) return;
    if ((await fsp.stat(this.upperDir).catch(() => null)) === null) {
      this.close();
      this.emit('end');
    }
  }

  private unwatch(dir: string): void {
    for (const [d, w] of this.watchers) {
      if (d === dir || d.startsWith(dir === '/' ? '/' : dir + '/')) {
        w.close();
        this.watchers.delete(d);
      }
    }
  }

  /** Compares `path` on disk with what was known and reports the difference. */
  private async check(path: string, emit: boolean): Promise<void> {
    if (this.closed) return;
    const real = this.real(path);
    const st = await fsp.lstat(real, { bigint: true }).catch(() => null);
    const before = this.known.get(path);
    if (!st) {
      if (before) this.forget(path, emit);
      return;
    }
    const kind: Known['kind'] = isWhiteoutStat(st) ? 'whiteout' : st.isDirectory() ? 'dir' : 'other';
    const now: Known = { kind, ino: st.ino, btime: st.birthtimeNs, opaque: false };
    if (kind === 'dir') {
      now.opaque = await isOpaqueDir(real);
      const r = await sys.lgetxattr(real, REDIRECT_XATTR).catch(nullOnSystemError);
      if (r) now.redirect = r.toString('latin1');
    }
    const same = before !== undefined && before.kind === now.kind && before.ino === now.ino && before.btime === now.btime;
    // An object replaced by a whiteout: the whiteout event says it; no separate remove.
    if (!same && before) this.forget(path, emit, kind === 'whiteout');
    this.known.set(path, now);
    if (emit) {
      if (!same) this.report(path, now, st.isFile() ? Number(st.size) : undefined);
      else if (now.opaque && !before.opaque) this.send({ event: 'opaque', path, ...this.layerOf(path) });
    }
    if (kind === 'dir' && !same) await this.scan(path, emit && !this.renamedDirs.has(path));
    this.renamedDirs.delete(path);
  }

  /** Directories just reported as renamed: their content moved with them, not new. */
  private readonly renamedDirs = new Set<string>();

  private report(path: string, now: Known, bytes: number | undefined): void {
    const lower = this.layerOf(path);
    if (now.kind === 'whiteout') {
      this.send({ event: 'whiteout', path, ...lower });
      return;
    }
    const gone = this.recentlyGone.get(now.ino);
    if (gone && gone.btime === now.btime && gone.kind === now.kind) {
      // The same inode left another name a moment ago: one rename, not a remove and a create.
      clearTimeout(gone.timer);
      this.recentlyGone.delete(now.ino);
      if (now.kind === 'dir') this.renamedDirs.add(path);
      this.send({ event: 'rename', path, from: gone.path });
      return;
    }
    if (now.redirect) {
      this.renamedDirs.add(path);
      this.send({ event: 'rename', path, from: now.redirect });
      return;
    }
    if (now.opaque) {
      this.send({ event: 'opaque', path, ...lower });
      return;
    }
    const size = bytes === undefined ? {} : { bytes };
    if (lower.layer) this.send({ event: 'copy-up', path, layer: lower.layer, ...size });
    else this.send({ event: 'create', path, ...size });
  }

  /** Objects that just left a name, by inode, until a new name claims them or the grace time ends. */
  private readonly recentlyGone = new Map<bigint, { path: string; btime: bigint; kind: Known['kind']; silent: boolean; timer: NodeJS.Timeout }>();

  private forget(path: string, emit: boolean, silent = false): void {
    const k = this.known.get(path);
    this.known.delete(path);
    const prefix = path + '/';
    for (const p of [...this.known.keys()]) if (p.startsWith(prefix)) this.known.delete(p);
    if (k?.kind === 'dir') this.unwatch(path);
    if (!emit || !k || k.kind === 'whiteout') return;
    const timer = setTimeout(() => {
      if (this.recentlyGone.get(k.ino)?.path !== path) return;
      this.recentlyGone.delete(k.ino);
      // Seen gone between the union's removal and its whiteout (or the opaque directory
      // that replaced the whiteout): a replacement, which that event reports.
      const now = this.known.get(path);
      if (now && (now.kind === 'whiteout' || now.opaque)) return;
      if (!this.closed && !silent) this.send({ event: 'remove', path });
    }, RENAME_GRACE_MS);
    const pending = this.recentlyGone.get(k.ino);
    if (pending) {
      clearTimeout(pending.timer);
      if (!pending.silent) this.send({ event: 'remove', path: pending.path });
    }
    this.recentlyGone.set(k.ino, { path, btime: k.btime, kind: k.kind, silent, timer });
  }

  /** The image layer serving `path` before the container touched it (following redirects above it). */
  private layerOf(path: string): { layer?: StackLayer } {
    let lower = '/';
    let cur = '/';
    for (const name of splitPath(path)) {
      cur = joinPath(cur, name);
      const k = this.known.get(cur);
      lower = k?.redirect && cur !== path ? k.redirect : joinPath(lower, name);
      if (k?.opaque && cur !== path) return {};
    }
    const e = this.stack.index.get(lower);
    return e ? { layer: layerOfIndex(this.stack, e.layer) } : {};
  }

  private send(e: Omit<CowEvent, 'time'>): void {
    this.emit('event', { time: new Date().toISOString(), ...e } satisfies CowEvent);
  }
}
