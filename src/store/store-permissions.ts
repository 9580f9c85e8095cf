/**
 * Store permissions like a hardened Docker (the fix for CVE-2021-41091): no user but root
 * may reach anything below the store root — not the extracted layers (`layers/<id>/diff`
 * holds the image's setuid binaries as they are), not a running container's rootfs
 * (`containers/<id>/merged`, mounted with `suid`), not the blobs.
 *
 *   <root>                0700; left at 0710 when an admin chose that (a group that needs
 *                         to traverse, e.g. to reach a socket below), as Docker allows
 *   <root>/layers         0700   (second fence should the root be opened up)
 *   <root>/containers     0700
 *   <root>/containers/<id> 0700
 *
 * Applied by every command that opens the store, so an existing store is tightened on the
 * next command. chmod on a folder we do not own (a store shared read-only) is skipped.
 */
import { chmod, readdir, stat } from 'node:fs/promises';
import { hasErrnoCode } from '../core/errors.js';
import type { StorePaths } from './store-paths.js';

/** Modes the root may keep; anything else becomes 0700. */
const ROOT_MODES = new Set([0o700, 0o710]);

async function setMode(path: string, mode: (current: number) => number): Promise<void> {
  let st;
  try {
    st = await stat(path);
  } catch (err) {
    if (hasErrnoCode(err, 'ENOENT')) return;
    throw err;
  }
  if (!st.isDirectory()) return; // e.g. a container's lock file beside its folder
  const want = mode(st.mode & 0o7777);
  if (want === (st.mode & 0o7777)) return;
  if (process.getuid?.() !== 0 && st.uid !== process.getuid?.()) return;
  await chmod(path, want);
}

/** Brings the store's folders to the modes above. */
export async function tightenStore(paths: StorePaths): Promise<void> {
  await setMode(paths.root, (m) => (ROOT_MODES.has(m) ? m : 0o700));
  await setMode(paths.layersDir, () => 0o700);
  await setMode(paths.containersDir, () => 0o700);
  for (const id of await readdir(paths.containersDir).catch(() => [] as string[])) {
    await setMode(`${paths.containersDir}/${id}`, () => 0o700);
  }
}
