/**
 * A container's record: `<root>/containers/<id>/config.json`, next to its writable layer
 * (`upper/`, `work/`) and the mount process's log (`mount.log`). Written atomically (temp
 * file + rename), so a killed command never leaves a half record.
 */
import { randomBytes } from 'node:crypto';
import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Digest } from '../core/digest.js';

export type ContainerState = 'created' | 'mounted' | 'unmounted';

export interface ContainerRecord {
  id: string;
  name: string;
  /** Image id (config digest); the store's prune and rmi read this key. */
  image: Digest;
  /** What the user typed (`alpine:3`), for display. */
  imageRef: string;
  created: string;
  readOnly: boolean;
  state: ContainerState;
  mountpoint: string | null;
  /** The FUSE process serving the mount, while mounted. */
  pid: number | null;
}

export const RECORD_FILE = 'config.json';

export function newContainerId(): string {
  return randomBytes(32).toString('hex');
}

/** Where a container's files are: its folder `<root>/containers/<id>/` and what it holds. */
export interface ContainerPaths {
  dir: string;
  /** config.json, the record. */
  record: string;
  /** The writable layer and overlayfs's work dir. */
  upper: string;
  work: string;
  /** The mount process's log. */
  log: string;
  /** What the mount found damaged in its image's layers (store/damage-record.ts). */
  damage: string;
}

/**
 * A container as a verb uses it: its record and where its files are (from
 * `Supervisor.open` or `Supervisor.handle`), so that no caller assembles the paths.
 */
export interface Container {
  readonly record: ContainerRecord;
  readonly paths: ContainerPaths;
}

export function containerPaths(containersDir: string, id: string): ContainerPaths {
  const dir = join(containersDir, id);
  return { dir, record: join(dir, RECORD_FILE), upper: join(dir, 'upper'), work: join(dir, 'work'), log: join(dir, 'mount.log'), damage: join(dir, 'damage.json') };
}

export async function readRecord(file: string): Promise<ContainerRecord> {
  return JSON.parse(await readFile(file, 'utf8')) as ContainerRecord;
}

export async function writeRecord(file: string, record: ContainerRecord): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}`;
  await writeFile(tmp, JSON.stringify(record, null, 2) + '\n');
  await rename(tmp, file);
}

/** The fsname of a container's mount: lets recovery tell our mount from anything else. */
export function mountSourceFor(record: Pick<ContainerRecord, 'id'>): string {
  return `layerfs:${record.id.slice(0, 12)}`;
}
