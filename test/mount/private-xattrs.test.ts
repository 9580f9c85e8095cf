/**
 * layerfs's private xattr (the origin inode number of a copied-up object) hidden from the
 * kernel's overlayfs (issue 12 point 9): it is stored as `trusted.overlay.layerfs.origin`
 * (`user.overlay.…` rootless), under the prefix the kernel keeps to itself, so the writable
 * layer a layerfs mount wrote, mounted by the kernel, lists no layerfs name — not after a
 * copy-up, not after a lower directory was renamed. st_ino still survives copy-up and
 * remount, also for a writable layer that kept the origin under its old name
 * (`trusted.layerfs.origin`), and a caller's own `trusted.overlay.layerfs.origin` is its
 * own xattr (escaped, as the kernel does), which changes no inode number.
 */
import { execFile } from 'node:child_process';
import { appendFile, mkdir, rename, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, inject, it } from 'vitest';
import { LEGACY_ORIGIN_XATTR, ORIGIN_XATTR, OVERLAY_XATTR_NS } from '../../src/overlay/index.js';
import { sys } from '../../src/union/sys.js';
import { makeLayers, type TestLayers } from '../helpers/layers.js';
import { mountKernelOverlay, unmountKernelOverlay } from '../helpers/oracle.js';
import { tempDir } from '../helpers/temp.js';
import { mountUnion } from '../helpers/union-mount.js';

const run = promisify(execFile);
const NS = OVERLAY_XATTR_NS;

/** Serves `layers` with layerfs while `fn` runs. */
async function withLayerfs<T>(layers: TestLayers, engine: string, fn: (mnt: string) => Promise<T>): Promise<T> {
  const dir = await tempDir('layerfs-privx-');
  const m = await mountUnion({ lowerDirs: layers.lowers, upperDir: layers.upper, workDir: layers.work }, dir, { LAYERFS_ENGINE: engine });
  try {
    return await fn(m.mountpoint);
  } finally {
    await m.stop();
  }
}

/** Mounts the kernel's overlayfs over the same layers while `fn` runs. */
async function withKernel<T>(layers: TestLayers, fn: (mnt: string) => Promise<T>): Promise<T> {
  const mnt = join(layers.root, 'kmnt');
  await mkdir(mnt, { recursive: true });
  await mountKernelOverlay(layers.lowers, layers.upper, layers.work, mnt);
  try {
    return await fn(mnt);
  } finally {
    await unmountKernelOverlay(mnt);
  }
}

/** Every xattr name below `mnt`, as `getfattr -R -d -m -` prints them (no symlinks followed). */
async function allXattrs(mnt: string): Promise<string> {
  const { stdout } = await run('getfattr', ['-R', '-P', '-h', '-d', '-m', '-', '.'], { cwd: mnt });
  return stdout;
}

const inoOf = async (p: string): Promise<number> => (await stat(p)).ino;

