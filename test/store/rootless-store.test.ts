/**
 * Rootless stores (issue 14): every store verb run as an ordinary uid (spawned with the
 * test users' uid/gid, no sudo), the XDG default locations, image owners in a user
 * namespace mapped from /etc/subuid and /etc/subgid, the single-mapping fallback with
 * user.containers.override_stat, whiteouts as 0/0 devices and opaque directories as
 * user.overlay.opaque, and removal of layers whose files belong to subordinate uids.
 */
import { existsSync } from 'node:fs';
import { lstat, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { OVERRIDE_STAT_XATTR } from '../../src/core/override-stat.js';
import { sys } from '../../src/union/sys.js';
import { makeTar, writeOciLayout } from '../helpers/images.js';
import { layerfsAs, layerfsAsOk, testUser, userEnv, userTempDir, type TestUser } from '../helpers/rootless.js';

const withRanges = testUser('layerfs-rootless');
const noRanges = testUser('layerfs-nosubid');

/** Two layers: owners, modes, a device, a symlink; then a whiteout and an opaque directory. */
async function writeImage(dir: string): Promise<void> {
  const base = await makeTar([
    { name: 'etc/', type: 'directory' },
    { name: 'etc/hostname', data: 'box\n' },
    { name: 'var/', type: 'directory' },
    { name: 'var/www/', type: 'directory', uid: 33, gid: 33, mode: 0o750 },
    { name: 'var/www/index.html', data: '<p>hi</p>\n', uid: 33, gid: 33, mode: 0o640 },
    { name: 'bin/', type: 'directory' },
    { name: 'bin/su', data: 'su\n', mode: 0o4755 },
    { name: 'dev/', type: 'directory' },
    { name: 'dev/null', type: 'character-device', devmajor: 1, devminor: 3, mode: 0o666 },
    { name: 'home/', type: 'directory' },
    { name: 'home/app/', type: 'directory', uid: 1000, gid: 1000, mode: 0o700 },
    { name: 'home/app/old', data: 'old\n', uid: 1000, gid: 1000 },
    { name: 'gone', data: 'deleted above\n' },
    { name: 'link', type: 'symlink', linkname: 'etc/hostname' },
  ]);
  const top = await makeTar([
    { name: '.wh.gone', data: '' },
    { name: 'home/app/', type: 'directory', uid: 1000, gid: 1000, mode: 0o700 },
    { name: 'home/app/.wh..wh..opq', data: '' },
    { name: 'home/app/new', data: 'new\n', uid: 1000, gid: 1000 },
  ]);
  await writeOciLayout(dir, [{ tar: base }, { tar: top }], { tag: 'latest' });
}

interface Loaded {
  root: string;
  env: NodeJS.ProcessEnv;
  /** Layer diff folders, bottom first. */
  diffs: string[];
}

async function loadAs(user: TestUser): Promise<Loaded> {
  const work = await userTempDir(user);
  await writeImage(join(work, 'image'));
  const env = await userEnv(user, work);
  const root = join(work, 'store');
  const load = await layerfsAs(user, env, ['--root', root, 'load', '-i', join(work, 'image'), '--name', 'rl']);
  expect(load.code, load.stderr).toBe(0);
  const info = JSON.parse(await layerfsAsOk(user, env, ['--root', root, 'inspect', 'rl'])) as { Store: { Layers: { Diff: string }[] } }[];
  return { root, env, diffs: info[0]!.Store.Layers.map((l) => l.Diff) };
}

async function override(path: string): Promise<string | undefined> {
  const v = await sys.lgetxattr(path, OVERRIDE_STAT_XATTR).catch(() => null);
  return v === null ? undefined : v.toString('latin1');
}

describe('rootless store locations', () => {
  it('an ordinary user gets $XDG_DATA_HOME/layerfs, else ~/.local/share/layerfs; --root still wins', async () => {
    const work = await userTempDir(withRanges);
    const env = await userEnv(withRanges, work, { HOME: work });
    await layerfsAsOk(withRanges, env, ['images']);
    expect(existsSync(join(work, '.local', 'share', 'layerfs', 'image', 'imagedb'))).toBe(true);
    await layerfsAsOk(withRanges, { ...env, XDG_DATA_HOME: join(work, 'data') }, ['images']);
    expect(existsSync(join(work, 'data', 'layerfs', 'image', 'imagedb'))).toBe(true);
    // --root wins: a read-only verb names that root and, as for root, does not create a store there.
    const elsewhere = await layerfsAs(withRanges, env, ['--root', join(work, 'elsewhere'), 'images']);
    expect(elsewhere.stderr).toContain(`no layerfs store at ${join(work, 'elsewhere')}`);
    expect(existsSync(join(work, 'elsewhere'))).toBe(false);
    expect((await lstat(join(work, 'data', 'layerfs'))).uid).toBe(withRanges.uid);
  });

  it('a store the user may not create fails with the --root hint, nothing written', async () => {
    const work = await userTempDir(withRanges);
    // The default root is created by any verb; here it lies where the user may not write.
    const env = await userEnv(withRanges, work, { XDG_DATA_HOME: '/var/lib/layerfs-rootless-test-denied' });
    const r = await layerfsAs(withRanges, env, ['images']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/cannot create the store at \/var\/lib\/layerfs-rootless-test-denied/);
    expect(existsSync('/var/lib/layerfs-rootless-test-denied')).toBe(false);
  });
});

describe('rootless load with subordinate ids (user namespace, podman layout)', () => {
  let l: Loaded;
  beforeAll(async () => {
    l = await loadAs(withRanges);
  });

  it('image uid 0 is the user, image uid N is subuid start + N - 1; modes as in the image', async () => {
    const [base] = l.diffs as [string, string];
    const sub = withRanges.subuid!;
    const subg = withRanges.subgid!;
    const www = await lstat(join(base, 'var/www/index.html'));
    expect([www.uid, www.gid, www.mode & 0o7777]).toEqual([sub + 32, subg + 32, 0o640]);
    const wwwDir = await lstat(join(base, 'var/www'));
    expect([wwwDir.uid, wwwDir.mode & 0o7777]).toEqual([sub + 32, 0o750]);
    const host = await lstat(join(base, 'etc/hostname'));
    expect([host.uid, host.gid]).toEqual([withRanges.uid, withRanges.gid]);
    expect((await lstat(join(base, 'bin/su'))).mode & 0o7777).toBe(0o4755);
    expect((await lstat(join(base, 'home/app/old'))).uid).toBe(sub + 999);
    expect(await override(join(base, 'var/www/index.html'))).toBeUndefined();
  });

  it('a device node becomes an empty file whose override names it (no CAP_MKNOD in a user namespace)', async () => {
    const dev = join(l.diffs[0]!, 'dev/null');
    const st = await lstat(dev);
    expect(st.isFile()).toBe(true);
    expect(st.size).toBe(0);
    expect(await override(dev)).toBe('0:0:0666:char-1-3');
  });

  it('whiteouts are 0/0 character devices; opaque directories carry user.overlay.opaque (no trusted.*)', async () => {
    const top = l.diffs[1]!;
    const wh = await lstat(join(top, 'gone'));
    expect(wh.isCharacterDevice()).toBe(true);
    expect(wh.rdev).toBe(0);
    expect((await sys.lgetxattr(join(top, 'home/app'), 'user.overlay.opaque'))?.toString()).toBe('y');
    expect(await sys.lgetxattr(join(top, 'home/app'), 'trusted.overlay.opaque').catch(() => null)).toBeNull();
  });

  it('rmi removes layers whose files belong to subordinate uids; nothing of the image is left', async () => {
    await layerfsAsOk(withRanges, l.env, ['--root', l.root, 'rmi', 'rl']);
    for (const d of l.diffs) expect(existsSync(d)).toBe(false);
    expect(await readdir(join(l.root, 'layers'))).toEqual([]);
  });
});

describe('rootless load without subordinate ids (single mapping, override_stat)', () => {
  let l: Loaded;
  let stderr: string;
  beforeAll(async () => {
    const work = await userTempDir(noRanges);
    await writeImage(join(work, 'image'));
    const env = await userEnv(noRanges, work);
    const root = join(work, 'store');
    const load = await layerfsAs(noRanges, env, ['--root', root, 'load', '-i', join(work, 'image'), '--name', 'rl']);
    expect(load.code, load.stderr).toBe(0);
    stderr = load.stderr;
    const info = JSON.parse(await layerfsAsOk(noRanges, env, ['--root', root, 'inspect', 'rl'])) as { Store: { Layers: { Diff: string }[] } }[];
    l = { root, env, diffs: info[0]!.Store.Layers.map((x) => x.Diff) };
  });

  it('says it falls back', () => {
    expect(stderr).toMatch(/no subordinate id range .* single mapping, image owners and modes kept in the user.containers.override_stat xattr/);
  });

  it('every file belongs to the user; the image owner and mode are in user.containers.override_stat', async () => {
    const base = l.diffs[0]!;
    const www = await lstat(join(base, 'var/www/index.html'));
    expect([www.uid, www.gid]).toEqual([noRanges.uid, noRanges.gid]);
    expect(www.mode & 0o600).toBe(0o600); // the user can still read and remove it
    expect(await override(join(base, 'var/www/index.html'))).toBe('33:33:0640');
    expect(await override(join(base, 'var/www'))).toBe('33:33:0750');
    expect(await override(join(base, 'etc/hostname'))).toBe('0:0:0644');
    const su = await lstat(join(base, 'bin/su'));
    expect(su.mode & 0o7000).toBe(0); // no set-id bit on a file the user owns on disk
    expect(await override(join(base, 'bin/su'))).toBe('0:0:4755');
    expect(await override(join(base, 'dev/null'))).toBe('0:0:0666:char-1-3');
    expect((await lstat(join(base, 'link'))).isSymbolicLink()).toBe(true);
  });

  it('whiteouts and opaque directories as in the namespaced store', async () => {
    const top = l.diffs[1]!;
    expect((await lstat(join(top, 'gone'))).isCharacterDevice()).toBe(true);
    expect((await sys.lgetxattr(join(top, 'home/app'), 'user.overlay.opaque'))?.toString()).toBe('y');
  });

  it('rmi removes it all', async () => {
    await layerfsAsOk(noRanges, l.env, ['--root', l.root, 'rmi', 'rl']);
    expect(await readdir(join(l.root, 'layers'))).toEqual([]);
  });
});

describe('containment between two ordinary users', () => {
  it("a user's store is 0700: a second user can neither list it nor read or change its layers", async () => {
    const other = testUser('layerfs-rootless2');
    const l = await loadAs(withRanges);
    expect((await lstat(l.root)).mode & 0o777).toBe(0o700);
    const work2 = await userTempDir(other);
    const env2 = await userEnv(other, work2);
    const r = await layerfsAs(other, env2, ['--root', l.root, 'images']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/EACCES|permission denied/i);
    const rm = await layerfsAs(other, env2, ['--root', l.root, 'rmi', 'rl']);
    expect(rm.code).not.toBe(0);
    expect(l.diffs.every((d) => existsSync(d))).toBe(true);
    expect(await layerfsAsOk(withRanges, l.env, ['--root', l.root, 'images'])).toMatch(/rl/);
  });
});

describe('a layer may not forge the override', () => {
  it('user.containers.override_stat in a layer is refused', async () => {
    const work = await userTempDir(noRanges);
    const tar = await makeTar([{ name: 'f', data: 'x', pax: { 'SCHILY.xattr.user.containers.override_stat': '0:0:4755' } }]);
    await writeOciLayout(join(work, 'image'), [{ tar }], { tag: 'forged' });
    const env = await userEnv(noRanges, work);
    const r = await layerfsAs(noRanges, env, ['--root', join(work, 'store'), 'load', '-i', join(work, 'image')]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/carries xattr "user.containers.override_stat", which would forge overlay metadata/);
    expect(await readFile(join(work, 'store', 'image', 'repositories.json'), 'utf8').catch(() => '{}')).not.toMatch(/forged/);
  });
});
