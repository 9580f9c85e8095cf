/**
 * POSIX ACLs through a layerfs mount (layerfs engine: FUSE_POSIX_ACL + FUSE_DONT_MASK)
 * against the kernel's overlayfs over the same lower layers: each scenario is one shell
 * script run in both mount points (as root, with the umask it sets; other users through
 * setpriv), and what it prints — getfacl, modes, `ls -l`'s `+`, errors, permission
 * decisions — must be the same. Scenarios: setfacl/getfacl on a lower file and directory
 * (copy-up), an ACL already in the image, the uid an ACL alone lets in (and keeps out
 * after chmod rewrote the mask), default ACL inheritance by create/mkdir/mknod in place,
 * over a whiteout and as an opaque directory, umask 022 and 077 without a default ACL,
 * ENODATA for a file without one, and setfacl -b.
 */
import { execFile } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { makeLayers, type TestLayers } from '../helpers/layers.js';
import type { MountProcess } from '../helpers/mount-process.js';
import { mountKernelOverlay, unmountKernelOverlay } from '../helpers/oracle.js';
import { mountUnion } from '../helpers/union-mount.js';

const run = promisify(execFile);
const AS_1000 = 'setpriv --reuid 1000 --regid 1000 --clear-groups';

/** Runs `script` with `sh` in `dir`; stdout and stderr together, then the exit status. */
async function sh(dir: string, script: string): Promise<string> {
  const r = await run('sh', ['-c', `exec 2>&1\n${script}`], { cwd: dir }).catch((e: { stdout?: string; code?: number }) => ({ stdout: `${e.stdout ?? ''}exit ${e.code}\n` }));
  return r.stdout;
}

