/**
 * `containers/<id>/damage.json`: written by a container's mount process the first time it
 * finds a layer cache disagreeing with the image's index (a file deleted or altered by
 * hand under `layers/`), read by `layerfs ps` ("(image damaged)") and `layerfs check`.
 * Only the first finding is kept; the mount log has each damaged path once.
 */
import { readFile, rm } from 'node:fs/promises';
import { writeFileAtomic } from './atomic.js';

export interface DamageRecord {
  /** The layer folder (a `layers/<cache-id>/diff`) the index promised the path in. */
  layer: string;
  /** The path inside the container's filesystem. */
  path: string;
  reason: string;
  at: string;
}

export const DAMAGE_FILE = 'damage.json';

export async function readDamage(containerDir: string): Promise<DamageRecord | undefined> {
  try {
    return JSON.parse(await readFile(`${containerDir}/${DAMAGE_FILE}`, 'utf8')) as DamageRecord;
  } catch {
    return undefined;
  }
}

export async function writeDamage(file: string, d: DamageRecord): Promise<void> {
  await writeFileAtomic(file, JSON.stringify(d, null, 2) + '\n');
}

export async function clearDamage(containerDir: string): Promise<void> {
  await rm(`${containerDir}/${DAMAGE_FILE}`, { force: true });
}
