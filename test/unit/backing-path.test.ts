/**
 * src/union/backing-path.ts: backing-file calls on absolute paths longer than PATH_MAX
 * (which the kernel refuses whole) reach the object, and leave no descriptor open.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, constants as C, readdirSync, writeSync } from 'node:fs';
import * as fsp from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { atPath, backing, PATH_MAX, removeTree } from '../../src/union/backing-path.js';

const openFds = (): number => readdirSync('/proc/self/fd').length;

describe('backing paths beyond PATH_MAX', () => {
  let root: string;
  let deep: string;

  beforeAll(async () => {
    root = await fsp.mkdtemp(join(tmpdir(), 'layerfs-backing-'));
    deep = root;
    // 30 directories of 200 bytes: about 6 KB (made by mkdir -p, which walks by descriptors).
    for (let i = 0; i < 30; i++) deep = join(deep, `${String(i).padStart(2, '0')}${'x'.repeat(198)}`);
    execFileSync('mkdir', ['-p', deep.slice(root.length + 1)], { cwd: root });
  });

  afterAll(async () => {
    await removeTree(root);
  });

  it('removes a tree deeper than PATH_MAX (where Node\'s own recursive rm gives up)', async () => {
    const other = await fsp.mkdtemp(join(tmpdir(), 'layerfs-backing-rm-'));
    const rel = Array.from({ length: 30 }, (_, i) => `${i}${'y'.repeat(190)}`).join('/');
    execFileSync('mkdir', ['-p', rel, `${rel}/sub`], { cwd: other });
    const at = (name: string): Buffer => Buffer.from(join(other, rel, name));
    for (const f of ['a', 'b', 'sub/c']) closeSync(await backing.open(at(f), C.O_CREAT | C.O_WRONLY, 0o644));
    await backing.symlink(Buffer.from('a'), at('s'));
    await backing.mknod(at('p'), C.S_IFIFO | 0o644, 0);
    await expect(fsp.rm(other, { recursive: true, force: true })).rejects.toMatchObject({ code: 'ENAMETOOLONG' });
    await removeTree(other);
    await expect(fsp.lstat(other)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('creates, stats, renames, links and removes objects there', async () => {
    const at = (name: string): Buffer => Buffer.from(join(deep, name));
    expect(at('f').length).toBeGreaterThan(PATH_MAX);
    const fds = openFds();
    await expect(fsp.lstat(at('f'))).rejects.toMatchObject({ code: 'ENAMETOOLONG' });
    const fd = await backing.open(at('f'), C.O_CREAT | C.O_WRONLY | C.O_EXCL, 0o640);
    writeSync(fd, 'data');
    closeSync(fd);
    expect((await backing.lstat(at('f'))).size).toBe(4);
    expect((await backing.lstat(at('f'))).mode & 0o777).toBe(0o640);
    await backing.mkdir(at('d'), 0o755);
    await backing.rename(at('f'), at('d/g'));
    await backing.link(at('d/g'), at('h'));
    expect((await backing.lstat(at('h'))).nlink).toBe(2);
    await backing.symlink(Buffer.from('d/g'), at('s'));
    expect((await backing.readlink(at('s'))).toString()).toBe('d/g');
    await backing.utimens(at('h'), { sec: 1000, nsec: 5 }, { sec: 2000, nsec: 7 });
    expect((await backing.lstatBig(at('d/g'))).mtimeNs).toBe(2000_000_000_007n);
    await backing.lsetxattr(at('h'), 'user.k', Buffer.from('v'));
    expect((await backing.lgetxattr(at('h'), 'user.k'))?.toString()).toBe('v');
    expect(await backing.llistxattr(at('d/g'))).toEqual(['user.k']);
    expect((await backing.readdir(at('d'))).map(String)).toEqual(['g']);
    // One path short, one long.
    await backing.rename(at('h'), Buffer.from(join(root, 'short')));
    await backing.rename(Buffer.from(join(root, 'short')), at('h'));
    await backing.unlink(at('h'));
    await backing.unlink(at('s'));
    await backing.unlink(at('d/g'));
    await backing.rmdir(at('d'));
    expect((await backing.readdir(Buffer.from(deep))).length).toBe(0);
    expect(openFds()).toBe(fds);
  });

  it('gives the call its own errno and closes what it opened when it fails', async () => {
    const fds = openFds();
    await expect(backing.lstat(Buffer.from(join(deep, 'absent')))).rejects.toMatchObject({ code: 'ENOENT' });
    // A missing ancestor fails while the steps are opened.
    await expect(backing.lstat(Buffer.from(join(deep, '..', 'nope', 'x'.repeat(200), 'y')))).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(atPath(Buffer.from(join(deep, 'z')), async () => { throw new Error('boom'); })).rejects.toThrow('boom');
    expect(openFds()).toBe(fds);
  });
});
