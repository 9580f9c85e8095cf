/**
 * The first write open of a small lower file copied up by the layerfs engine's request loop
 * in C (src/engine/native/copy-up-open.c, native-notes/engine.md "Copy-up in the request
 * loop"), on real mounts: the same tree, metadata and errors as the kernel's overlayfs for
 * the files C copies (empty ones at once, ones with data built and flushed on a queue
 * thread) and for those it leaves to JS (more than 64 KiB, xattrs, a set-id bit, another
 * name, a parent not yet copied up), no OPEN reaching JS for the files C copies,
 * st_ino kept through a remount (the origin xattr), the handle C opened usable for
 * fsync, fstat and ftruncate (JS adopted it), and the lower files untouched. A flush made
 * slow on purpose (strace's fault injection on the mount process) shows that the mount goes
 * on answering meanwhile, that a change made meanwhile voids the copy, and that stopping
 * the mount leaves no temp file.
 */
import { execFile, spawn } from 'node:child_process';
import { appendFile, lstat, open, readdir, readFile, unlink } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, inject, it, vi } from 'vitest';
import { againstKernel, traced } from '../helpers/engine-mounts.js';
import { makeLayers, type LayerSpec } from '../helpers/layers.js';
import { tempDir } from '../helpers/temp.js';
import { mountUnion } from '../helpers/union-mount.js';

const run = promisify(execFile);

const specs = (): LayerSpec[] => [
  { 'd/t0': '', 'd/t1': 'top data' },
  {
    'd/keep': 'k',
    ...Object.fromEntries(Array.from({ length: 6 }, (_, i) => [`d/e${i}`, ''])),
    'd/data': 'hello',
    'd/data2': 'more data',
    'd/full': 'f'.repeat(64 * 1024),
    'd/big': 'b'.repeat(64 * 1024 + 1),
    'd/x': { content: '', xattrs: { 'user.a': '1' } },
    'd/s': { content: '', mode: 0o4755 },
    'd/h1': '',
    'd/h2': { hardlink: 'd/h1' },
    'd/meta': { content: '', mode: 0o640, uid: 123, gid: 45, mtime: { sec: 1000, nsec: 5000 } },
    'fresh/f': '',
  },
];

