/**
 * The oracle subject reached through node:fs under a mount point: the kernel's overlayfs,
 * or a layerfs FUSE mount. Every op goes through the kernel's VFS (and its permission
 * checks and caches). Ops of another user ('as') run in a child process with that
 * uid/gid (oracle-user-main.ts), which drives its own FsSubject on the same mount.
 */
import * as fsp from 'node:fs/promises';
import { constants as C } from 'node:fs';
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { sys } from '../../src/union/sys.js';
import {
  attempt, errnoError, NB, RENAME_FLAGS, sha, statValue, typeName, UMASK, type Op, type OpResult,
  type RawEntry, type RawTree, type Subject,
} from './oracle.js';

const VITE_NODE = join(import.meta.dirname, '..', '..', 'node_modules', '.bin', 'vite-node');
const USER_MAIN = join(import.meta.dirname, 'oracle-user-main.ts');

/** A long-lived child process running ops as one uid/gid (started on first use). */
class UserRunner {
  private child: ChildProcess | undefined;
  private pending: ((r: OpResult) => void)[] = [];

  constructor(readonly uid: number, readonly gid: number) {}

  private start(): ChildProcess {
    // setpriv, as a user's shell would be: no supplementary groups, no capabilities.
    const child = spawn('setpriv', [`--reuid=${this.uid}`, `--regid=${this.gid}`, '--clear-groups', VITE_NODE, USER_MAIN], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    createInterface({ input: child.stdout! }).on('line', (line) => this.pending.shift()?.(JSON.parse(line) as OpResult));
    child.on('exit', (code) => {
      for (const p of this.pending.splice(0)) p({ ok: false, errno: `user process exited ${code}` });
    });
    return child;
  }

  apply(root: string, op: Op): Promise<OpResult> {
    this.child ??= this.start();
    return new Promise((resolve) => {
      this.pending.push(resolve);
      this.child!.stdin!.write(JSON.stringify({ root, op }) + '\n');
    });
  }

  async stop(): Promise<void> {
    const c = this.child;
    this.child = undefined;
    if (!c || c.exitCode !== null) return;
    const exited = new Promise((r) => c.on('exit', r));
    c.stdin!.end();
    await exited;
  }
}

/** A subject reached through node:fs under a mount point. */
export class FsSubject implements Subject {
  private readonly fds = new Map<string, fsp.FileHandle>();
  private readonly users = new Map<string, UserRunner>();

  constructor(readonly name: string, readonly root: string) {}

  private p(path: string): Buffer {
    return Buffer.concat([Buffer.from(this.root), Buffer.from(path, 'latin1')]);
  }

  private fd(name: string): fsp.FileHandle {
    const fh = this.fds.get(name);
    if (!fh) throw errnoError('EBADF');
    return fh;
  }

