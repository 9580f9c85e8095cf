/**
 * The supervisor owns each container's writable layer and mount:
 *
 *   create ─▶ mount (a detached FUSE process serves image layers + writable layer)
 *     ▲           │ umount: SIGTERM → the process unmounts and exits; layer kept
 *     └───────────┘ rm: unmount if needed, then delete record + writable layer
 *
 * `recover()` runs before every command: a container recorded as mounted whose process
 * died (SIGKILL, OOM) has its dead mount aborted and detached and is marked unmounted —
 * its writable layer is untouched, and `mount --name` brings it back. Nothing here ever
 * deletes a writable layer except `remove()`.
 */
import { mkdir, readdir, rm, stat } from 'node:fs/promises';
import { resolve as resolvePath } from 'node:path';
import { LayerfsError, hasErrnoCode } from '../core/errors.js';
import type { Store } from '../store/store.js';
import { abortAndDetach, mountsAt } from '../sys/mount-table.js';
import { LowerIndex } from '../union/lower-index.js';
import {
  containerPaths,
  mountSourceFor,
  newContainerId,
  readRecord,
  writeRecord,
  type ContainerRecord,
} from './container-record.js';
import type { EngineName } from '../fuse/engine-choice.js';
import { launchUnionMount } from './mount-launcher.js';
import { isMountProcess, waitForExit } from './process-check.js';

export interface MountRequest {
  imageRef: string;
  mountpoint: string;
  name?: string;
  readOnly?: boolean;
  /** Honour setuid bits (FUSE mounts are nosuid by default); `run` sets it, as a container rootfs must. */
  suid?: boolean;
  /** The writable layer goes with the container (`run --rm`): see UnionMountConfig.volatile. */
  volatile?: boolean;
  /** The engine serving the mount (`--engine`); absent: LAYERFS_ENGINE or the default. */
  engine?: EngineName;
}

export class Supervisor {
  constructor(private readonly store: Store) {}

  private get dir(): string {
    return this.store.paths.containersDir;
  }

  async list(): Promise<ContainerRecord[]> {
    let ids: string[];
    try {
      ids = await readdir(this.dir);
    } catch (err) {
      if (hasErrnoCode(err, 'ENOENT')) return [];
      throw err;
    }
    const out: ContainerRecord[] = [];
    for (const id of ids) {
      try {
        out.push(await readRecord(containerPaths(this.dir, id).record));
      } catch {
        // A folder without a readable record is a create that was interrupted: not a container.
      }
    }
    return out.sort((a, b) => a.created.localeCompare(b.created));
  }

  /** By name, full id, id prefix (≥ 4 chars) or mountpoint. */
  async find(ref: string): Promise<ContainerRecord | undefined> {
    const all = await this.list();
    const abs = resolvePath(ref);
    return (
      all.find((c) => c.name === ref || c.id === ref) ??
      all.find((c) => c.mountpoint === abs && c.state === 'mounted') ??
      (ref.length >= 4 ? all.filter((c) => c.id.startsWith(ref)).at(0) : undefined)
    );
  }

  async get(ref: string): Promise<ContainerRecord> {
    const c = await this.find(ref);
    if (!c) throw new LayerfsError('NOT_FOUND', `no such container: ${ref}`);
    return c;
  }

  /** Mounts a new container of `imageRef`, or brings back the named one. */
  async mount(req: MountRequest): Promise<ContainerRecord> {
    const mountpoint = resolvePath(req.mountpoint);
    const st = await stat(mountpoint).catch(() => null);
    if (!st?.isDirectory()) throw new LayerfsError('INVALID_ARGUMENT', `mount point ${mountpoint} is not a directory`);
    if ((await mountsAt(mountpoint)).length > 0) throw new LayerfsError('IN_USE', `${mountpoint} is already a mount point`);

    return this.store.withLock(async () => {
      await this.recover();
      const imageId = await this.store.resolveImage(req.imageRef);
      let record = req.name ? await this.find(req.name) : undefined;
      if (record) {
        if (record.state === 'mounted') throw new LayerfsError('IN_USE', `container ${record.name} is already mounted on ${record.mountpoint}`);
        if (record.image !== imageId) {
          throw new LayerfsError('INVALID_ARGUMENT', `container ${record.name} is of image ${record.imageRef}, not ${req.imageRef}`);
        }
      } else {
        record = await this.newRecord(imageId, req);
      }
      const readOnly = req.readOnly ?? record.readOnly;
      const p = containerPaths(this.dir, record.id);
      // The store lists layers bottom first; overlay's lowerdir order is top first.
      const lowerDirs = (await this.store.layerDirs(imageId)).reverse();
      const indexCache = await this.store.lowerIndexCache(imageId);
      // Built here, under the store lock, on the first mount of an image: the long-lived
      // mount process then only loads it and never carries the walk's garbage. A failure
      // here is not fatal: the mount process builds (and tries to write) it itself.
      if (indexCache !== undefined) await LowerIndex.ensureCache(lowerDirs, indexCache).catch(() => undefined);
      const { pid } = await launchUnionMount(
        {
          mountpoint,
          lowerDirs,
          ...(indexCache !== undefined ? { indexCache } : {}),
          ...(readOnly ? {} : { upperDir: p.upper, workDir: p.work }),
          fsname: mountSourceFor(record),
          ...(req.volatile ? { volatile: true } : {}),
          ...(req.engine ? { engine: req.engine } : {}),
          extraOptions: [...(readOnly ? ['ro'] : []), ...(req.suid ? ['suid'] : [])],
        },
        p.log,
      );
      record = { ...record, readOnly, state: 'mounted', mountpoint, pid };
      await writeRecord(p.record, record);
      return record;
    });
  }

