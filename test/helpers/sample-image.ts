/** The sample image (scripts/make-sample-image) loaded into a fresh store, and tree hashes. */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lstat, readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { cliOk, REPO } from './cli.js';
import { tempDir } from './temp.js';

const run = promisify(execFile);

/** A temp dir `work` with the sample image's OCI layout at work/oci, loaded as `sample` into the store work/store. */
export async function storeWithSampleImage(): Promise<{ work: string; root: string }> {
  const work = await tempDir();
  const root = join(work, 'store');
  await run(join(REPO, 'scripts', 'make-sample-image'), [join(work, 'oci')]);
  await cliOk(root, ['load', '-i', join(work, 'oci'), '--name', 'sample']);
  return { work, root };
}

/** sha256, mode and mtime of every file under `dir`, by relative path: proves a tree did not change. */
export async function treeHashes(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (d: string, rel: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      const st = await lstat(p);
      const key = `${rel}/${e.name}`;
      if (e.isDirectory()) {
        out[key] = `dir ${st.mode.toString(8)} ${st.uid}`;
        await walk(p, key);
      } else if (e.isFile()) out[key] = createHash('sha256').update(await readFile(p)).digest('hex') + ` ${st.mode.toString(8)} ${st.mtimeMs}`;
      else out[key] = `${st.mode.toString(8)} ${st.rdev}`;
    }
  };
  await walk(dir, '');
  return out;
}
