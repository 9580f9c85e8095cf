/**
 * The union oracle SUITE: the same scenarios and the same fast-check property, run on
 * the kernel's overlayfs and on any layerfs subject a factory provides — the union object
 * called directly (test/mount/union-oracle.test.ts) or, later, a real layerfs FUSE mount
 * (a factory that mounts layerfs over `layers` and returns an `FsSubject` on it).
 *
 * For every sequence: op results and errno names must agree; the final trees must agree;
 * after `close()`, the kernel overlayfs mounted over the subject's upper must show the
 * subject's tree (on-disk format), and layerfs's union over the kernel's upper must show
 * the kernel's tree (reading the kernel's format).
 */
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import fc from 'fast-check';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { UnionFilesystem } from '../../src/union/union-fs.js';
import { makeLayers, type LayerSpec, type TestLayers } from './layers.js';
import {
  applyAll, FsSubject, mountKernelOverlay, UMASK, unmountKernelOverlay, UnionSubject, type Op, type Subject,
  type TreeSnapshot,
} from './oracle.js';

/** A layerfs subject set up over test layers. */
export interface SubjectUnderTest {
  subject: Subject;
  /** Ends the subject (unmounts a FUSE mount) so its upper can be mounted by the kernel. */
  close(): Promise<void>;
}

/** Builds the subject over `layers` (writable layer: layers.upper, work dir: layers.work). */
export type SubjectFactory = (layers: TestLayers) => Promise<SubjectUnderTest>;

/** The factory for the union object itself. */
export const directUnionFactory: SubjectFactory = async (l) => {
  const u = await UnionFilesystem.open({ lowerDirs: l.lowers, upperDir: l.upper, workDir: l.work });
  return { subject: new UnionSubject('layerfs', u), close: () => u.destroy() };
};

/** Three lower layers (top first) with whiteouts, opaque dirs, hard links, symlinks, suid files, a fifo. */
export const BASE: LayerSpec[] = [
  {
    'a': 'top-a',
    'd/': {},
    'd/x': 'dx',
    'gone': { whiteout: true },
    'o/': { opaque: true },
    'o/n': 'new',
    'hl1': { content: 'linked', mode: 0o600, uid: 7 },
    'hl2': { hardlink: 'hl1' },
    'sl': { symlink: 'a' },
    'sd': { symlink: 'd' },
    'x/': { mode: 0o750, uid: 1000, gid: 1000 },
    'x/suid': { content: 'bin', mode: 0o4755, xattrs: { 'user.tag': 'v1' } },
  },
  {
    'a': 'bottom-a',
    'b': { content: 'bb', xattrs: { 'user.b': 'bee' } },
    'd/y': 'dy',
    'd/sub/z': 'zz',
    'gone': 'ghost',
    'o/old': 'hidden',
    'e/f': 'ef',
    'e/g/h': 'deep',
    'fifo': { fifo: true },
    'one/f': 'only child',
  },
  {
    'd/x': 'deepest-x',
    'd/w': 'deep-w',
    'o/old2': 'hidden too',
    'one/g': 'gg',
    'b': 'deep-b',
    'z/': { mode: 0o700 },
  },
];


/** What a subject can do beyond the common ground. */
export interface SuiteOptions {
  /** renameat2(RENAME_EXCHANGE) reaches the subject (default true). */
  renameExchange?: boolean;
}