describe.skipIf(!inject('canMount'))('copy-up in the layerfs engine\'s request loop', () => {
  it('copies small lower files at their first write open as the kernel\'s overlayfs does, without an OPEN through JS', async () => {
    const probe = async (mnt: string, checkpoint = async (_: string) => {}) => {
      const p = (n: string) => join(mnt, n);
      const out: unknown[] = [];
      const show = async (n: string, was?: number) => {
        const st = await lstat(p(n));
        out.push(n, st.size, st.mode.toString(8), st.uid, st.gid, st.nlink, was === undefined || st.ino === was, st.mtimeMs > Date.now() - 600_000 ? 'recent' : st.mtimeMs, await readFile(p(n), 'latin1'));
      };
      // The first write below d copies d itself up (JS's part).
      await appendFile(p('d/keep'), 'x');
      const inos = new Map<string, number>();
      for (const n of ['e0', 'e1', 'e2', 'e3', 'e4', 'meta', 't0', 't1', 'data', 'data2', 'full', 'big', 'x', 's', 'h1']) inos.set(n, (await lstat(p(`d/${n}`))).ino);
      await checkpoint('before');
      for (let i = 0; i < 5; i++) await appendFile(p(`d/e${i}`), `+${i}`);
      // Opened for writing, not written: the owner, mode and times are the lower file's.
      await (await open(p('d/meta'), 'r+')).close();
      // O_TRUNC of a file with data: copied empty.
      await (await open(p('d/t1'), 'w')).close();
      await appendFile(p('d/t0'), 't0');
      // With data to flush first (the mount is durable): built on a queue thread.
      await appendFile(p('d/data'), '!');
      await (await open(p('d/full'), 'r+')).close();
      const f2 = await open(p('d/data2'), 'r+');
      try {
        await f2.write('MORE', 0);
      } finally {
        await f2.close();
      }
      await checkpoint('after');
      // JS's: more than 64 KiB, an xattr, a set-id bit, another name; a parent still below.
      for (const n of ['d/big', 'd/x', 'd/s', 'd/h1', 'fresh/f']) await appendFile(p(n), '!');
      for (const [n, ino] of inos) await show(`d/${n}`, ino);
      await show('fresh/f');
      out.push((await readdir(p('d'))).sort());
      // The handle the loop opened, used after the open (JS adopted it).
      const f = await open(p('d/e5'), 'r+');
      try {
        await f.write('abcdef', 0);
        await f.sync();
        await f.truncate(3);
        out.push((await f.stat()).size);
      } finally {
        await f.close();
      }
      await show('d/e5');
      return out;
    };
    const steps = new Map<string, Map<string, number>>();
    const { want, got } = await againstKernel(specs(), (mnt, trace) =>
      probe(mnt, async (step) => {
        if (trace) steps.set(step, await traced(trace));
      }),
    );
    expect(got).toEqual(want);
    const before = steps.get('before')!;
    const after = steps.get('after')!;
    // Eleven copy-ups (five appends, the open of meta, the O_TRUNC, t0, and the three with
    // data): no OPEN or RELEASE reached JS.
    expect((after.get('open') ?? 0) - (before.get('open') ?? 0)).toBe(0);
    expect((after.get('release') ?? 0) - (before.get('release') ?? 0)).toBe(0);
  });

  it('keeps st_ino through a remount, leaves the lower files as they were, and copies in JS with LAYERFS_LOOP_COPY_UP=0', async () => {
    const digest = async (dir: string) =>
      (await run('sh', ['-c', 'find . -type f -print0 | sort -z | xargs -0 sha256sum; find . -printf "%p %m %U %G %T@\\n" | sort'], { cwd: dir })).stdout;
    for (const loop of ['1', '0']) {
      const layers = await makeLayers(specs());
      try {
        const lowers = await Promise.all(layers.lowers.map(digest));
        const trace = join(await tempDir('layerfs-loop-copy-up-'), 'ops');
        const mount = (env: NodeJS.ProcessEnv) =>
          mountUnion({ lowerDirs: layers.lowers, upperDir: layers.upper, workDir: layers.work }, layers.root, { LAYERFS_ENGINE: 'layerfs', ...env });
        const ino = (mnt: string) => Promise.all(['e0', 'e1', 'e2', 'data'].map(async (n) => (await lstat(join(mnt, `d/${n}`))).ino));
        const m = await mount({ LAYERFS_TRACE_OPS: trace, LAYERFS_LOOP_COPY_UP: loop });
        let inos: number[] = [];
        let opens = 0;
        try {
          await appendFile(join(m.mountpoint, 'd/keep'), 'x');
          inos = await ino(m.mountpoint);
          const fds = async () => (await readdir(`/proc/${m.pid}/fd`)).length;
          const held = await fds();
          const before = (await traced(trace)).get('open') ?? 0;
          for (const n of ['e0', 'e1', 'e2', 'data']) await appendFile(join(m.mountpoint, `d/${n}`), 'y');
          opens = ((await traced(trace)).get('open') ?? 0) - before;
          expect(await ino(m.mountpoint)).toEqual(inos);
          // Every copy's descriptor closed again (the kernel sends RELEASE after close returns).
          for (let i = 0; i < 100 && (await fds()) !== held; i++) await new Promise((r) => setTimeout(r, 20));
          expect(await fds()).toBe(held);
        } finally {
          await m.stop();
        }
        expect(opens).toBe(loop === '1' ? 0 : 4);
        expect(await Promise.all(layers.lowers.map(digest))).toEqual(lowers);
        // The same writable layer mounted again: the copies keep the lower numbers (origin).
        const again = await mount({});
        try {
          expect(await ino(again.mountpoint)).toEqual(inos);
          expect(await readFile(join(again.mountpoint, 'd/e1'), 'latin1')).toBe('y');
          expect(await readFile(join(again.mountpoint, 'd/data'), 'latin1')).toBe('helloy');
        } finally {
          await again.stop();
        }
      } finally {
        await layers.cleanup();
      }
    }
  });

  it('answers other requests while a copy\'s flush is out; an unlink meanwhile keeps its whiteout; a stop leaves no temp file', async () => {
    const temps = async (work: string) => (await readdir(work, { recursive: true })).filter((n) => basename(n).startsWith('#c'));
    const poll = { timeout: 3_000, interval: 10 };
    for (const ending of ['unlink', 'stop'] as const) {
      const layers = await makeLayers(specs());
      let tracer: ReturnType<typeof spawn> | undefined;
      try {
        const m = await mountUnion({ lowerDirs: layers.lowers, upperDir: layers.upper, workDir: layers.work }, layers.root, { LAYERFS_ENGINE: 'layerfs' });
        let stopped = false;
        try {
          const p = (n: string) => join(m.mountpoint, n);
          await appendFile(p('d/keep'), 'x');
          await lstat(p('d/data'));
          // Every fdatasync of the mount process takes 3 s more.
          tracer = spawn('strace', ['-f', '-qq', '-p', String(m.pid), '-e', 'trace=fdatasync', '-e', 'inject=fdatasync:delay_enter=3000000', '-o', '/dev/null'], { stdio: ['ignore', 'ignore', 'pipe'] });
          await new Promise((r) => setTimeout(r, 500)); // strace attaches
          const append = appendFile(p('d/data'), '!').then(() => 'written', (e: NodeJS.ErrnoException) => e.code);
          await vi.waitFor(async () => expect(await temps(layers.work)).toHaveLength(1), poll);
          // The mount answers while the flush is out: the temp file is still there after.
          expect((await readdir(p('d'))).length).toBeGreaterThan(10);
          expect(await readFile(p('d/t1'), 'latin1')).toBe('top data');
          expect(await temps(layers.work)).toHaveLength(1);
          if (ending === 'unlink') {
            await unlink(p('d/data'));
            expect(await append).toBe('ENOENT');
            await expect(lstat(p('d/data'))).rejects.toMatchObject({ code: 'ENOENT' });
            const wh = await lstat(join(layers.upper, 'd/data'));
            expect([wh.isCharacterDevice(), wh.rdev]).toEqual([true, 0]);
          } else {
            await m.stop();
            stopped = true;
            expect(await append).not.toBe('written');
          }
          await vi.waitFor(async () => expect(await temps(layers.work)).toHaveLength(0), poll);
          expect(await readFile(join(layers.lowers[1]!, 'd/data'), 'latin1')).toBe('hello');
        } finally {
          tracer?.kill();
          if (!stopped) await m.stop();
        }
      } finally {
        await layers.cleanup();
      }
    }
  });
});
