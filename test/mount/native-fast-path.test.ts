/**
 * The binding's native fast path (patch level 3, layerfs-fast.h): FUSE threads answer
 * lookups, stats, xattr probes, readlink and reads of paths only the read-only layers
 * hold, and do the data I/O of open files, without a round trip to JavaScript. These
 * tests check that it does (the mount's op trace shows what still reaches JS) and that
 * it changes nothing a user can see: the same tree, metadata and errors as the same
 * union served entirely from JS, before and after changes that hide lower paths
 * (copy-up, whiteout, opaque directory, redirected directory rename).
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, inject, it } from 'vitest';
import { makeLayers, type LayerSpec } from '../helpers/layers.js';
import { mountUnion } from '../helpers/union-mount.js';
import { tempDir } from '../helpers/temp.js';

const run = promisify(execFile);
const sh = async (script: string, cwd: string) => (await run('sh', ['-c', script], { cwd, encoding: 'latin1' })).stdout;

const LAYERS: LayerSpec[] = [
  {
    'etc/hostname': 'top\n',
    'etc/cap-tool': { content: 'x', mode: 0o755, xattrs: { 'user.note': 'from the top layer' } },
    'etc/gone': { whiteout: true },
    'usr/': { opaque: true },
    'usr/only-top': 'only\n',
    'lib/link': { symlink: '../etc/hostname' },
  },
  {
    'etc/hostname': 'bottom\n',
    'etc/gone': 'hidden by a whiteout\n',
    'etc/passwd': 'root:x:0:0::/root:/bin/sh\n',
    'etc/sub/deep': 'deep\n',
    'usr/hidden': 'hidden by the opaque dir\n',
    'lib/data.bin': 'd'.repeat(300_000),
    'lib/hard': { hardlink: 'lib/data.bin' },
  },
];

const LISTING = `find . -printf '%p %y %i %m %n %s %U %G %T@ %C@ %l\\n' | sort`;
const XATTRS = `find . -exec getfattr -h -d -m - --absolute-names {} + 2>/dev/null | sort`;

function opsOf(trace: string): string[] {
  return trace.split('\n').filter(Boolean);
}

/** Mounts LAYERS with the request trace on, runs `fn`, and always unmounts. */
/** The fast path lives in the patched fuse-native; the layerfs engine has none (yet), so
 * these tests pin that engine whatever LAYERFS_ENGINE or the default says. */
const FAST_PATH_ENGINE = 'fuse-native' as const;

async function withTracedUnion(fn: (mnt: string, trace: string) => Promise<void>): Promise<void> {
  const dir = await tempDir();
  const layers = await makeLayers(LAYERS);
  const trace = join(dir, 'trace');
  await writeFile(trace, '');
  const m = await mountUnion({ lowerDirs: layers.lowers, upperDir: layers.upper, workDir: layers.work, engine: FAST_PATH_ENGINE }, dir, { LAYERFS_TRACE_OPS: trace });
  try {
    await fn(m.mountpoint, trace);
  } finally {
    await m.stop();
    await layers.cleanup();
  }
}