describe.skipIf(!inject('canMount'))('POSIX ACLs on a layerfs mount vs the kernel overlayfs', () => {
  let layers: TestLayers;
  let kmnt: string;
  let layerfs: MountProcess;

  beforeAll(async () => {
    layers = await makeLayers([{
      'secret': { content: 'secret\n', mode: 0o600 },
      'imaged': { content: 'imaged\n', mode: 0o600 },
      'd/': { mode: 0o755 },
      'd/old': 'old\n',
      'd/sub/x': 'x\n',
      'plain/': { mode: 0o755 },
    }]);
    // An ACL that came with the image.
    await run('setfacl', ['-m', 'u:1000:r', join(layers.lowers[0]!, 'imaged')]);
    kmnt = join(layers.root, 'kmnt');
    const [kupper, kwork] = [join(layers.root, 'kupper'), join(layers.root, 'kwork')];
    await Promise.all([mkdir(kmnt), mkdir(kupper), mkdir(kwork)]);
    await run('chmod', ['755', layers.root]);
    await mountKernelOverlay(layers.lowers, kupper, kwork, kmnt);
    layerfs = await mountUnion(
      { mountpoint: join(layers.root, 'fmnt'), lowerDirs: layers.lowers, upperDir: layers.upper, workDir: layers.work },
      layers.root,
      { LAYERFS_ENGINE: 'layerfs' },
    );
  });

  afterAll(async () => {
    await layerfs?.stop();
    if (kmnt) await unmountKernelOverlay(kmnt);
    await layers?.cleanup();
  });

  /** The script's output on both mounts; they must agree. Returns the kernel's. */
  async function same(script: string): Promise<string> {
    const k = await sh(kmnt, script);
    const u = await sh(layerfs.mountpoint, script);
    expect(u).toBe(k);
    return k;
  }

  // Scenarios run in order on the same two mounts (each leaves what the next may build on).

  it('answers ENODATA for the ACL of a file without one, and an ACL alone keeps uid 1000 out', async () => {
    const out = await same(`
      getfattr -n system.posix_acl_access secret; echo "getfattr $?"
      ${AS_1000} cat secret; echo "cat $?"
      ls -l secret | cut -d' ' -f1`);
    expect(out).toContain('secret: system.posix_acl_access: No such attribute');
    expect(out).toContain('cat 1');
    expect(out).toContain('-rw-------\n');
  });

  it('stores setfacl on a lower file (copy-up), shows the +, and lets the named user in', async () => {
    const out = await same(`
      setfacl -m u:1000:r secret; echo "setfacl $?"
      getfacl -pn secret
      ls -l secret | cut -d' ' -f1
      ${AS_1000} cat secret; echo "cat $?"`);
    expect(out).toContain('user:1000:r--');
    expect(out).toContain('-rw-r-----+');
    expect(out).toContain('secret\ncat 0');
  });

  it('rewrites the mask on chmod, and the permission decision follows it', async () => {
    const out = await same(`
      chmod 600 secret
      getfacl -pn secret | grep -E '^(mask|user:1000)'
      ${AS_1000} cat secret; echo "cat $?"
      chmod 640 secret
      getfacl -pn secret | grep -E '^mask'
      ls -l secret | cut -d' ' -f1
      ${AS_1000} cat secret; echo "cat $?"`);
    expect(out).toContain('mask::---');
    expect(out).toContain('cat 1');
    expect(out).toContain('mask::r--');
    expect(out).toContain('secret\ncat 0');
  });

  it("honours an ACL that came with the image, and setfacl -b removes one", async () => {
    const out = await same(`
      getfacl -pn imaged
      ${AS_1000} cat imaged; echo "cat $?"
      setfacl -b imaged; echo "setfacl $?"
      getfattr -n system.posix_acl_access imaged; echo "getfattr $?"
      ls -l imaged | cut -d' ' -f1
      ${AS_1000} cat imaged; echo "cat $?"`);
    expect(out).toContain('user:1000:r--');
    expect(out).toContain('imaged\ncat 0');
    expect(out).toContain('No such attribute');
    expect(out).toContain('cat 1');
  });

  it('applies the umask (022, 077) where no default ACL governs', async () => {
    const out = await same(`
      umask 022; touch plain/a; mkdir plain/b; mkfifo plain/c
      umask 077; touch plain/d; mkdir plain/e; mkfifo plain/f
      umask 027; mkdir -m 777 plain/g; install -m 666 /dev/null plain/h
      cd plain && stat -c '%a %n' a b c d e f g h`);
    expect(out).toBe('644 a\n755 b\n644 c\n600 d\n700 e\n600 f\n777 g\n666 h\n');
  });

  it('inherits a default ACL on create, mkdir and mknod, in place, over a whiteout and as an opaque directory; the umask does not apply', async () => {
    const out = await same(`
      setfacl -d -m u:1000:rwx,g::rx,o::- d; echo "setfacl $?"
      setfacl -m u:1000:rwx d
      getfacl -pn d
      umask 077
      touch d/new; mkdir d/newdir; mkfifo d/fifo
      rm d/old; touch d/old
      rm -r d/sub; mkdir d/sub
      ${AS_1000} touch d/byuser; echo "touch $?"
      umask 022
      mkdir -m 700 d/private
      for f in new newdir fifo old sub byuser private; do getfacl -pn d/$f; done
      ls -l d | cut -d' ' -f1,3,4,9`);
    expect(out).toContain('default:user:1000:rwx');
    expect(out).toContain('touch 0');
    // A umask of 077 would have left nothing for the group class.
    expect(out).toMatch(/# file: d\/new\n# owner: 0\n# group: 0\nuser::rw-\nuser:1000:rwx\t+#effective:rw-\ngroup::r-x\t+#effective:r--\nmask::rw-\nother::---/);
    expect(out).toMatch(/# file: d\/sub\n[^]*?default:user:1000:rwx/);
  });

  it('clears setgid when an owner outside the group sets an ACL, keeps it for root', async () => {
    const out = await same(`
      echo x > sgf; chown 1000:0 sgf; chmod 2775 sgf
      cp -p sgf sgroot
      ${AS_1000} setfacl -m u:2000:r sgf; echo "setfacl $?"
      setfacl -m u:2000:r sgroot
      stat -c '%a %n' sgf sgroot`);
    expect(out).toBe('setfacl 0\n775 sgf\n2775 sgroot\n');
  });

  it('keeps setgid inheritance and a symlink\'s mode under a default ACL', async () => {
    const out = await same(`
      mkdir sg; chown 0:1000 sg; chmod 2775 sg; setfacl -d -m u:1000:rwx,o::r sg
      umask 077
      mkdir sg/dir; touch sg/file; ln -s file sg/link
      ${AS_1000} mkdir sg/userdir; echo "mkdir $?"
      cd sg && stat -c '%a %u %g %n' dir file link userdir && getfacl -pn dir userdir | grep -v '^#'`);
    // Group 1000 and setgid from the parent, other r from the default ACL; umask 077 unused.
    expect(out).toMatch(/^mkdir 0\n2774 0 1000 dir\n664 0 1000 file\n777 0 1000 link\n2774 1000 1000 userdir\n/);
  });
});
