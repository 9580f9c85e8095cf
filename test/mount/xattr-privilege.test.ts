/**
 * `trusted.*` xattrs on a layerfs mount are hidden from callers without CAP_SYS_ADMIN, as
 * the kernel and ext4 hide them (issue 18, point 5): a real uid-1000 process and root of a
 * new user namespace (every capability, but not in ours) list and read them through the
 * mount; root of the host still sees them. The kernel itself checks get/set of trusted.*
 * before FUSE is asked; listxattr is the filesystem's to filter.
 */
import { spawn } from 'node:child_process';
import { chmod, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { layerfs, makeTar, writeOciLayout } from '../helpers/images.js';
import { tempDir } from '../helpers/temp.js';

const SCRIPT = `
import os, sys, json
p = sys.argv[1]
out = {'list': sorted(os.listxattr(p))}
for n in ('trusted.layerfs-test', 'user.visible'):
    try:
        out[n] = os.getxattr(p, n).decode()
    except OSError as e:
        out[n] = 'errno ' + str(e.errno)
print(json.dumps(out))
`;

/** Runs the xattr probe: as root, as uid 1000, or as root of a new user namespace (unshare -Ur). */
async function probe(file: string, who: 'root' | 'uid1000' | 'userns-root'): Promise<Record<string, unknown>> {
  const argv = who === 'userns-root' ? ['unshare', '-Ur', 'python3', '-c', SCRIPT, file] : ['python3', '-c', SCRIPT, file];
  const p = spawn(argv[0]!, argv.slice(1), { cwd: '/', stdio: ['ignore', 'pipe', 'pipe'], ...(who === 'uid1000' ? { uid: 1000, gid: 1000 } : {}) });
  let out = '';
  let err = '';
  p.stdout.on('data', (d) => (out += d));
  p.stderr.on('data', (d) => (err += d));
  const code = await new Promise((r) => p.on('close', r));
  if (code !== 0) throw new Error(`${who} probe exited ${String(code)}: ${err}`);
  return JSON.parse(out) as Record<string, unknown>;
}

async function setXattr(file: string, name: string, value: string): Promise<void> {
  const p = spawn('python3', ['-c', 'import os,sys; os.setxattr(sys.argv[1], sys.argv[2], sys.argv[3].encode())', file, name, value], { stdio: 'inherit' });
  expect(await new Promise((r) => p.on('close', r))).toBe(0);
}

let work: string;
let root: string;

beforeAll(async () => {
  work = await tempDir('layerfs-xattr-');
  await chmod(work, 0o755);
  const layout = join(work, 'img');
  await writeOciLayout(layout, [{ tar: await makeTar([{ name: 'f', data: 'x\n', mode: 0o644 }]) }], { tag: 'x' });
  root = join(work, 'store');
  const r = await layerfs(root, ['load', '-i', layout, '--name', 'xattr']);
  expect(r.code, r.stderr).toBe(0);
}, 120_000);

describe.skipIf(!inject('canMount'))('trusted.* xattrs and the caller', () => {
  it('are listed and read for root, hidden from uid 1000 and from root of another user namespace', async () => {
    const mnt = join(work, 'mnt');
    await mkdir(mnt);
    await chmod(mnt, 0o755);
    const m = await layerfs(root, ['mount', 'xattr:x', mnt]);
    expect(m.code, m.stderr).toBe(0);
    try {
      const f = join(mnt, 'f');
      await setXattr(f, 'trusted.layerfs-test', 'secret');
      await setXattr(f, 'user.visible', 'shown');
      expect(await probe(f, 'root')).toEqual({ list: ['trusted.layerfs-test', 'user.visible'], 'trusted.layerfs-test': 'secret', 'user.visible': 'shown' });
      const hidden = { list: ['user.visible'], 'trusted.layerfs-test': 'errno 61', 'user.visible': 'shown' };
      expect(await probe(f, 'uid1000')).toEqual(hidden);
      expect(await probe(f, 'userns-root')).toEqual(hidden);
    } finally {
      await layerfs(root, ['umount', mnt]);
    }
  });
});
