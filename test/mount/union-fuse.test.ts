/**
 * Union behaviour that only a real FUSE mount can show: the kernel's permission checks
 * (default_permissions, allow_other), inode numbers across remounts and copy-up, one
 * st_dev, big directories, a full writable layer, and changes seen at once by other
 * processes (no stale kernel cache). A copy-up in progress: copy-up-concurrency.test.ts.
 */
import { execFile, spawn } from 'node:child_process';
import { appendFile, chmod, mkdir, open, readFile, readdir, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, inject, it } from 'vitest';
import { makeLayers } from '../helpers/layers.js';
import { mountUnion } from '../helpers/union-mount.js';
import { tempDir } from '../helpers/temp.js';

const run = promisify(execFile);
const asUid1000 = ['setpriv', '--reuid=1000', '--regid=1000', '--clear-groups'];

function as1000(cmd: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(asUid1000[0]!, [...asUid1000.slice(1), ...cmd], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    p.stderr.on('data', (d) => (stderr += d));
    p.on('exit', (code) => resolve({ code, stderr }));
  });
}

describe.skipIf(!inject('canMount'))('union over a real FUSE mount', () => {
  it('lets the kernel check permissions: uid 1000 owns what it creates, cannot read root 0600, loses setuid on write', async () => {
    const dir = await tempDir();
    const layers = await makeLayers([
      {
        'secret': { content: 'root only', mode: 0o600 },
        'shared/': { mode: 0o777 },
        'suid-tool': { content: 'binary', mode: 0o4777 },
      },
    ]);
    const m = await mountUnion({ lowerDirs: layers.lowers, upperDir: layers.upper, workDir: layers.work }, dir);
    try {
      expect((await as1000(['touch', join(m.mountpoint, 'shared', 'mine')])).code).toBe(0);
      const st = await stat(join(m.mountpoint, 'shared', 'mine'));
      expect([st.uid, st.gid]).toEqual([1000, 1000]);
      expect((await stat(join(layers.upper, 'shared', 'mine'))).uid).toBe(1000);
      const denied = await as1000(['cat', join(m.mountpoint, 'secret')]);
      expect(denied.code).not.toBe(0);
      expect(denied.stderr).toMatch(/Permission denied/);
      // A write by a non-owner clears setuid, as the kernel does on local filesystems.
      expect((await as1000(['sh', '-c', `echo x >> ${join(m.mountpoint, 'suid-tool')}`])).code).toBe(0);
      expect((await stat(join(m.mountpoint, 'suid-tool'))).mode & 0o7777).toBe(0o777);
    } finally {
      await m.stop();
      await layers.cleanup();
    }
  });

  it('keeps inode numbers across copy-up and remount, with one st_dev for the whole mount', async () => {
    const dir = await tempDir();
    const layers = await makeLayers([{ 'a/file': 'lower', 'a/link': { hardlink: 'a/file' }, 'b': 'other' }, { 'c': 'bottom' }]);
    const config = { lowerDirs: layers.lowers, upperDir: layers.upper, workDir: layers.work };
    let m = await mountUnion(config, dir);
    let before: Record<string, bigint>;
    try {
      const ino = (p: string) => statSync(join(m.mountpoint, p), { bigint: true }).ino;
      before = { file: ino('a/file'), link: ino('a/link'), b: ino('b'), c: ino('c') };
      expect(before.file).toBe(before.link);
      expect(statSync(join(m.mountpoint, 'a/file')).nlink).toBe(2);
      const devs = new Set(['a', 'a/file', 'b', 'c', '.'].map((p) => statSync(join(m.mountpoint, p)).dev));
      expect(devs.size).toBe(1);
      await appendFile(join(m.mountpoint, 'b'), ' changed');
      expect(ino('b')).toBe(before.b);
    } finally {
      await m.stop();
    }
    m = await mountUnion(config, dir);
    try {
      const ino = (p: string) => statSync(join(m.mountpoint, p), { bigint: true }).ino;
      expect({ file: ino('a/file'), link: ino('a/link'), b: ino('b'), c: ino('c') }).toEqual(before);
    } finally {
      await m.stop();
      await layers.cleanup();
    }
  });

  it('lists a directory of 100,000 lower entries, each name once, with whiteouts hidden', async () => {
    const dir = await tempDir();
    const layers = await makeLayers([{ 'big/gone-0': { whiteout: true } }, {}]);
    await mkdir(join(layers.lowers[1]!, 'big'));
    // Built with a shell loop: 100,000 writeFile calls from the test would take longer.
    await run('sh', ['-c', `cd ${join(layers.lowers[1]!, 'big')} && seq 0 99999 | sed 's/^/f-/' | xargs touch && touch gone-0`]);
    const m = await mountUnion({ lowerDirs: layers.lowers, upperDir: layers.upper, workDir: layers.work }, dir);
    try {
      const names = await readdir(join(m.mountpoint, 'big'));
      expect(names.length).toBe(100_000);
      expect(new Set(names).size).toBe(100_000);
      expect(names).not.toContain('gone-0');
    } finally {
      await m.stop();
      await layers.cleanup();
    }
  }, 180_000);

  it('gives ENOSPC to the writer on a full writable layer and corrupts nothing', async () => {
    const dir = await tempDir();
    const layers = await makeLayers([{ 'keep.txt': 'lower data' }]);
    const small = join(dir, 'small');
    await mkdir(small);
    await run('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', small]);
    try {
      await mkdir(join(small, 'upper'));
      await mkdir(join(small, 'work'));
      const m = await mountUnion({ lowerDirs: layers.lowers, upperDir: join(small, 'upper'), workDir: join(small, 'work') }, dir);
      try {
        await writeFile(join(m.mountpoint, 'ok.txt'), 'fits');
        const big = Buffer.alloc(4 * 1024 * 1024, 7);
        await expect(writeFile(join(m.mountpoint, 'too-big'), big)).rejects.toMatchObject({ code: 'ENOSPC' });
        expect(await readFile(join(m.mountpoint, 'ok.txt'), 'utf8')).toBe('fits');
        expect(await readFile(join(m.mountpoint, 'keep.txt'), 'utf8')).toBe('lower data');
        await unlink(join(m.mountpoint, 'too-big')).catch(() => undefined);
        await writeFile(join(m.mountpoint, 'after.txt'), 'space again');
        expect(await readFile(join(m.mountpoint, 'after.txt'), 'utf8')).toBe('space again');
      } finally {
        await m.stop();
      }
      expect(await readFile(join(layers.lowers[0]!, 'keep.txt'), 'utf8')).toBe('lower data');
    } finally {
      await run('umount', [small]);
      await layers.cleanup();
    }
  });

  it('shows a write, chmod, unlink or rename to another process at once (no stale kernel cache)', async () => {
    const dir = await tempDir();
    const layers = await makeLayers([{ 'f.txt': 'one', 'g.txt': 'gee' }]);
    const m = await mountUnion({ lowerDirs: layers.lowers, upperDir: layers.upper, workDir: layers.work }, dir);
    const peek = async (args: string[]) => (await run(args[0]!, args.slice(1))).stdout.trim();
    try {
      const f = join(m.mountpoint, 'f.txt');
      expect(await peek(['cat', f])).toBe('one');
      const fh = await open(f, 'r+');
      await fh.write('TWO', 0);
      await fh.close();
      expect(await peek(['cat', f])).toBe('TWO');
      await chmod(f, 0o600);
      expect(await peek(['stat', '-c', '%a', f])).toBe('600');
      await rename(join(m.mountpoint, 'g.txt'), join(m.mountpoint, 'h.txt'));
      expect(await peek(['ls', m.mountpoint])).toBe('f.txt\nh.txt');
      await unlink(f);
      expect(await peek(['ls', m.mountpoint])).toBe('h.txt');
    } finally {
      await m.stop();
      await layers.cleanup();
    }
  });

  it('reads and writes with O_DIRECT (dd iflag=direct, oflag=direct), lower and upper files alike', async () => {
    // The kernel sends such I/O to the server as READ/WRITE of unaligned buffers: a backing
    // fd opened with O_DIRECT would refuse them (EINVAL), as it did on fuse-native.
    const dir = await tempDir();
    const data = Buffer.alloc(3 << 20);
    for (let i = 0; i < data.length; i += 4) data.writeUInt32LE(i, i);
    const layers = await makeLayers([{ 'big.bin': { content: data } }]);
    const m = await mountUnion({ lowerDirs: layers.lowers, upperDir: layers.upper, workDir: layers.work }, dir);
    try {
      const out = join(dir, 'read.bin');
      await run('dd', [`if=${join(m.mountpoint, 'big.bin')}`, `of=${out}`, 'iflag=direct', 'bs=64k', 'status=none']);
      expect((await readFile(out)).equals(data)).toBe(true);
      const written = join(m.mountpoint, 'written.bin');
      await run('dd', [`if=${out}`, `of=${written}`, 'oflag=direct', 'bs=64k', 'status=none']);
      await run('dd', [`if=${written}`, `of=${out}`, 'iflag=direct', 'bs=64k', 'status=none']);
      expect((await readFile(out)).equals(data)).toBe(true);
      expect((await readFile(join(layers.upper, 'written.bin'))).equals(data)).toBe(true);
    } finally {
      await m.stop();
      await layers.cleanup();
    }
  });

  it('keeps serving after SIGUSR2 (the request-count signal), whatever the engine', async () => {
    const dir = await tempDir();
    const layers = await makeLayers([{ 'f': 'lower' }]);
    const m = await mountUnion({ lowerDirs: layers.lowers, upperDir: layers.upper, workDir: layers.work }, dir);
    try {
      process.kill(m.pid, 'SIGUSR2');
      await new Promise((r) => setTimeout(r, 300));
      expect(m.child.exitCode ?? m.child.signalCode).toBeNull();
      expect(await readFile(join(m.mountpoint, 'f'), 'utf8')).toBe('lower');
    } finally {
      await m.stop();
      await layers.cleanup();
    }
  });

  it('keeps serving and stops on SIGTERM when nobody reads its log any more (its starter was killed)', async () => {
    const dir = await tempDir();
    const layers = await makeLayers([{ 'f': 'lower' }]);
    const m = await mountUnion({ lowerDirs: layers.lowers, upperDir: layers.upper, workDir: layers.work }, dir);
    try {
      // Our end of its stderr pipe closed: its next log line meets EPIPE. That used to be an
      // uncaught 'error' whose report was another EPIPE, at 100 % CPU, for ever.
      m.child.stderr!.destroy();
      process.kill(m.pid, 'SIGUSR2'); // it logs its request counts
      await new Promise((r) => setTimeout(r, 300));
      expect(m.child.exitCode ?? m.child.signalCode).toBeNull();
      expect(await readFile(join(m.mountpoint, 'f'), 'utf8')).toBe('lower');
    } finally {
      await m.stop(); // SIGTERM, then SIGKILL after 10 s
      await layers.cleanup();
    }
    expect(m.child.signalCode).not.toBe('SIGKILL');
    expect(m.child.exitCode).toBe(0);
  });
});
