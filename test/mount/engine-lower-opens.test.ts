/**
 * Read-only opens of lower files answered in the layerfs engine's request loop (C) once
 * the file is registered — at its LOOKUP, or at its first open when the kernel found the
 * name another way (src/engine/lower-opens.ts, native-notes/engine.md "Lower opens in C"), on
 * real mounts: the bytes are the file's, OPEN, RELEASE and GETATTR stop reaching JS, no descriptor stays
 * open in the mount process, and every change of what a name resolves to (copy-up, unlink,
 * rename over it, rename of its directory) gives the next open the new object, as on the
 * kernel's overlayfs. Requests reaching JS are counted with LAYERFS_TRACE_OPS.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { appendFile, chmod, mkdir, open, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, inject, it } from 'vitest';
import { engineMount, kernelMount, traced } from '../helpers/engine-mounts.js';
import type { LayerSpec } from '../helpers/layers.js';
import { tempDir } from '../helpers/temp.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

const openFds = (pid: number) => readdirSync(`/proc/${pid}/fd`).length;

/** RELEASE reaches the engine after close(2) returned: wait until the count settles at `want`. */
async function fdsSettle(pid: number, want: number): Promise<number> {
  let n = openFds(pid);
  for (let i = 0; i < 100 && n !== want; i++) {
    await new Promise((r) => setTimeout(r, 20));
    n = openFds(pid);
  }
  return n;
}

