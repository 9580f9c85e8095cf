/**
 * The engine's device layer (src/engine/device.ts + src/engine/native/) on real mounts,
 * answered by the minimal responder in test/helpers/engine-responder.ts: mount(2) and
 * fusermount3 mounting, requests in and replies out, READ replies from an fd, FUSE
 * passthrough, cache invalidations, and what a killed server leaves behind.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { chmod, chown, lstat, mkdir, open, readFile, stat, writeFile } from 'node:fs/promises';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { attachFuseDevice, fusermountFd, mountFuseDevice, type FuseDevice } from '../../src/engine/device.js';
import { FUSE, serveMinimal, type Responder } from '../helpers/engine-responder.js';
import { startMountProcess } from '../helpers/mount-process.js';
import { forceUnmount, listMounts } from '../helpers/mounts.js';
import { tempDir } from '../helpers/temp.js';

const VITE_NODE = join(import.meta.dirname, '..', '..', 'node_modules', '.bin', 'vite-node');
const RESPONDER_MAIN = join(import.meta.dirname, '..', 'helpers', 'engine-responder-main.ts');
const SUBTYPE = 'layerfs-engine-test';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Fixture {
  dir: string;
  mountpoint: string;
  backingPath: string;
  content: Buffer;
}

/** A mountpoint and a backing file of 3 MiB + a bit (several 1 MiB READs, a short tail). */
async function fixture(): Promise<Fixture> {
  const dir = await tempDir('layerfs-engine-');
  const mountpoint = join(dir, 'mnt');
  await mkdir(mountpoint);
  const backingPath = join(dir, 'backing');
  const content = randomBytes(3 * 1024 * 1024 + 12345);
  await writeFile(backingPath, content);
  return { dir, mountpoint, backingPath, content };
}

async function mountAndServe(
  f: Fixture,
  options: { passthrough: boolean; cacheSeconds?: number; threads?: number; writable?: boolean; passthroughOpens?: number },
): Promise<{ device: FuseDevice; responder: Responder }> {
  const device = await mountFuseDevice({
    mountpoint: f.mountpoint, fsname: 'engine-test', subtype: SUBTYPE, allowOther: false, defaultPermissions: true, rootMode: 0o40755,
  });
  cleanups.push(async () => {
    await device.unmount().catch(() => undefined);
    await forceUnmount(f.mountpoint);
  });
  const responder = serveMinimal(device, { backingPath: f.backingPath, ...options });
  cleanups.push(() => responder.close());
  return { device, responder };
}

