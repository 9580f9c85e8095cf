/**
 * The same oracle suite as union-oracle.test.ts, with layerfs served over a real FUSE
 * mount (the mount process of src/fuse, started by the supervisor's launcher) as the
 * subject: every op goes through the kernel's VFS and FUSE into the union.
 * Left out or adjusted, both limits of libfuse 2.9's high-level API (native-notes/):
 * - RENAME_EXCHANGE / RENAME_NOREPLACE: libfuse 2.9 has no rename flags, so the kernel
 *   answers EINVAL before layerfs sees the request;
 * - attributes are served uncached (attr_timeout=0) here: each hard-link name is its own
 *   kernel inode, so with the default 1 s attribute cache a sibling's nlink lags after
 *   link(2). Caching itself is tested in union-fuse.test.ts.
 */
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { launchUnionMount } from '../../src/supervisor/mount-launcher.js';
import { defineUnionOracleSuite } from '../helpers/oracle-suite.js';
import { FsSubject } from '../helpers/oracle.js';

const run = promisify(execFile);

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

defineUnionOracleSuite(
  'layerfs over FUSE vs kernel overlayfs',
  async (l) => {
    const mnt = path.join(l.root, 'fmnt');
    await fsp.mkdir(mnt);
    const { pid } = await launchUnionMount(
      { mountpoint: mnt, lowerDirs: l.lowers, upperDir: l.upper, workDir: l.work, extraOptions: ['attr_timeout=0'] },
      path.join(l.root, 'fuse.log'),
    );
    return {
      subject: new FsSubject('layerfs-fuse', mnt),
      close: async () => {
        if (alive(pid)) process.kill(pid, 'SIGTERM');
        for (let i = 0; i < 100 && alive(pid); i++) await new Promise((r) => setTimeout(r, 50));
        if (alive(pid)) process.kill(pid, 'SIGKILL');
        await run('umount', ['-l', mnt]).catch(() => undefined);
      },
    };
  },
  { renameExchange: false },
);
