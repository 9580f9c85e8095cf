/** Temporary directories under os.tmpdir(), removed when the test file ends. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';

const made: string[] = [];

export async function tempDir(prefix = 'layerfs-test-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  made.push(dir);
  return dir;
}

afterAll(async () => {
  // Mounts inside are stopped by the mount guard first (it is registered earlier).
  await Promise.all(made.splice(0).map((d) => rm(d, { recursive: true, force: true }).catch(() => undefined)));
});