const mountsAt = (mountpoint: string) => listMounts().filter((m) => m.mountpoint === mountpoint);
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function until(what: string, check: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`gave up waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('engine device: mount(2), requests and replies', () => {
  it.each([
    ['two reader threads', 2],
    ['the JS thread reading the device', 0],
  ])('mounts, answers INIT/GETATTR/LOOKUP, serves READ from an fd, and unmounts (%s)', async (_, threads) => {
    const f = await fixture();
    const { device, responder } = await mountAndServe(f, { passthrough: false, threads });

    const [entry] = mountsAt(f.mountpoint);
    expect(entry?.fstype).toBe(`fuse.${SUBTYPE}`);
    expect(entry?.source).toBe('engine-test');
    const root = await stat(f.mountpoint);
    expect(root.isDirectory()).toBe(true);
    expect(root.mode & 0o7777).toBe(0o755);
    expect(responder.counts.get(FUSE.INIT)).toBe(1);
    // This machine's kernel (6.18) speaks a protocol with passthrough (7.40+).
    expect(responder.init!.minor).toBeGreaterThanOrEqual(40);

    const read = await readFile(join(f.mountpoint, 'file'));
    expect(read.length).toBe(f.content.length);
    expect(sha256(read)).toBe(sha256(f.content));
    expect(responder.counts.get(FUSE.READ)).toBeGreaterThan(0);
    await expect(stat(join(f.mountpoint, 'absent'))).rejects.toMatchObject({ code: 'ENOENT' });

    await device.unmount();
    await device.closed;
    expect(mountsAt(f.mountpoint)).toEqual([]);
    // Late calls after unmount are dropped, not errors; unmount is idempotent.
    device.reply(12345n, 0, Buffer.alloc(8));
    await device.unmount();
  });

  it.each([0, 2])('answers WRITE off the JS thread (writeToFd): 1 MiB requests, the backing file byte-exact (%i reader threads)', async (threads) => {
    const f = await fixture();
    const { responder } = await mountAndServe(f, { passthrough: false, writable: true, threads });
    const data = randomBytes(2 * 1024 * 1024 + 777);
    const fh = await open(join(f.mountpoint, 'file'), 'r+');
    try {
      const { bytesWritten } = await fh.write(data, 0, data.length, 4096);
      expect(bytesWritten).toBe(data.length);
    } finally {
      await fh.close();
    }
    const expected = Buffer.from(f.content);
    data.copy(expected, 4096);
    expect(sha256(await readFile(f.backingPath))).toBe(sha256(expected));
    expect(responder.counts.get(FUSE.WRITE)).toBeGreaterThanOrEqual(3);
    expect(responder.maxWrite).toBe(1024 * 1024); // max_pages 256
  });

  it.each([2, 0])('ends by itself when the mount is taken away from it (closed resolves; %i reader threads)', async (threads) => {
    const f = await fixture();
    const { device } = await mountAndServe(f, { passthrough: false, threads });
    await stat(join(f.mountpoint, 'file'));
    await forceUnmount(f.mountpoint);
    await device.closed;
    expect(mountsAt(f.mountpoint)).toEqual([]);
  });

  it('a failed mount is a MOUNT_FAILED error with the errno and leaves nothing', async () => {
    const f = await fixture();
    const missing = join(f.dir, 'no-such-dir');
    await expect(
      mountFuseDevice({ mountpoint: missing, fsname: 'engine-test', subtype: SUBTYPE, allowOther: false, defaultPermissions: true, rootMode: 0o40755 }),
    ).rejects.toMatchObject({ code: 'MOUNT_FAILED', errno: 'ENOENT' });
    await expect(
      mountFuseDevice({ mountpoint: f.mountpoint, fsname: 'a,b', allowOther: false, defaultPermissions: true, rootMode: 0o40755 }),
    ).rejects.toMatchObject({ code: 'MOUNT_FAILED' });
    expect(mountsAt(f.mountpoint)).toEqual([]);
  });
});

describe('engine device: passthrough', () => {
  it('with FOPEN_PASSTHROUGH the whole file is read without one READ request', async () => {
    const f = await fixture();
    const { responder } = await mountAndServe(f, { passthrough: true });
    const read = await readFile(join(f.mountpoint, 'file'));
    expect(sha256(read)).toBe(sha256(f.content));
    expect(responder.backingErrors).toEqual([]);
    expect(responder.init!.flags2 & (1 << 5)).not.toBe(0); // the kernel offered FUSE_PASSTHROUGH
    expect(responder.counts.get(FUSE.OPEN)).toBe(1);
    expect(responder.counts.get(FUSE.READ) ?? 0).toBe(0);
    // RELEASE follows close(2) asynchronously; the responder then closes the backing id.
    await until('RELEASE closed the backing id', () => responder.backing.size === 0);
  });

  it('the kernel refuses a non-passthrough open of an inode with a passthrough open alive (EIO), and takes it after', async () => {
    // The io-mode rule src/engine/open-files.ts is built on (fs/fuse/iomode.c): while an
    // inode has a backing file, every open of it must be passthrough with that file.
    const f = await fixture();
    const { responder } = await mountAndServe(f, { passthrough: true, passthroughOpens: 1 });
    const file = join(f.mountpoint, 'file');
    const first = await open(file, 'r');
    try {
      await expect(open(file, 'r')).rejects.toMatchObject({ code: 'EIO' });
    } finally {
      await first.close();
    }
    await until('RELEASE closed the backing id', () => responder.backing.size === 0);
    expect(sha256(await readFile(file))).toBe(sha256(f.content)); // a direct-io open now: READ requests
    expect(responder.counts.get(FUSE.READ)).toBeGreaterThan(0);
  });

  it('backingOpen refuses what the kernel refuses: a directory (EISDIR), a bad fd (EBADF)', async () => {
    const f = await fixture();
    const { device } = await mountAndServe(f, { passthrough: true });
    await stat(f.mountpoint); // INIT answered
    const dirFd = openSync(f.dir, 'r');
    try {
      expect(() => device.backingOpen(dirFd)).toThrow(expect.objectContaining({ code: 'EISDIR' }));
    } finally {
      closeSync(dirFd);
    }
    expect(() => device.backingOpen(1_000_000)).toThrow(expect.objectContaining({ code: 'EBADF' }));
    const fileFd = openSync(f.backingPath, 'r');
    try {
      const id = device.backingOpen(fileFd);
      expect(id).toBeGreaterThan(0);
      device.backingClose(id);
      expect(() => device.backingClose(id)).toThrow(expect.objectContaining({ code: 'ENOENT' }));
    } finally {
      closeSync(fileFd);
    }
  });

  it('without FUSE_PASSTHROUGH negotiated in INIT, backingOpen is EPERM', async () => {
    const f = await fixture();
    const { device } = await mountAndServe(f, { passthrough: false });
    await stat(f.mountpoint);
    const fd = openSync(f.backingPath, 'r');
    try {
      expect(() => device.backingOpen(fd)).toThrow(expect.objectContaining({ code: 'EPERM' }));
    } finally {
      closeSync(fd);
    }
  });
});

describe('engine device: cache invalidation', () => {
  it('INVAL_ENTRY and INVAL_INODE make the kernel ask again', async () => {
    const f = await fixture();
    const { device, responder } = await mountAndServe(f, { passthrough: false, cacheSeconds: 3600 });
    const file = join(f.mountpoint, 'file');
    await stat(file);
    await stat(file);
    expect(responder.counts.get(FUSE.LOOKUP)).toBe(1);
    const getattrs = responder.counts.get(FUSE.GETATTR) ?? 0;

    await device.notifyInvalInode(2n, -1n, 0n);
    await stat(file);
    expect(responder.counts.get(FUSE.LOOKUP)).toBe(1);
    expect(responder.counts.get(FUSE.GETATTR)).toBe(getattrs + 1);

    await device.notifyInvalEntry(1n, Buffer.from('file'));
    await stat(file);
    expect(responder.counts.get(FUSE.LOOKUP)).toBe(2);

    // Nothing cached under that name or node: still fine.
    await device.notifyInvalEntry(1n, Buffer.from('never-looked-up'));
    await device.notifyInvalInode(99n, 0n, 0n);
  });
});

describe('engine device: servers that die', () => {
  it('a killed mount(2) server leaves an ENOTCONN mount that the next mount clears', async () => {
    const f = await fixture();
    const proc = await startMountProcess(VITE_NODE, [RESPONDER_MAIN, '--', f.mountpoint, f.backingPath], f.mountpoint);
    proc.child.kill('SIGKILL');
    await once(proc.child, 'exit');
    await expect(lstat(f.mountpoint)).rejects.toMatchObject({ code: 'ENOTCONN' });
    expect(mountsAt(f.mountpoint)).toHaveLength(1);

    const { device } = await mountAndServe(f, { passthrough: false });
    expect(mountsAt(f.mountpoint)).toHaveLength(1);
    expect(sha256(await readFile(join(f.mountpoint, 'file')))).toBe(sha256(f.content));
    await device.unmount();
    expect(mountsAt(f.mountpoint)).toEqual([]);
    await proc.stop();
  });

  it('process.exit() with the device still mounted leaves no mount behind', async () => {
    const f = await fixture();
    const child = spawn(VITE_NODE, [RESPONDER_MAIN, '--', f.mountpoint, f.backingPath, 'exit'], { stdio: ['ignore', 'pipe', 'pipe'] });
    cleanups.push(() => forceUnmount(f.mountpoint));
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    const [code] = await once(child, 'exit');
    expect(out).toContain(`read ${sha256(f.content)}`);
    expect(code).toBe(0);
    expect(mountsAt(f.mountpoint)).toEqual([]);
  });

  it('SIGTERM unmounts: the server detaches and exits 0', async () => {
    const f = await fixture();
    const proc = await startMountProcess(VITE_NODE, [RESPONDER_MAIN, '--', f.mountpoint, f.backingPath], f.mountpoint);
    const exited = once(proc.child, 'exit');
    proc.child.kill('SIGTERM');
    const [code] = await exited;
    expect(code).toBe(0);
    expect(mountsAt(f.mountpoint)).toEqual([]);
    await proc.stop();
  });

  it('mounted through fusermount3 (auto_unmount), a killed server leaves no mount at all', async () => {
    const f = await fixture();
    const proc = await startMountProcess(VITE_NODE, [RESPONDER_MAIN, '--', f.mountpoint, f.backingPath, 'fusermount'], f.mountpoint);
    expect(mountsAt(f.mountpoint)[0]?.fstype).toBe(`fuse.${SUBTYPE}`);
    proc.child.kill('SIGKILL');
    await once(proc.child, 'exit');
    await until('fusermount3 unmounted the dead server', () => mountsAt(f.mountpoint).length === 0);
    await proc.stop();
  });
});

describe('engine device: mounting and serving apart (fusermountFd + attachFuseDevice)', () => {
  const request = (f: Fixture) => ({
    mountpoint: f.mountpoint, fsname: 'engine-test', subtype: SUBTYPE, allowOther: false, defaultPermissions: true, rootMode: 0o40755,
  });

  it('a child serves the inherited fd; its unmount leaves the mount to the parent, whose release removes it', async () => {
    const f = await fixture();
    const made = fusermountFd(request(f));
    cleanups.push(async () => {
      made.release();
      await forceUnmount(f.mountpoint);
    });
    expect(mountsAt(f.mountpoint)[0]?.fstype).toBe(`fuse.${SUBTYPE}`);
    const child = spawn(VITE_NODE, [RESPONDER_MAIN, '--', f.mountpoint, f.backingPath, 'attach-fd=3'], { stdio: ['ignore', 'pipe', 'pipe', made.fd] });
    closeSync(made.fd); // the child has its own copy now
    const exited = once(child, 'exit');
    cleanups.push(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    let out = '';
    let err = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    await until(`the child serves (${err})`, () => out.includes('read ') || child.exitCode !== null);
    expect(out).toContain(`read ${sha256(f.content)}`);

    child.kill('SIGTERM');
    const [code] = await exited;
    expect({ code, err }).toEqual({ code: 0, err: '' });
    // The child stopped serving; the mount is still the parent's to remove.
    expect(out).toContain('left 1');
    made.release();
    await until('fusermount3 removed the mount', () => mountsAt(f.mountpoint).length === 0);
  });

  it('attachFuseDevice with detach (the default) unmounts like mountFuseDevice', async () => {
    const f = await fixture();
    const made = fusermountFd(request(f));
    cleanups.push(() => made.release());
    const device = attachFuseDevice(made.fd, f.mountpoint);
    const responder = serveMinimal(device, { backingPath: f.backingPath, passthrough: false });
    cleanups.push(() => responder.close());
    expect(sha256(await readFile(join(f.mountpoint, 'file')))).toBe(sha256(f.content));
    await device.unmount();
    expect(mountsAt(f.mountpoint)).toEqual([]);
  });
});

describe('engine device: non-root', () => {
  it('uid 1000 mounts through fusermount3, reads its file, and unmounts on SIGTERM', async () => {
    const f = await fixture();
    // The user's own mountpoint, reachable through the (root-owned, 0700) temp dir.
    await chmod(f.dir, 0o755);
    await chmod(f.backingPath, 0o644);
    await chown(f.mountpoint, 1000, 1000);
    // This machine's /dev/fuse is 0600 (a container's device node; distributions ship 0666)
    // and fusermount3 opens it with the user's rights. A private mount namespace gets a
    // 0666 node of the same device bound over it; nothing outside that namespace changes.
    const node = join(f.dir, 'fuse');
    await new Promise<void>((resolve, reject) => {
      const mk = spawn('mknod', ['-m', '666', node, 'c', '10', '229'], { stdio: 'ignore' });
      mk.on('error', reject);
      mk.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`mknod exited ${code}`))));
    });
    const script = `mount --bind ${node} /dev/fuse && exec setpriv --reuid=1000 --regid=1000 --clear-groups "$@"`;
    const child = spawn('unshare', ['-m', '--propagation', 'private', 'sh', '-c', script, 'sh', VITE_NODE, RESPONDER_MAIN, '--', f.mountpoint, f.backingPath, 'fusermount'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const exited = once(child, 'exit');
    cleanups.push(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    await until(`the uid 1000 server is ready (${err})`, () => out.includes('read ') || child.exitCode !== null);
    expect(out).toContain(`read ${sha256(f.content)}`);

    // The mount lives in the child's namespace, made by fusermount3 for uid 1000.
    const theirs = readFileSync(`/proc/${child.pid}/mountinfo`, 'utf8').split('\n').find((l) => l.includes(` ${f.mountpoint} `));
    expect(theirs).toContain(`fuse.${SUBTYPE}`);
    expect(theirs).toContain('user_id=1000');
    expect(mountsAt(f.mountpoint)).toEqual([]); // not in ours

    child.kill('SIGTERM');
    const [code] = await exited;
    expect({ code, err }).toEqual({ code: 0, err: '' });
    expect(out).toContain('left 0');
  });
});
