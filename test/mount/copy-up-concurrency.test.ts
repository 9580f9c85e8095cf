/**
 * A copy-up in progress does not hold up other requests: lookups, listings and stats of
 * other paths (and of the file being copied) are answered while it runs, through the
 * union object and through a real FUSE mount. (Other *changes* do wait: one mutex covers
 * namespace changes and copy-ups, src/union/README.md "Locking"; the kernel's overlayfs
 * copies data without a mount-wide lock.)
 * The copy-up is held open deterministically, not made long: the lower layer lives on the
 * probe filesystem (test/helpers/probe-filesystem.ts), whose reads of /gated/big wait until
 * the test sends SIGUSR1. The test waits for that first read (the copy-up has started),
 * makes its calls, checks the copy-up has still not finished, and only then releases it.
 */
import { appendFile, mkdir, readFile, readdir, stat } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, inject, it } from 'vitest';
import { UnionFilesystem } from '../../src/union/union-fs.js';
import { ROOT } from '../helpers/layers.js';
import { startMountProcess, type MountProcess } from '../helpers/mount-process.js';
import { tempDir } from '../helpers/temp.js';
import { mountUnion } from '../helpers/union-mount.js';

const VITE_NODE = join(import.meta.dirname, '..', '..', 'node_modules', '.bin', 'vite-node');
const PROBE_MAIN = join(import.meta.dirname, '..', 'helpers', 'probe-main.ts');
const BIG = 1024 * 1024;

interface GatedLower {
  /** The lower layer: /gated of the probe mount (big, other/a). */
  lower: string;
  upper: string;
  work: string;
  probe: MountProcess;
  /** Resolves once the copy-up's first read of big has reached the probe (and waits there). */
  readStarted(): Promise<void>;
  /** Lets every read of big through. */
  release(): void;
}

async function gatedLower(): Promise<GatedLower> {
  const dir = await tempDir();
  const [pmnt, upper, work, log] = [join(dir, 'probe'), join(dir, 'upper'), join(dir, 'work'), join(dir, 'probe.log')];
  await Promise.all([mkdir(pmnt), mkdir(upper), mkdir(work)]);
  const probe = await startMountProcess(VITE_NODE, [PROBE_MAIN, '--', pmnt, log, '0'], pmnt);
  return {
    lower: join(pmnt, 'gated'),
    upper,
    work,
    probe,
    async readStarted() {
      // A hang guard, not a timing assertion: the read comes as soon as the copy-up starts.
      for (let i = 0; i < 6000; i++) {
        if (existsSync(log) && (await readFile(log, 'utf8')).includes('"/gated/big"')) return;
        await new Promise((r) => setTimeout(r, 10));
      }
      throw new Error('the copy-up never read the gated lower file');
    },
    release: () => process.kill(probe.pid, 'SIGUSR1'),
  };
}

describe.skipIf(!inject('canMount'))('a copy-up in progress', () => {
  it('does not hold up lookups, listings or stats of the union object', async () => {
    const g = await gatedLower();
    const u = await UnionFilesystem.open({ lowerDirs: [g.lower], upperDir: g.upper, workDir: g.work });
    try {
      let copied = false;
      const copy = u.chmod('/big', 0o600, ROOT).then(() => (copied = true));
      await g.readStarted();
      expect((await u.getattr('/other/a')).size).toBe(1);
      expect((await u.readdir('/other')).map((e) => e.name)).toEqual(['a']);
      expect(Number((await u.getattr('/big')).size)).toBe(BIG);
      expect(copied).toBe(false);
      g.release();
      await copy;
      expect((await u.getattr('/big')).mode & 0o7777).toBe(0o600);
      expect((await readFile(join(g.upper, 'big'))).equals(Buffer.alloc(BIG, 0x67))).toBe(true);
    } finally {
      g.release();
      await u.destroy();
      await g.probe.stop();
    }
  });

  it('does not hold up other requests to a FUSE mount', async () => {
    const g = await gatedLower();
    const dir = await tempDir();
    const m = await mountUnion({ lowerDirs: [g.lower], upperDir: g.upper, workDir: g.work }, dir);
    try {
      let copied = false;
      const copy = appendFile(join(m.mountpoint, 'big'), 'x').then(() => (copied = true));
      await g.readStarted();
      expect((await stat(join(m.mountpoint, 'other', 'a'))).size).toBe(1);
      expect(await readdir(m.mountpoint)).toEqual(expect.arrayContaining(['big', 'other']));
      expect(await readFile(join(m.mountpoint, 'other', 'a'), 'utf8')).toBe('a');
      expect((await stat(join(m.mountpoint, 'big'))).size).toBe(BIG);
      expect(copied).toBe(false);
      g.release();
      await copy;
      expect((await stat(join(m.mountpoint, 'big'))).size).toBe(BIG + 1);
    } finally {
      g.release();
      await m.stop();
      await g.probe.stop();
    }
  });
});
