/**
 * containerd's snapshotter semantics over layerfs layers, independent of gRPC:
 *
 *   <state>/metadata.json              every snapshot (metadata.ts)
 *   <state>/snapshots/<id>/fs/         the snapshot's files: an active snapshot's writable
 *                                      layer (overlayfs on-disk format); after Commit, the
 *                                      same folder is a read-only layer, never written again
 *   <state>/snapshots/<id>/work/       the union's work folder (copy-up staging)
 *   <state>/snapshots/<id>/lower-index the merged index of the chain this committed
 *                                      snapshot tops (union/lower-index-cache.ts), built
 *                                      once, when a child is first created on it
 *
 * Keys and names share one namespace. Prepare/View take a committed parent (or none);
 * Commit turns an active snapshot into a committed one under a new name (the key goes);
 * Remove refuses a snapshot that has children. Errors carry the codes containerd checks:
 * NOT_FOUND, ALREADY_EXISTS, FAILED_PRECONDITION, INVALID_ARGUMENT.
 *
 * Folders appear before their metadata and disappear after it, so a crash leaves at most
 * a folder nothing names; Cleanup (and start-up) removes those.
 */
import { mkdir, readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { LayerfsError, hasErrnoCode } from '../core/errors.js';
import { stagingName } from '../store/index.js';
import { LowerIndex } from '../union/index.js';
import { MOUNT_PROGRAM_READS_AUFS } from '../overlay/index.js';
import { Mutex } from '../core/mutex.js';
import { diskUsage } from '../core/disk-usage.js';
import { parseFilters } from './filters.js';
import { MetadataStore, type MetadataFile, type SnapshotKind, type SnapshotRecord } from './metadata.js';
import { snapshotMounts, type MountSpec } from './mounts.js';

/** A snapshot as the API shows it (containerd's snapshots.Info). */
export interface SnapshotInfo {
  name: string;
  parent: string;
  kind: SnapshotKind;
  labels: Record<string, string>;
  created: string;
  updated: string;
}

export interface SnapshotterOptions {
  /** The snapshotter's state folder. */
  stateDir: string;
  /** Mount program behind `fuse3.` (default layerfs-overlay). */
  mountProgram?: string;
}

/** containerd's limit on one label (key + value bytes). */
const MAX_LABEL_BYTES = 4096;

function checkLabels(labels: Record<string, string>): void {
  for (const [k, v] of Object.entries(labels)) {
    if (k === '') throw new LayerfsError('INVALID_ARGUMENT', 'label key is empty');
    if (Buffer.byteLength(k) + Buffer.byteLength(v) > MAX_LABEL_BYTES) {
      throw new LayerfsError('INVALID_ARGUMENT', `label ${k}: key and value exceed ${MAX_LABEL_BYTES} bytes`);
    }
  }
}

function infoOf(name: string, r: SnapshotRecord): SnapshotInfo {
  return { name, parent: r.parent, kind: r.kind, labels: { ...r.labels }, created: r.created, updated: r.updated };
}

/** The snapshotter. Every change runs under one mutex and rewrites metadata atomically. */
export class Snapshotter {
  private readonly meta: MetadataStore;
  private readonly lock = new Mutex();

  constructor(private readonly options: SnapshotterOptions) {
    this.meta = new MetadataStore(join(options.stateDir, 'metadata.json'));
  }

  private get snapshotsDir(): string {
    return join(this.options.stateDir, 'snapshots');
  }

  /** `<state>/snapshots/<id>/fs`: a snapshot's files. */
  fsDir(id: string): string {
    return join(this.snapshotsDir, id, 'fs');
  }

  private workDir(id: string): string {
    return join(this.snapshotsDir, id, 'work');
  }

  /** Creates the folders, reads the metadata (refusing a damaged file) and clears leftovers. */
  async open(): Promise<void> {
    await mkdir(this.snapshotsDir, { recursive: true });
    await this.meta.read();
    await this.cleanup();
  }

  private async get(data: MetadataFile, key: string): Promise<SnapshotRecord> {
    if (key === '') throw new LayerfsError('INVALID_ARGUMENT', 'snapshot key is empty');
    const r = data.snapshots[key];
    if (!r) throw new LayerfsError('NOT_FOUND', `snapshot ${key} does not exist`);
    return r;
  }

  /** Prepare (active) or View (view): a new snapshot on top of committed `parent`. */
  async create(kind: 'active' | 'view', key: string, parent: string, labels: Record<string, string>): Promise<MountSpec[]> {
    const mounts = await this.lock.run(async () => {
      if (key === '') throw new LayerfsError('INVALID_ARGUMENT', 'snapshot key is empty');
      checkLabels(labels);
      const data = await this.meta.read();
      if (data.snapshots[key]) throw new LayerfsError('ALREADY_EXISTS', `snapshot ${key} already exists`);
      if (parent !== '') {
        const p = data.snapshots[parent];
        if (!p) throw new LayerfsError('NOT_FOUND', `parent snapshot ${parent} does not exist`);
        if (p.kind !== 'committed') throw new LayerfsError('INVALID_ARGUMENT', `parent ${parent} is not a committed snapshot`);
      }
      const id = String(data.nextId);
      const staging = join(this.snapshotsDir, stagingName());
      await mkdir(join(staging, 'fs'), { recursive: true, mode: 0o755 });
      if (kind === 'active') await mkdir(join(staging, 'work'), { mode: 0o700 });
      await rename(staging, join(this.snapshotsDir, id));
      const now = new Date().toISOString();
      const record: SnapshotRecord = { id, kind, parent, labels: { ...labels }, created: now, updated: now };
      try {
        await this.meta.write({ ...data, nextId: data.nextId + 1, snapshots: { ...data.snapshots, [key]: record } });
      } catch (err) {
        await rm(join(this.snapshotsDir, id), { recursive: true, force: true });
        throw err;
      }
      return this.mountsOf(await this.meta.read(), record);
    });
    await this.ensureIndex(mounts);
    return mounts;
  }

  /**
   * Builds the parent chain's index cache if it is missing, here in the long-lived
   * service (outside the lock: it walks every layer once), so that no mount of the chain
   * pays for the walk. A failure only costs speed: the mount process builds it itself.
   */
  private async ensureIndex(mounts: MountSpec[]): Promise<void> {
    const opt = (name: string): string | undefined => mounts[0]?.options.find((o) => o.startsWith(`${name}=`))?.slice(name.length + 1);
    const cache = opt('layerfs_index');
    const lowers = opt('lowerdir');
    if (cache === undefined || lowers === undefined) return;
    // Built as layerfs-overlay reads the layers (layerfs_index= is for it alone).
    await LowerIndex.ensureCache(lowers.split(':'), cache, { aufsWhiteouts: MOUNT_PROGRAM_READS_AUFS }).catch(() => undefined);
  }

  /** The mounts of an active or view snapshot. */
  async mounts(key: string): Promise<MountSpec[]> {
    const data = await this.meta.read();
    const r = await this.get(data, key);
    if (r.kind === 'committed') throw new LayerfsError('FAILED_PRECONDITION', `snapshot ${key} is committed: only active and view snapshots have mounts`);
    return this.mountsOf(data, r);
  }

  private mountsOf(data: MetadataFile, r: SnapshotRecord): MountSpec[] {
    const lowers: string[] = [];
    for (let p = r.parent; p !== ''; ) {
      const rec = data.snapshots[p];
      if (!rec) throw new LayerfsError('FAILED_PRECONDITION', `parent chain broken: ${p} is missing`);
      lowers.push(this.fsDir(rec.id));
      p = rec.parent;
    }
    return snapshotMounts({
      kind: r.kind === 'view' ? 'view' : 'active',
      upper: this.fsDir(r.id),
      work: this.workDir(r.id),
      lowers,
      ...(r.parent !== '' ? { indexCache: join(this.snapshotsDir, data.snapshots[r.parent]!.id, 'lower-index') } : {}),
      ...(this.options.mountProgram ? { program: this.options.mountProgram } : {}),
    });
  }

  /** Commits active `key` as `name`; its folder becomes a read-only layer. */
  async commit(name: string, key: string, labels: Record<string, string>): Promise<void> {
    return this.lock.run(async () => {
      if (name === '') throw new LayerfsError('INVALID_ARGUMENT', 'snapshot name is empty');
      checkLabels(labels);
      const data = await this.meta.read();
      const r = await this.get(data, key);
      if (r.kind !== 'active') throw new LayerfsError('FAILED_PRECONDITION', `snapshot ${key} is ${r.kind === 'view' ? 'a view' : 'committed'}: only an active snapshot can be committed`);
      if (data.snapshots[name]) throw new LayerfsError('ALREADY_EXISTS', `snapshot ${name} already exists`);
      const usage = await diskUsage(this.fsDir(r.id));
      const now = new Date().toISOString();
      const snapshots = { ...data.snapshots };
      delete snapshots[key];
      snapshots[name] = { id: r.id, kind: 'committed', parent: r.parent, labels: { ...labels }, created: now, updated: now, usage };
      await this.meta.write({ ...data, snapshots });
      // The work folder only stages copy-ups of a writable layer: a committed one has none.
      await rm(this.workDir(r.id), { recursive: true, force: true });
    });
  }

  /** Removes a snapshot without children, and its files. */
  async remove(key: string): Promise<void> {
    return this.lock.run(async () => {
      const data = await this.meta.read();
      const r = await this.get(data, key);
      const child = Object.entries(data.snapshots).find(([, s]) => s.parent === key);
      if (child) throw new LayerfsError('FAILED_PRECONDITION', `snapshot ${key} has a child (${child[0]}): remove it first`);
      const snapshots = { ...data.snapshots };
      delete snapshots[key];
      await this.meta.write({ ...data, snapshots });
      await this.removeFolder(r.id);
    });
  }

  /** Renamed away first, so an interrupted delete leaves a staging name Cleanup removes. */
  private async removeFolder(id: string): Promise<void> {
    const gone = join(this.snapshotsDir, stagingName());
    try {
      await rename(join(this.snapshotsDir, id), gone);
    } catch (err) {
      if (hasErrnoCode(err, 'ENOENT')) return;
      throw err;
    }
    await rm(gone, { recursive: true, force: true });
  }

  async stat(key: string): Promise<SnapshotInfo> {
    const data = await this.meta.read();
    return infoOf(key, await this.get(data, key));
  }

  /**
   * Updates labels (the only mutable field): `paths` empty or ["labels"] replaces them
   * all; "labels.KEY" sets or (value absent) deletes one.
   */
  async update(name: string, labels: Record<string, string>, paths: string[]): Promise<SnapshotInfo> {
    return this.lock.run(async () => {
      const data = await this.meta.read();
      const r = await this.get(data, name);
      let next: Record<string, string>;
      if (paths.length === 0) next = { ...labels };
      else {
        next = { ...r.labels };
        for (const path of paths) {
          if (path === 'labels') next = { ...labels };
          else if (path.startsWith('labels.')) {
            const k = path.slice('labels.'.length);
            if (labels[k] !== undefined) next[k] = labels[k];
            else delete next[k];
          } else throw new LayerfsError('INVALID_ARGUMENT', `cannot update ${JSON.stringify(path)} field on snapshot ${name}`);
        }
      }
      checkLabels(next);
      const updated: SnapshotRecord = { ...r, labels: next, updated: new Date().toISOString() };
      await this.meta.write({ ...data, snapshots: { ...data.snapshots, [name]: updated } });
      return infoOf(name, updated);
    });
  }

  /** Every snapshot matching any of `filters` (all when empty). */
  async list(filters: string[]): Promise<SnapshotInfo[]> {
    const filter = parseFilters(filters);
    const data = await this.meta.read();
    return Object.entries(data.snapshots)
      .map(([name, r]) => infoOf(name, r))
      .filter((i) => filter.matches(i));
  }

  /** Bytes and inodes a snapshot uses by itself (its own layer, not its parents). */
  async usage(key: string): Promise<{ size: number; inodes: number }> {
    const data = await this.meta.read();
    const r = await this.get(data, key);
    if (r.kind === 'committed' && r.usage) return r.usage;
    return diskUsage(this.fsDir(r.id));
  }

  /** Removes folders no snapshot names (interrupted creates and removes). */
  async cleanup(): Promise<number> {
    return this.lock.run(async () => {
      const data = await this.meta.read();
      const used = new Set(Object.values(data.snapshots).map((r) => r.id));
      let removed = 0;
      for (const n of await readdir(this.snapshotsDir)) {
        if (used.has(n)) continue;
        await rm(join(this.snapshotsDir, n), { recursive: true, force: true });
        removed++;
      }
      return removed;
    });
  }
}
