/**
 * The oracle subject calling a PathFilesystem (layerfs's union object) directly, doing
 * what the kernel's VFS would do around it: umask on new modes, symlink resolution of
 * intermediate components (and of the last one for ops that follow it), open/write/
 * release sequences. It checks no permissions (the kernel does that for a FUSE mount, with
 * default_permissions), so ops of another user ('as') are not for this subject.
 */
import { constants as C } from 'node:fs';
import type { Caller, PathFilesystem } from '../../src/core/filesystem.js';
import {
  attempt, errnoError, NB, RENAME_FLAGS, sha, statValue, typeName, UMASK, type Op, type OpResult,
  type RawEntry, type RawTree, type Subject,
} from './oracle.js';

const ROOT_CALLER: Caller = { uid: 0, gid: 0, pid: process.pid, umask: UMASK };

export class UnionSubject implements Subject {
  private readonly fds = new Map<string, { path: string; fh: number }>();

  constructor(readonly name: string, readonly fs: PathFilesystem, readonly caller: Caller = ROOT_CALLER) {}

  /** Resolves symlinks like path_lookupat (relative targets only). */
  private async resolve(path: string, followLast: boolean): Promise<string> {
    const parts = path.split('/').filter(Boolean);
    let cur = '/';
    let hops = 0;
    while (parts.length > 0) {
      const name = parts.shift()!;
      const next = cur === '/' ? '/' + name : cur + '/' + name;
      if (parts.length === 0 && !followLast) return next;
      let mode: number;
      try {
        mode = (await this.fs.getattr(next)).mode;
      } catch (err) {
        if (parts.length === 0) return next;
        throw err;
      }
      if ((mode & C.S_IFMT) === C.S_IFLNK) {
        if (++hops > 40) throw errnoError('ELOOP');
        const target = await this.fs.readlink(next);
        if (target.startsWith('/')) cur = '/';
        parts.unshift(...target.split('/').filter(Boolean));
        continue;
      }
      cur = next;
    }
    return cur;
  }

  private async withFile(path: string, flags: number, fn: (fh: number) => Promise<unknown>): Promise<unknown> {
    const fh = await this.fs.open(path, flags, this.caller);
    try { return await fn(fh); } finally { await this.fs.release(path, fh); }
  }

  private held(name: string): { path: string; fh: number } {
    const h = this.fds.get(name);
    if (!h) throw errnoError('EBADF');
    return h;
  }

  apply(op: Op): Promise<OpResult> {
    const fs = this.fs;
    const c = this.caller;
    if (op.op === 'as') throw new Error(`${this.name}: the union object checks no permissions; 'as' ops need a subject behind the kernel's VFS`);
    return attempt(async () => {
      switch (op.op) {
        case 'create': {
          // O_CREAT|O_EXCL never follows a final symlink (a dangling one gives EEXIST).
          const p = await this.resolve(op.path, false);
          const fh = await fs.create(p, op.mode & ~UMASK, C.O_WRONLY | C.O_CREAT | C.O_EXCL, c);
          try { await fs.write(p, fh, Buffer.from(op.data), op.data.length, 0); } finally { await fs.release(p, fh); }
          return;
        }
        case 'write': {
          const p = await this.resolve(op.path, true);
          await this.withFile(p, C.O_WRONLY | NB, (fh) => fs.write(p, fh, Buffer.from(op.data), op.data.length, op.pos));
          return;
        }
        case 'append': {
          const p = await this.resolve(op.path, true);
          await this.withFile(p, C.O_WRONLY | C.O_APPEND | NB, async (fh) => {
            const size = Number((await fs.getattr(p)).size);
            await fs.write(p, fh, Buffer.from(op.data), op.data.length, size);
          });
          return;
        }
        case 'truncate': {
          const p = await this.resolve(op.path, true);
          const st = await fs.getattr(p);
          if ((st.mode & C.S_IFMT) === C.S_IFDIR) throw errnoError('EISDIR');
          return fs.truncate(p, op.size, c);
        }
        case 'chmod': return fs.chmod(await this.resolve(op.path, true), op.mode, c);
        case 'chown': return fs.chown(await this.resolve(op.path, false), op.uid, op.gid, c);
        case 'utimens': {
          const t = { sec: op.sec, nsec: op.nsec };
          return fs.utimens(await this.resolve(op.path, false), t, t, c);
        }
        case 'setxattr': return fs.setxattr(await this.resolve(op.path, false), op.name, Buffer.from(op.value, 'latin1'), 0, c);
        case 'removexattr': return fs.removexattr(await this.resolve(op.path, false), op.name, c);
        case 'getxattr': return (await fs.getxattr(await this.resolve(op.path, false), op.name))?.toString('latin1') ?? 'ENODATA';
        case 'listxattr': return (await fs.listxattr(await this.resolve(op.path, false))).sort();
        case 'link': return fs.link(await this.resolve(op.from, false), await this.resolve(op.to, false), c);
        case 'symlink': return fs.symlink(op.target, await this.resolve(op.path, false), c);
        case 'mkdir': return fs.mkdir(await this.resolve(op.path, false), op.mode & ~UMASK, c);
        case 'mkfifo': return fs.mknod(await this.resolve(op.path, false), C.S_IFIFO | (0o644 & ~UMASK), 0, c);
        case 'rmdir': return fs.rmdir(await this.resolve(op.path, false), c);
        case 'unlink': return fs.unlink(await this.resolve(op.path, false), c);
        case 'rename':
          return fs.rename(await this.resolve(op.from, false), await this.resolve(op.to, false), op.flags ? RENAME_FLAGS[op.flags] : 0, c);
        case 'read': return sha(await this.readAll(await this.resolve(op.path, true)));
        case 'stat': {
          const s = await fs.getattr(await this.resolve(op.path, false));
          return statValue(s.mode, s.uid, s.gid, Number(s.size), s.nlink);
        }
        case 'readdir': {
          const p = await this.resolve(op.path, true);
          return (await fs.readdir(p)).map((e) => e.name).sort();
        }
        case 'open': {
          if (this.fds.has(op.fd)) throw errnoError('EBUSY');
          const p = await this.resolve(op.path, true);
          this.fds.set(op.fd, { path: p, fh: await fs.open(p, (op.write ? C.O_RDWR : C.O_RDONLY) | NB, c) });
          return;
        }
        case 'fwrite': {
          const h = this.held(op.fd);
          await fs.write(h.path, h.fh, Buffer.from(op.data), op.data.length, op.pos);
          return;
        }
        case 'fstat': {
          const h = this.held(op.fd);
          const s = await (fs.fgetattr ? fs.fgetattr(h.path, h.fh) : fs.getattr(h.path));
          return statValue(s.mode, s.uid, s.gid, Number(s.size), s.nlink);
        }
        case 'ftruncate': {
          const h = this.held(op.fd);
          if (!fs.ftruncate) throw errnoError('ENOSYS');
          return fs.ftruncate(h.path, h.fh, op.size);
        }
        case 'fread': return sha(await this.readHeld(this.held(op.fd)));
        case 'close': {
          const h = this.held(op.fd);
          this.fds.delete(op.fd);
          return fs.release(h.path, h.fh);
        }
      }
    });
  }