describe.skipIf(!inject('canMount'))('native fast path', () => {
  it('answers lower-only lookups, stats, xattr probes, readlink and reads without JS', async () => {
    await withTracedUnion(async (mnt, trace) => {
      await sh('stat etc/passwd etc/sub/deep lib/data.bin lib/hard >/dev/null', mnt);
      expect(await sh('cat etc/passwd; readlink lib/link; cat lib/link', mnt)).toBe('root:x:0:0::/root:/bin/sh\n../etc/hostname\ntop\n');
      expect(await sh('getfattr -d --absolute-names etc/passwd; getfattr -n user.note --only-values etc/cap-tool', mnt)).toBe('from the top layer');
      expect(createHash('sha256').update(await readFile(join(mnt, 'lib/data.bin'))).digest('hex')).toBe(
        createHash('sha256').update('d'.repeat(300_000)).digest('hex'),
      );
      expect((await sh('stat etc/missing 2>&1 || true', mnt))).toMatch(/No such file/);
      const reached = opsOf(await readFile(trace, 'latin1'));
      // The root is in the writable layer (a merged directory), so JS answers for it;
      // a file with xattrs has its values read by JS.
      const lowerOnly = reached.filter((l) => !/ \/$/.test(l) && !/^(getxattr|listxattr) \/etc\/cap-tool$/.test(l));
      expect(lowerOnly).toEqual([]);
    });
  });

  it('sends a path to JS once the writable layer holds it or hides it', async () => {
    await withTracedUnion(async (mnt, trace) => {
      await sh('echo more >> etc/passwd && mv etc/sub etc/sub2 && rm -r lib && mkdir lib', mnt);
      await writeFile(trace, '');
      // Kernel caches were updated by the changes themselves; fresh names force lookups.
      expect(await sh('cat etc/passwd', mnt)).toBe('root:x:0:0::/root:/bin/sh\nmore\n');
      expect(await sh('cat etc/sub2/deep; ls -A lib; stat lib/data.bin 2>&1 || true; stat etc/sub/deep 2>&1 || true', mnt)).toMatch(
        /^deep\n(.|\n)*No such file(.|\n)*No such file/,
      );
      await sh('mkdir new && dd if=/dev/zero of=new/file bs=4k count=8 status=none && getfattr -d new/file', mnt);
      const reached = opsOf(await readFile(trace, 'latin1'));
      // The kernel probes security.capability before each write(2): a file made in this
      // mount (under a parent without xattrs) is answered natively.
      expect(reached.filter((l) => l.startsWith('getxattr /new') || l.startsWith('listxattr /new'))).toEqual([]);
      expect(reached).toContain('open /etc/passwd');
      expect(reached).toContain('getattr /etc/sub2/deep');
      expect(reached).toContain('getattr /lib/data.bin');
    });
  });

  it('answers RELEASE at once and still closes every backing fd afterwards', async () => {
    const dir = await tempDir();
    const layers = await makeLayers(LAYERS);
    const m = await mountUnion({ lowerDirs: layers.lowers, upperDir: layers.upper, workDir: layers.work, engine: FAST_PATH_ENGINE }, dir);
    try {
      const fds = () => readdirSync(`/proc/${m.pid}/fd`).length;
      const before = fds();
      await sh('for i in $(seq 300); do echo $i > f$i; cat etc/passwd f$i >/dev/null; echo x >> etc/hostname; done', m.mountpoint);
      expect(await sh('cat f300 && tail -c 2 etc/hostname', m.mountpoint)).toBe('300\nx\n');
      // Releases reach JS after the kernel got its answer: give them a moment to drain.
      for (let i = 0; i < 50 && fds() > before; i++) await new Promise((r) => setTimeout(r, 20));
      expect(fds()).toBeLessThanOrEqual(before);
    } finally {
      await m.stop();
      await layers.cleanup();
    }
  });

  it('shows the same tree, metadata and errors as the union served only by JS, before and after changes', async () => {
    const dir = await tempDir();
    const fast = await makeLayers(LAYERS);
    // The same layers for the JS-only mount: a copy keeping modes, owners, xattrs and mtimes.
    const slow = { lowers: [join(dir, 'slow-l0'), join(dir, 'slow-l1')], upper: join(dir, 'slow-upper'), work: join(dir, 'slow-work') };
    await run('cp', ['-a', fast.lowers[0]!, slow.lowers[0]!]);
    await run('cp', ['-a', fast.lowers[1]!, slow.lowers[1]!]);
    await run('mkdir', [slow.upper, slow.work]);
    const a = await mountUnion({ lowerDirs: fast.lowers, upperDir: fast.upper, workDir: fast.work, engine: FAST_PATH_ENGINE }, join(dir, 'fast'));
    const b = await mountUnion({ lowerDirs: slow.lowers, upperDir: slow.upper, workDir: slow.work, engine: FAST_PATH_ENGINE }, join(dir, 'slow'), { LAYERFS_NATIVE_FAST_PATH: '0' });
    // Inode numbers and ctimes of the two copies differ by nature; the rest must match.
    // Times of what the steps themselves change differ too: they are left out after step 0.
    let withTimes = true;
    const listing = async (mnt: string) =>
      (await sh(LISTING, mnt)).split('\n').map((l) => {
        const f = l.split(' ');
        if (f.length < 11) return l;
        f[2] = '';
        f[9] = '';
        // The root is the writable layer's own directory, made apart for each mount.
        if (!withTimes || f[0] === '.') f[8] = '';
        return f.join(' ');
      }).join('\n');
    const both = async (script: string) => {
      const [x, y] = await Promise.all([sh(`${script} 2>&1; echo "exit $?"`, a.mountpoint), sh(`${script} 2>&1; echo "exit $?"`, b.mountpoint)]);
      expect(x).toBe(y);
      return x;
    };
    try {
      const steps = [
        'true',
        'echo more >> etc/passwd',
        'chmod 600 etc/hostname',
        'mv etc/sub etc/sub2',
        'rm -r usr && mkdir usr && touch usr/new',
        'rm lib/hard',
        'ln -s nowhere lib/dangling',
        'setfattr -n user.added -v yes etc/sub2/deep',
        'mv lib lib2 && mkdir lib',
        // New objects claim "no xattrs" natively; setxattr through another hard link must end that.
        'mkdir n && echo x > n/f && ln n/f n/g && setfattr -n user.h -v 1 n/g && getfattr -n user.h --only-values n/f',
        'echo y >> etc/sub2/deep && getfattr -d etc/sub2/deep',
        // Directories made in the writable layer are stat'ed natively, also once moved.
        'mkdir -p q/r && touch q/r/s && mv q etc/q2 && mv etc/q2/r usr/r && rmdir usr/r 2>&1; ls -A usr/r etc/q2',
        'rm -r etc && mkdir etc && ls -A etc && stat -c %h etc',
      ];
      for (const step of steps) {
        await both(step);
        expect(await listing(a.mountpoint)).toBe(await listing(b.mountpoint));
        expect(await sh(XATTRS, a.mountpoint)).toBe(await sh(XATTRS, b.mountpoint));
        await both('cat etc/passwd etc/gone usr/hidden lib2/data.bin | wc -c; readlink lib2/link lib/dangling');
        withTimes = false;
      }
    } finally {
      await a.stop();
      await b.stop();
      await fast.cleanup();
    }
  });
});
