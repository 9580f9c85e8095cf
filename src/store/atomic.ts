/**
 * Write-then-rename helpers: a reader (or a later command after a crash) sees either the
 * old state or the complete new one, never a half-written file or directory.
 */
import { mkdir, rename, rm, writeFile, open } from 'node:fs/promises';
import { dirname } from 'node:path';
import { hasErrnoCode } from '../core/errors.js';
import { stagingName } from './store-paths.js';

/** Writes `data` to `path` via a staging file in the same directory, fsynced, then renamed. */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const dir = dirname(path);
  await mkdir(dir, { recursive: true });
  const tmp = `${dir}/.${stagingName()}`;
  const fh = await open(tmp, 'wx', 0o644);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

/**
 * Fills a staging directory with `files` and renames it to `path`. When `path` already
 * exists (another writer got there first with the same content-addressed name) the
 * staging copy is dropped and false is returned.
 */
export async function writeDirAtomic(path: string, files: Record<string, string>): Promise<boolean> {
  const parent = dirname(path);
  await mkdir(parent, { recursive: true });
  const tmp = `${dirname(parent)}/${stagingName()}`;
  await mkdir(tmp);
  for (const [name, content] of Object.entries(files)) await writeFile(`${tmp}/${name}`, content);
  return renameNoClobber(tmp, path);
}

/** Renames a staging dir into place; if the target exists, removes the staging dir instead. */
export async function renameNoClobber(tmp: string, path: string): Promise<boolean> {
  try {
    await rename(tmp, path);
    return true;
  } catch (err) {
    if (hasErrnoCode(err, 'EEXIST') || hasErrnoCode(err, 'ENOTEMPTY')) {
      await rm(tmp, { recursive: true, force: true });
      return false;
    }
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
}