describe.skipIf(!inject('canMount'))('layerfs private xattrs under the kernel-hidden overlay prefix', () => {
  for (const engine of ['layerfs', 'fuse-native']) {
    it(`leaves no layerfs name visible to the kernel's overlayfs, and keeps st_ino (${engine} engine)`, async () => {
      const layers = await makeLayers([{ 'a/file': 'lower\n', 'd/sub/x': 'x\n', 'keep': 'k\n' }]);
      try {
        const before = await withLayerfs(layers, engine, async (mnt) => {
          const ino = { file: await inoOf(join(mnt, 'a/file')), d: await inoOf(join(mnt, 'd')), sub: await inoOf(join(mnt, 'd/sub')) };
          await appendFile(join(mnt, 'a/file'), 'upper\n'); // copy-up of a/ and a/file
          await rename(join(mnt, 'd'), join(mnt, 'd2')); // a lower directory renamed: copy-up + redirect
          // A caller's own name: escaped like any overlay name, no inode number of ours.
          await sys.lsetxattr(join(mnt, 'keep'), `${NS}.overlay.layerfs.origin`, Buffer.from('12345'));
          expect(await inoOf(join(mnt, 'a/file'))).toBe(ino.file);
          expect(await inoOf(join(mnt, 'd2'))).toBe(ino.d);
          // Through layerfs the mark is neither listed nor readable.
          for (const p of ['a/file', 'd2', 'a']) {
            expect((await sys.llistxattr(join(mnt, p))).filter((n) => n.includes('layerfs'))).toEqual([]);
            expect(await sys.lgetxattr(join(mnt, p), ORIGIN_XATTR)).toBeNull();
          }
          expect(await sys.lgetxattr(join(mnt, 'keep'), `${NS}.overlay.layerfs.origin`)).toEqual(Buffer.from('12345'));
          return ino;
        });
        // On disk: the mark under the hidden prefix, the caller's name escaped beside it.
        expect(await sys.lgetxattr(join(layers.upper, 'a/file'), ORIGIN_XATTR)).not.toBeNull();
        expect(await sys.lgetxattr(join(layers.upper, 'd2'), ORIGIN_XATTR)).not.toBeNull();
        expect(await sys.lgetxattr(join(layers.upper, 'a/file'), LEGACY_ORIGIN_XATTR)).toBeNull();
        expect(await sys.lgetxattr(join(layers.upper, 'keep'), `${NS}.overlay.overlay.layerfs.origin`)).toEqual(Buffer.from('12345'));

        await withKernel(layers, async (kmnt) => {
          expect(await run('cat', ['a/file', 'd2/sub/x'], { cwd: kmnt }).then((r) => r.stdout)).toBe('lower\nupper\nx\n');
          const listed = await allXattrs(kmnt);
          // Only the caller's own name, shown unescaped as by layerfs.
          expect(listed.match(/^[a-z]+\.[^=\n]*/gm) ?? []).toEqual([`${NS}.overlay.layerfs.origin`]);
          for (const p of ['a/file', 'd2', 'a']) expect(await sys.llistxattr(join(kmnt, p))).toEqual([]);
        });

        // A new layerfs mount reads the mark: the numbers of the first mount.
        await withLayerfs(layers, engine, async (mnt) => {
          expect(await inoOf(join(mnt, 'a/file'))).toBe(before.file);
          expect(await inoOf(join(mnt, 'd2'))).toBe(before.d);
          expect(await inoOf(join(mnt, 'd2/sub'))).toBe(before.sub);
          expect(await sys.lgetxattr(join(mnt, 'keep'), `${NS}.overlay.layerfs.origin`)).toEqual(Buffer.from('12345'));
        });

        // A writable layer written before the move keeps the mark under the old name.
        for (const p of ['a/file', 'd2']) {
          const real = join(layers.upper, p);
          await sys.lsetxattr(real, LEGACY_ORIGIN_XATTR, (await sys.lgetxattr(real, ORIGIN_XATTR))!);
          await sys.lremovexattr(real, ORIGIN_XATTR);
        }
        await withLayerfs(layers, engine, async (mnt) => {
          expect(await inoOf(join(mnt, 'a/file'))).toBe(before.file);
          expect(await inoOf(join(mnt, 'd2'))).toBe(before.d);
          expect((await sys.llistxattr(join(mnt, 'a/file'))).filter((n) => n.includes('layerfs'))).toEqual([]);
          expect(await sys.lgetxattr(join(mnt, 'a/file'), LEGACY_ORIGIN_XATTR)).toBeNull();
          // A caller still may not write the old name (it would forge an inode number).
          await expect(sys.lsetxattr(join(mnt, 'a/file'), LEGACY_ORIGIN_XATTR, Buffer.from('1'))).rejects.toMatchObject({ code: 'EPERM' });
        });
      } finally {
        await layers.cleanup();
      }
    });
  }
});