  private async readHeld(h: { path: string; fh: number }): Promise<Buffer> {
    const chunks: Buffer[] = [];
    for (let pos = 0; ;) {
      const buf = Buffer.alloc(64 * 1024);
      const n = await this.fs.read(h.path, h.fh, buf, buf.length, pos);
      if (n === 0) break;
      chunks.push(buf.subarray(0, n));
      pos += n;
    }
    return Buffer.concat(chunks);
  }

  private async readAll(path: string): Promise<Buffer> {
    const st = await this.fs.getattr(path);
    if ((st.mode & C.S_IFMT) === C.S_IFDIR) throw errnoError('EISDIR');
    const fh = await this.fs.open(path, C.O_RDONLY | NB, this.caller);
    // Behind a mount a fifo's data never reaches the union: the kernel's pipe code reads it
    // (FUSE and overlayfs alike), and opened non-blocking with no writer it reads end of file.
    // The union's read is a pread, which a pipe answers ESPIPE (soak seed 378215999).
    const fifo = (st.mode & C.S_IFMT) === C.S_IFIFO;
    try { return fifo ? Buffer.alloc(0) : await this.readHeld({ path, fh }); } finally { await this.fs.release(path, fh); }
  }

  async views(names: string[]): Promise<Record<string, unknown>> {
    const out: Record<string, unknown> = {};
    for (const n of names) {
      out[n] = await attempt(async () => {
        const s = await this.fs.getattr(await this.resolve(n, false));
        const v = statValue(s.mode, s.uid, s.gid, Number(s.size), s.nlink);
        return typeName(s.mode) === 'file' ? { ...v, sha256: sha(await this.readAll(await this.resolve(n, false))) } : v;
      });
    }
    for (const [name, h] of this.fds) {
      out[`fd ${name}`] = await attempt(async () => {
        const s = await (this.fs.fgetattr ? this.fs.fgetattr(h.path, h.fh) : this.fs.getattr(h.path));
        return { ...statValue(s.mode, s.uid, s.gid, Number(s.size), s.nlink), sha256: sha(await this.readHeld(h)) };
      });
    }
    return out;
  }

  async closeAll(): Promise<void> {
    for (const h of this.fds.values()) await this.fs.release(h.path, h.fh).catch(() => undefined);
    this.fds.clear();
  }

  async snapshot(): Promise<RawTree> {
    const out: RawTree = {};
    const walk = async (path: string): Promise<void> => {
      const s = await this.fs.getattr(path);
      const e: RawEntry = {
        type: typeName(s.mode), mode: s.mode & 0o7777, uid: s.uid, gid: s.gid, nlink: s.nlink,
        // One filesystem, one device: the union object has no st_dev of its own.
        ino: BigInt(s.ino), dev: 0n, rdev: s.rdev, mtime: s.mtime, xattrs: {},
      };
      for (const n of (await this.fs.listxattr(path)).sort()) {
        e.xattrs[n] = (await this.fs.getxattr(path, n))?.toString('latin1') ?? '';
      }
      if (e.type === 'file') { e.size = Number(s.size); e.sha256 = sha(await this.readAll(path)); }
      if (e.type === 'symlink') e.target = await this.fs.readlink(path);
      out[path] = e;
      if (e.type === 'dir') {
        for (const d of await this.fs.readdir(path)) await walk((path === '/' ? '' : path) + '/' + d.name);
      }
    };
    await walk('/');
    return out;
  }
}