  /**
   * Creates a container (record + empty writable layer) without mounting it, so a caller
   * can put its mount point inside the container folder; `mount({ name })` mounts it.
   */
  async create(req: Omit<MountRequest, 'mountpoint'>): Promise<ContainerRecord> {
    return this.store.withLock(async () => {
      const imageId = await this.store.resolveImage(req.imageRef);
      if (req.name && (await this.list()).some((c) => c.name === req.name)) {
        throw new LayerfsError('ALREADY_EXISTS', `the container name ${req.name} is already in use`, { hint: `remove it with \`layerfs rm ${req.name}\` or choose another --name` });
      }
      return this.newRecord(imageId, req);
    });
  }

  private async newRecord(imageId: ContainerRecord['image'], req: Omit<MountRequest, 'mountpoint'>): Promise<ContainerRecord> {
    const id = newContainerId();
    const record: ContainerRecord = {
      id,
      name: req.name ?? id.slice(0, 12),
      image: imageId,
      imageRef: req.imageRef,
      created: new Date().toISOString(),
      readOnly: !!req.readOnly,
      state: 'created',
      mountpoint: null,
      pid: null,
    };
    const p = containerPaths(this.dir, id);
    await mkdir(p.upper, { recursive: true });
    await mkdir(p.work, { recursive: true, mode: 0o700 });
    await writeRecord(p.record, record);
    return record;
  }

  /** Unmounts; the writable layer stays. */
  async unmount(ref: string): Promise<ContainerRecord> {
    return this.store.withLock(async () => {
      const record = await this.get(ref);
      if (record.state !== 'mounted') throw new LayerfsError('FAILED_PRECONDITION', `container ${record.name} is not mounted`);
      return this.stopMount(record);
    });
  }

  /** Deletes the container and its writable layer (unmounting first with `force`). */
  async remove(ref: string, force = false): Promise<ContainerRecord> {
    return this.store.withLock(async () => {
      let record = await this.get(ref);
      if (record.state === 'mounted') {
        if (!force) throw new LayerfsError('IN_USE', `container ${record.name} is mounted on ${record.mountpoint}`, { hint: 'umount it first, or use rm --force' });
        record = await this.stopMount(record);
      }
      await rm(containerPaths(this.dir, record.id).dir, { recursive: true, force: true });
      return record;
    });
  }

  /** Clears mounts whose process died and mount processes whose mount vanished. */
  async recover(): Promise<ContainerRecord[]> {
    const fixed: ContainerRecord[] = [];
    for (const record of await this.list()) {
      if (record.state !== 'mounted' || !record.mountpoint) continue;
      const alive = await isMountProcess(record.pid);
      const ours = (await mountsAt(record.mountpoint)).filter((m) => m.source === mountSourceFor(record));
      if (alive && ours.length > 0) continue;
      if (alive && record.pid) process.kill(record.pid, 'SIGTERM');
      if (ours.length > 0) await abortAndDetach(record.mountpoint, new Set((await mountsAt(record.mountpoint)).filter((m) => m.source !== mountSourceFor(record)).map((m) => m.device)));
      const updated: ContainerRecord = { ...record, state: 'unmounted', pid: null };
      await writeRecord(containerPaths(this.dir, record.id).record, updated);
      fixed.push(updated);
    }
    return fixed;
  }

  private async stopMount(record: ContainerRecord): Promise<ContainerRecord> {
    if (record.pid && (await isMountProcess(record.pid))) {
      process.kill(record.pid, 'SIGTERM');
      await waitForExit(record.pid, 15_000);
    }
    if (record.mountpoint) {
      const ours = (await mountsAt(record.mountpoint)).some((m) => m.source === mountSourceFor(record));
      if (ours) {
        const others = (await mountsAt(record.mountpoint)).filter((m) => m.source !== mountSourceFor(record)).map((m) => m.device);
        await abortAndDetach(record.mountpoint, new Set(others));
      }
    }
    if (record.pid && (await isMountProcess(record.pid))) process.kill(record.pid, 'SIGKILL');
    const updated: ContainerRecord = { ...record, state: 'unmounted', pid: null };
    await writeRecord(containerPaths(this.dir, record.id).record, updated);
    return updated;
  }
}