/** Registers the oracle suite for the subject `factory` makes. */
export function defineUnionOracleSuite(title: string, factory: SubjectFactory, options: SuiteOptions = {}): void {
  const exchange = options.renameExchange ?? true;
  const mounted: string[] = [];
  const opened: SubjectUnderTest[] = [];
  let layers: TestLayers | undefined;
  const tally = { ops: 0, succeeded: 0 };

  const cleanup = async (): Promise<void> => {
    for (const s of opened.splice(0)) await s.close().catch(() => undefined);
    for (const m of mounted.splice(0)) await unmountKernelOverlay(m);
    await layers?.cleanup();
    layers = undefined;
  };

  interface Rig {
    kupper: string;
    kwork: string;
    kernel: FsSubject;
    union: Subject;
    sut: SubjectUnderTest;
    layers: TestLayers;
  }

  const rig = async (specs: LayerSpec[] = BASE): Promise<Rig> => {
    const l = await makeLayers(specs, 'layerfs-oracle-');
    layers = l;
    const kupper = path.join(l.root, 'kupper');
    const kwork = path.join(l.root, 'kwork');
    const mnt = path.join(l.root, 'kmnt');
    await Promise.all([fsp.mkdir(kupper), fsp.mkdir(kwork), fsp.mkdir(mnt)]);
    await mountKernelOverlay(l.lowers, kupper, kwork, mnt);
    mounted.push(mnt);
    const sut = await factory(l);
    opened.push(sut);
    return { kupper, kwork, kernel: new FsSubject('kernel', mnt), union: sut.subject, sut, layers: l };
  };

  /** Runs `ops` on both; returns the mismatches (empty when all agree). */
  const compare = async (r: Rig, allOps: Op[]): Promise<string[]> => {
    const ops = exchange ? allOps : allOps.filter((o) => o.op !== 'exchange');
    const diffs: string[] = [];
    for (const [i, step] of (await applyAll(ops, [r.kernel, r.union])).entries()) {
      const [k, u] = step.results;
      tally.ops++;
      if (k?.ok) tally.succeeded++;
      if (JSON.stringify(k) !== JSON.stringify(u)) {
        diffs.push(`op ${i} ${JSON.stringify(step.op)}: kernel ${JSON.stringify(k)} layerfs ${JSON.stringify(u)}`);
      }
    }
    const [kt, ut] = [await r.kernel.snapshot(), await r.union.snapshot()];
    diffs.push(...treeDiff('kernel', kt, 'layerfs', ut));
    await r.sut.close();
    opened.splice(opened.indexOf(r.sut), 1);
    // layerfs reads the upper the kernel wrote the same way.
    const overKernel = await UnionFilesystem.open({ lowerDirs: r.layers.lowers, upperDir: r.kupper, workDir: r.kwork });
    diffs.push(...treeDiff('kernel', kt, 'layerfs-over-kernel-upper', await new UnionSubject('u2', overKernel).snapshot()));
    await overKernel.destroy();
    // On-disk format: the kernel overlayfs over the same lowers + layerfs's upper agrees.
    const mnt2 = path.join(r.layers.root, 'kmnt2');
    await fsp.mkdir(mnt2, { recursive: true });
    await mountKernelOverlay(r.layers.lowers, r.layers.upper, r.layers.work, mnt2);
    mounted.push(mnt2);
    try {
      const ot = await new FsSubject('kernel-over-layerfs-upper', mnt2).snapshot();
      diffs.push(...treeDiff('kernel-over-layerfs-upper', ot, 'layerfs', ut));
    } finally {
      await unmountKernelOverlay(mnt2);
      mounted.splice(mounted.indexOf(mnt2), 1);
    }
    return diffs;
  };

  describe(title, () => {
    beforeAll(() => {
      process.umask(UMASK);
    });
    afterEach(cleanup);

    it('lookups, reads and listings of the untouched layers agree', async () => {
      const r = await rig();
      const ops: Op[] = ['/', '/d', '/o', '/e', '/x', '/sd'].map((p) => ({ op: 'readdir', path: p }) as Op);
      for (const p of ['/a', '/b', '/gone', '/hl1', '/hl2', '/sl', '/x/suid', '/o/old', '/a/x', '/d']) {
        ops.push({ op: 'stat', path: p }, { op: 'read', path: p });
      }
      // Opening a fifo for reading would block: stat only.
      ops.push({ op: 'stat', path: '/fifo' });
      expect(await compare(r, ops)).toEqual([]);
    });

    it('copy-up by write, append, truncate, chmod, chown, utimens, xattrs keeps metadata', async () => {
      const r = await rig();
      const ops: Op[] = [
        { op: 'write', path: '/d/y', data: 'Y', pos: 1 },
        { op: 'append', path: '/e/g/h', data: '+more' },
        { op: 'truncate', path: '/b', size: 1 },
        { op: 'chmod', path: '/x/suid', mode: 0o711 },
        { op: 'chown', path: '/d/sub/z', uid: 123, gid: 456 },
        { op: 'utimens', path: '/a', sec: 1000, nsec: 5 },
        { op: 'setxattr', path: '/hl1', name: 'user.new', value: 'n' },
        { op: 'removexattr', path: '/b', name: 'user.b' },
        { op: 'removexattr', path: '/a', name: 'user.none' },
        { op: 'write', path: '/sl', data: 'via-link', pos: 0 },
        { op: 'stat', path: '/hl2' },
        { op: 'stat', path: '/hl1' },
      ];
      expect(await compare(r, ops)).toEqual([]);
    });

    it('whiteouts, opaque dirs, renames of lower dirs and files, links and special files', async () => {
      const r = await rig();
      const ops: Op[] = [
        { op: 'unlink', path: '/a' },
        { op: 'readdir', path: '/' },
        { op: 'create', path: '/a', mode: 0o666, data: 'again' },
        { op: 'rmdir', path: '/e' },
        { op: 'rename', path: '/e/g', from: '/e/g', to: '/d/g2' } as Op,
        { op: 'unlink', path: '/e/f' },
        { op: 'rmdir', path: '/e' },
        { op: 'mkdir', path: '/e', mode: 0o777 },
        { op: 'readdir', path: '/e' },
        { op: 'rename', from: '/d', to: '/e/d-moved' },
        { op: 'readdir', path: '/e/d-moved' },
        { op: 'readdir', path: '/e/d-moved/g2' },
        { op: 'rename', from: '/b', to: '/hl2' },
        { op: 'link', from: '/hl1', to: '/hl3' },
        { op: 'stat', path: '/hl3' },
        { op: 'symlink', target: 'hl1', path: '/sym2' },
        { op: 'mkfifo', path: '/p2' },
        { op: 'rename', from: '/o', to: '/x/o2' },
        { op: 'rename', from: '/x', to: '/gone' },
        { op: 'rmdir', path: '/gone/o2' },
        { op: 'unlink', path: '/gone/o2/n' },
        { op: 'rmdir', path: '/gone/o2' },
        { op: 'mkdir', path: '/gone/o2', mode: 0o700 },
        { op: 'readdir', path: '/gone/o2' },
        { op: 'chown', path: '/gone', uid: 0, gid: 100 },
        { op: 'chmod', path: '/gone', mode: 0o2775 },
        { op: 'create', path: '/gone/sg', mode: 0o644, data: 's' },
        { op: 'mkdir', path: '/gone/sgdir', mode: 0o755 },
        { op: 'stat', path: '/gone/sg' },
        { op: 'stat', path: '/gone/sgdir' },
        { op: 'stat', path: '/gone' },
        { op: 'stat', path: '/e' },
        { op: 'stat', path: '/' },
        { op: 'exchange', from: '/e', to: '/hl1' },
        { op: 'exchange', from: '/hl1', to: '/gone/o2' },
        { op: 'readdir', path: '/hl1' },
        { op: 'exchange', from: '/b', to: '/nothing' },
        { op: 'exchange', from: '/sd', to: '/e/d-moved' },
      ];
      expect(await compare(r, ops)).toEqual([]);
    });

    it('xattrs pass through; trusted.overlay.* names are escaped, never taken as markers', async () => {
      const r = await rig();
      const ops: Op[] = [
        { op: 'listxattr', path: '/b' },
        { op: 'getxattr', path: '/b', name: 'user.b' },
        { op: 'setxattr', path: '/a', name: 'trusted.overlay.opaque', value: 'y' },
        { op: 'setxattr', path: '/d', name: 'trusted.overlay.opaque', value: 'y' },
        { op: 'setxattr', path: '/e', name: 'trusted.overlay.redirect', value: '/o' },
        { op: 'setxattr', path: '/e', name: 'trusted.other', value: 'z' },
        { op: 'listxattr', path: '/a' },
        { op: 'listxattr', path: '/d' },
        { op: 'getxattr', path: '/d', name: 'trusted.overlay.opaque' },
        { op: 'readdir', path: '/d' },
        { op: 'readdir', path: '/e' },
        { op: 'removexattr', path: '/d', name: 'trusted.overlay.opaque' },
        { op: 'removexattr', path: '/d', name: 'trusted.overlay.opaque' },
        { op: 'listxattr', path: '/d' },
        { op: 'listxattr', path: '/e' },
        { op: 'removexattr', path: '/x/suid', name: 'user.tag' },
        { op: 'listxattr', path: '/x/suid' },
      ];
      expect(await compare(r, ops)).toEqual([]);
    });

    it('non-UTF-8, 255-byte and too long names behave alike', async () => {
      const r = await rig();
      const long = '/' + 'n'.repeat(255);
      const tooLong = '/' + 'n'.repeat(256);
      const ops: Op[] = [
        { op: 'create', path: '/caf\xe9\xff', mode: 0o644, data: 'bytes' },
        { op: 'mkdir', path: '/d/\x80\x81', mode: 0o755 },
        { op: 'rename', from: '/caf\xe9\xff', to: '/d/\x80\x81/\xfe' },
        { op: 'readdir', path: '/d/\x80\x81' },
        { op: 'create', path: long, mode: 0o644, data: 'l' },
        { op: 'stat', path: long },
        { op: 'create', path: tooLong, mode: 0o644, data: 'l' },
        { op: 'stat', path: tooLong },
        { op: 'rename', from: long, to: '/d' + long },
      ];
      expect(await compare(r, ops)).toEqual([]);
    });

    it('random operation sequences agree (fast-check, fixed seed)', async () => {
      const names = ['/a', '/b', '/c', '/d', '/d/x', '/d/y', '/d/sub', '/d/sub/z', '/d/n', '/e', '/e/f', '/e/g', '/e/g/h',
        '/o', '/o/n', '/o/old', '/gone', '/hl1', '/hl2', '/sl', '/sd', '/sd/x', '/x', '/x/suid', '/n1', '/n1/m', '/one', '/one/f', '/one/g', '/d/w', '/z'];
      const p = fc.constantFrom(...names);
      const data = fc.string({ maxLength: 6 });
      const op: fc.Arbitrary<Op> = fc.oneof(
        fc.record({ op: fc.constant('create' as const), path: p, mode: fc.constantFrom(0o644, 0o600, 0o755), data }),
        fc.record({ op: fc.constant('write' as const), path: p, data, pos: fc.nat(8) }),
        fc.record({ op: fc.constant('append' as const), path: p, data }),
        fc.record({ op: fc.constant('truncate' as const), path: p, size: fc.nat(10) }),
        fc.record({ op: fc.constant('chmod' as const), path: p, mode: fc.constantFrom(0o600, 0o755, 0o4755, 0o1777) }),
        fc.record({ op: fc.constant('chown' as const), path: p, uid: fc.constantFrom(0, 1000), gid: fc.constantFrom(0, 100) }),
        fc.record({ op: fc.constant('utimens' as const), path: p, sec: fc.nat(2_000_000_000), nsec: fc.nat(999_999_999) }),
        fc.record({ op: fc.constant('setxattr' as const), path: p, name: fc.constantFrom('user.a', 'user.b', 'trusted.overlay.opaque'), value: fc.constantFrom('y', 'v') }),
        fc.record({ op: fc.constant('removexattr' as const), path: p, name: fc.constantFrom('user.a', 'user.b', 'trusted.overlay.opaque') }),
        fc.record({ op: fc.constant('listxattr' as const), path: p }),
        fc.record({ op: fc.constant('link' as const), from: p, to: p }),
        fc.record({ op: fc.constant('symlink' as const), target: fc.constantFrom('a', 'd', 'd/x', 'nowhere'), path: p }),
        fc.record({ op: fc.constant('mkdir' as const), path: p, mode: fc.constantFrom(0o755, 0o700) }),
        fc.record({ op: fc.constant('rmdir' as const), path: p }),
        fc.record({ op: fc.constant('unlink' as const), path: p }),
        fc.record({ op: fc.constant('rename' as const), from: p, to: p }),
        ...(exchange ? [fc.record({ op: fc.constant('exchange' as const), from: p, to: p })] : []),
        fc.record({ op: fc.constant('readdir' as const), path: p }),
        fc.record({ op: fc.constant('read' as const), path: p }),
      );
      const seed = Number(process.env.LAYERFS_ORACLE_SEED ?? 20261127);
      const numRuns = Number(process.env.LAYERFS_ORACLE_RUNS ?? 100);
      let failing = '';
      await fc.assert(
        fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 16 }), async (ops) => {
          try {
            const r = await rig();
            const diffs = await compare(r, ops);
            if (diffs.length > 0) failing = `${JSON.stringify(ops)}\n${diffs.join('\n')}`;
            return diffs.length === 0;
          } finally {
            await cleanup();
          }
        }),
        { seed, numRuns, endOnFailure: true },
      ).then(() => {
        // How much the random sequences really did (most ops should not just fail).
        console.log(`oracle: ${tally.succeeded} of ${tally.ops} ops succeeded on the kernel (seed ${seed})`);
      }, (err: unknown) => {
        throw new Error(`oracle property failed (replay: LAYERFS_ORACLE_SEED=${seed}):\n${failing}\n${String(err)}`);
      });
    }, 600_000);
  });
}

/** Differences between two tree snapshots, one line per path. */
export function treeDiff(an: string, a: TreeSnapshot, bn: string, b: TreeSnapshot): string[] {
  const out: string[] = [];
  for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
    const [x, y] = [JSON.stringify(a[k]), JSON.stringify(b[k])];
    if (x !== y) out.push(`tree ${k}: ${an} ${x ?? 'missing'} ${bn} ${y ?? 'missing'}`);
  }
  return out;
}