describe.skipIf(!inject('canMount'))('lower opens answered by the layerfs engine\'s request loop', () => {
  it('serves read-only opens of lower files, and GETATTR, without JS: same bytes, no descriptor left', async () => {
    const files: Record<string, Buffer> = {};
    for (let i = 0; i < 300; i++) files[`d${i % 10}/f${i}`] = randomBytes((i * 997) % 20000);
    const dir = await tempDir('layerfs-lower-opens-trace-');
    const trace = join(dir, 'ops');
    const m = await engineMount([Object.fromEntries(Object.entries(files).map(([n, content]) => [n, { content }]))], { LAYERFS_TRACE_OPS: trace });
    try {
      const names = Object.keys(files);
      const fds = openFds(m.pid);
      const readAll = async () => {
        for (const name of names) expect(sha(await readFile(join(m.mnt, name)))).toBe(sha(files[name]!));
        // Descriptors held at once, several per file, closed out of order.
        const held = await Promise.all(names.slice(0, 50).flatMap((n) => [open(join(m.mnt, n), 'r'), open(join(m.mnt, n), 'r')]));
        for (const h of held.reverse()) await h.close();
        expect(await fdsSettle(m.pid, fds)).toBe(fds);
        return traced(trace);
      };
      // Each name's LOOKUP registered its file: no open reached JS, and none of the
      // GETATTRs that `readFile`'s fstat sends after a read (a read invalidates the
      // kernel's atime).
      let ops = await readAll();
      expect(ops.get('open') ?? 0).toBe(0);
      expect(ops.get('getattr') ?? 0).toBeLessThan(20);
      // A new name changes nothing registered (lower-opens.ts ADDS_NAME), nor does its
      // removal (CHANGES_ONE: its own registration only): still no open.
      await writeFile(join(m.mnt, 'changed'), 'x');
      await unlink(join(m.mnt, 'changed'));
      // Its RELEASE reaches the engine after close(2) returned: counted before, not below.
      expect(await fdsSettle(m.pid, fds)).toBe(fds);
      const created = await traced(trace);
      ops = await readAll();
      expect((ops.get('open') ?? 0) - (created.get('open') ?? 0)).toBe(0);
      // A file's rename ends its own registrations only: still no open.
      await writeFile(join(m.mnt, 'changed'), 'x');
      expect(await fdsSettle(m.pid, fds)).toBe(fds);
      await rename(join(m.mnt, 'changed'), join(m.mnt, 'renamed'));
      const renamed = await traced(trace);
      ops = await readAll();
      expect((ops.get('open') ?? 0) - (renamed.get('open') ?? 0)).toBe(0);
      // A directory's rename ends every registration; the names stay in the kernel's cache
      // (no LOOKUP), so each file's next open reaches JS, which registers it and hands that
      // open to the loop too (its handle released at once): the next rounds add nothing.
      await mkdir(join(m.mnt, 'new-dir'));
      await rename(join(m.mnt, 'new-dir'), join(m.mnt, 'renamed-dir'));
      const before = await traced(trace);
      for (let round = 0; round < 3; round++) {
        ops = await readAll();
        expect((ops.get('open') ?? 0) - (before.get('open') ?? 0)).toBe(names.length);
        expect((ops.get('release') ?? 0) - (before.get('release') ?? 0)).toBe(names.length);
        expect(ops.get('getattr') ?? 0).toBeLessThan(20);
      }
    } finally {
      await m.close();
    }
  });

  it('gives the next open the new object after a copy-up, unlink or rename, as the kernel overlayfs does', async () => {
    const specs: LayerSpec[] = [{ keep: 'keep lower', cp: 'cp lower', gone: 'gone lower', moved: 'moved lower', lo: 'lo lower', 'dir/x': 'x lower', 'dir/y': 'y lower' }];
    const probe = async (mnt: string) => {
      const p = (n: string) => join(mnt, n);
      const read = (n: string) => readFile(p(n), 'latin1').catch((e: NodeJS.ErrnoException) => e.code);
      const out: unknown[] = [];
      // Twice each: on the engine both opens are the request loop's (registered at LOOKUP).
      for (const n of ['keep', 'cp', 'gone', 'moved', 'lo', 'dir/x', 'dir/y']) out.push(await read(n), await read(n));
      // A write open while a read-only descriptor (the request loop's) is held.
      const held = await open(p('keep'), 'r');
      await appendFile(p('keep'), '+more');
      out.push(await read('keep'), await read('keep'));
      const heldSees = (await held.readFile()).toString('latin1');
      await held.close();
      await chmod(p('cp'), 0o600);
      out.push(((await stat(p('cp'))).mode & 0o7777).toString(8), await read('cp'));
      await writeFile(p('cp'), 'cp new');
      out.push(await read('cp'), await read('cp'));
      await unlink(p('gone'));
      out.push(await read('gone'));
      await rename(p('lo'), p('moved'));
      out.push(await read('moved'), await read('moved'), await read('lo'));
      await rename(p('dir'), p('dir2'));
      out.push(await read('dir2/x'), await read('dir2/x'), await read('dir/x'));
      // fstat of a descriptor (the request loop's on the engine) whose last name is gone.
      out.push(await read('dir2/y'));
      const h2 = await open(p('dir2/y'), 'r');
      await unlink(p('dir2/y'));
      const st = await h2.stat();
      out.push({ nlink: st.nlink, size: st.size, content: (await h2.readFile()).toString('latin1') });
      await h2.close();
      return { out, heldSees };
    };
    const k = await kernelMount(specs);
    const dir = await tempDir('layerfs-lower-opens-trace-');
    const trace = join(dir, 'ops');
    const m = await engineMount(specs, { LAYERFS_TRACE_OPS: trace });
    try {
      const want = await probe(k.mnt);
      const got = await probe(m.mnt);
      expect(got.out).toEqual(want.out);
      // Known difference read-only-fd-stays-on-lower: the held descriptor keeps the lower file.
      expect(want.heldSees).toBe('keep lower+more');
      expect(got.heldSees).toBe('keep lower');
      // The request loop answered the second read of each file, and the held descriptor.
      const opens = (await readFile(trace, 'latin1')).split('\n').filter((l) => l.startsWith('open '));
      const count = (path: string) => opens.filter((l) => l === `open ${path}`).length;
      // Its LOOKUP registered it: both opens were the request loop's.
      expect(count('/dir/x')).toBe(0);
      // The append and its retry, two reads of the copy (not a lower file).
      expect(count('/keep')).toBe(4);
      // The first open after a change (the rename) registers it again; the second is C's.
      expect(count('/dir2/x')).toBe(1);
      // So the descriptor whose fstat follows the unlink was the request loop's.
      expect(count('/dir2/y')).toBe(1);
    } finally {
      await m.close();
      await k.close();
    }
  });
});