  apply(op: Op): Promise<OpResult> {
    if (op.op === 'as') {
      const key = `${op.uid}:${op.gid}`;
      if (!this.users.has(key)) this.users.set(key, new UserRunner(op.uid, op.gid));
      return this.users.get(key)!.apply(this.root, op.do);
    }
    return attempt(async () => {
      switch (op.op) {
        case 'create': {
          const fh = await fsp.open(this.p(op.path), C.O_WRONLY | C.O_CREAT | C.O_EXCL, op.mode);
          try { await fh.write(Buffer.from(op.data), 0, op.data.length, 0); } finally { await fh.close(); }
          return;
        }
        case 'write': {
          const fh = await fsp.open(this.p(op.path), C.O_WRONLY | NB);
          try { await fh.write(Buffer.from(op.data), 0, op.data.length, op.pos); } finally { await fh.close(); }
          return;
        }
        case 'append': {
          const fh = await fsp.open(this.p(op.path), C.O_WRONLY | C.O_APPEND | NB);
          try { await fh.write(Buffer.from(op.data), 0, op.data.length, null); } finally { await fh.close(); }
          return;
        }
        case 'truncate': return fsp.truncate(this.p(op.path), op.size);
        case 'chmod': return fsp.chmod(this.p(op.path), op.mode);
        case 'chown': return fsp.lchown(this.p(op.path), op.uid, op.gid);
        case 'utimens': {
          const t = { sec: op.sec, nsec: op.nsec };
          return sys.utimens(this.p(op.path), t, t);
        }
        case 'setxattr': return sys.lsetxattr(this.p(op.path), op.name, Buffer.from(op.value, 'latin1'));
        case 'removexattr': return sys.lremovexattr(this.p(op.path), op.name);
        case 'getxattr': return (await sys.lgetxattr(this.p(op.path), op.name))?.toString('latin1') ?? 'ENODATA';
        case 'listxattr': return (await sys.llistxattr(this.p(op.path))).sort();
        case 'link': return fsp.link(this.p(op.from), this.p(op.to));
        case 'symlink': return fsp.symlink(Buffer.from(op.target, 'latin1'), this.p(op.path));
        case 'mkdir': return fsp.mkdir(this.p(op.path), op.mode);
        case 'mkfifo': return sys.mknod(this.p(op.path), C.S_IFIFO | (0o644 & ~UMASK), 0);
        case 'rmdir': return fsp.rmdir(this.p(op.path));
        case 'unlink': return fsp.unlink(this.p(op.path));
        case 'rename':
          return op.flags === undefined ? fsp.rename(this.p(op.from), this.p(op.to)) : sys.renameat2(this.p(op.from), this.p(op.to), RENAME_FLAGS[op.flags]);
        case 'read': return sha(await fsp.readFile(this.p(op.path), { flag: C.O_RDONLY | NB }));
        case 'stat': {
          const s = await fsp.lstat(this.p(op.path));
          return statValue(s.mode, s.uid, s.gid, s.size, s.nlink);
        }
        case 'readdir':
          return (await fsp.readdir(this.p(op.path), { encoding: 'buffer' })).map((b) => b.toString('latin1')).sort();
        case 'open': {
          if (this.fds.has(op.fd)) throw errnoError('EBUSY');
          this.fds.set(op.fd, await fsp.open(this.p(op.path), (op.write ? C.O_RDWR : C.O_RDONLY) | NB));
          return;
        }
        case 'fwrite': {
          await this.fd(op.fd).write(Buffer.from(op.data), 0, op.data.length, op.pos);
          return;
        }
        case 'fstat': {
          const s = await this.fd(op.fd).stat();
          return statValue(s.mode, s.uid, s.gid, s.size, s.nlink);
        }
        case 'ftruncate': return this.fd(op.fd).truncate(op.size);
        case 'fread': return sha(await readAll(this.fd(op.fd)));
        case 'close': {
          const fh = this.fd(op.fd);
          this.fds.delete(op.fd);
          return fh.close();
        }
      }
    });
  }

  async views(names: string[]): Promise<Record<string, unknown>> {
    const out: Record<string, unknown> = {};
    for (const n of names) {
      out[n] = await attempt(async () => {
        const s = await fsp.lstat(this.p(n));
        const v = statValue(s.mode, s.uid, s.gid, s.size, s.nlink);
        return s.isFile() ? { ...v, sha256: sha(await fsp.readFile(this.p(n))) } : v;
      });
    }
    for (const [name, fh] of this.fds) {
      out[`fd ${name}`] = await attempt(async () => {
        const s = await fh.stat();
        return { ...statValue(s.mode, s.uid, s.gid, s.size, s.nlink), sha256: sha(await readAll(fh)) };
      });
    }
    return out;
  }

  async closeAll(): Promise<void> {
    for (const fh of this.fds.values()) await fh.close().catch(() => undefined);
    this.fds.clear();
    for (const u of this.users.values()) await u.stop();
    this.users.clear();
  }

  async snapshot(): Promise<RawTree> {
    const out: RawTree = {};
    const walk = async (path: string): Promise<void> => {
      const real = this.p(path);
      const s = await fsp.lstat(real, { bigint: true });
      const mode = Number(s.mode);
      const e: RawEntry = {
        type: typeName(mode), mode: mode & 0o7777, uid: Number(s.uid), gid: Number(s.gid), nlink: Number(s.nlink),
        ino: s.ino, dev: s.dev, rdev: Number(s.rdev), mtime: { sec: Number(s.mtimeNs / 1_000_000_000n), nsec: Number(s.mtimeNs % 1_000_000_000n) },
        xattrs: {},
      };
      for (const n of (await sys.llistxattr(real)).sort()) {
        e.xattrs[n] = (await sys.lgetxattr(real, n))?.toString('latin1') ?? '';
      }
      if (e.type === 'file') { e.size = Number(s.size); e.sha256 = sha(await fsp.readFile(real)); }
      if (e.type === 'symlink') e.target = (await fsp.readlink(real, { encoding: 'buffer' })).toString('latin1');
      out[path] = e;
      if (e.type === 'dir') {
        for (const b of await fsp.readdir(real, { encoding: 'buffer' })) {
          await walk((path === '/' ? '' : path) + '/' + b.toString('latin1'));
        }
      }
    };
    await walk('/');
    return out;
  }
}

/** A held file's whole content, read from offset 0 (not from the descriptor's position). */
async function readAll(fh: fsp.FileHandle): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for (let pos = 0; ;) {
    const buf = Buffer.alloc(64 * 1024);
    const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
    if (bytesRead === 0) break;
    chunks.push(buf.subarray(0, bytesRead));
    pos += bytesRead;
  }
  return Buffer.concat(chunks);
}
