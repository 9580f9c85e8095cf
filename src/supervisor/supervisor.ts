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
import { mkdir, readdir, stat } from 'node:fs/promises';
import { resolve as resolvePath } from 'node:path';
import { LayerfsError, hasErrnoCode } from '../core/errors.js';
import { acquireLock, type Store, tryLock } from '../store/index.js';
import { abortAndDetach, listMounts, mountsAt } from '../sys/mount-table.js';
import { LowerIndex, removeTree } from '../union/index.js';
import {
  containerPaths,
  mountSourceFor,
  newContainerId,
  readRecord,
  writeRecord,
  type Container,
  type ContainerRecord,
} from './container-record.js';
import type { EngineName } from '../fuse/index.js';
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

/** A mount point must exist, be a folder, be empty (FUSE refuses to hide files) and not be mounted on. */
async function checkMountpoint(mountpoint: string): Promise<void> {
  const st = await stat(mountpoint).catch(() => null);
  if (!st) throw new LayerfsError('NOT_FOUND', `mount point ${mountpoint} does not exist`, { hint: `create it first: mkdir -p ${mountpoint}` });
  if (!st.isDirectory()) throw new LayerfsError('INVALID_ARGUMENT', `mount point ${mountpoint} is not a directory`);
  if ((await mountsAt(mountpoint)).length > 0) throw new LayerfsError('IN_USE', `${mountpoint} is already a mount point`);
  if ((await readdir(mountpoint)).length > 0) {
    throw new LayerfsError('INVALID_ARGUMENT', `mount point ${mountpoint} is not empty`, { hint: 'mount on an empty directory: the mount would hide what it holds' });
  }
}

export class Supervisor {
  constructor(readonly store: Store) {}

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

  /** The container `ref` names (as `get`), with where its files are. */
  async open(ref: string): Promise<Container> {
    return this.handle(await this.get(ref));
  }

  /** The handle of a record already read (from `list`, `find`, `get`). */
  handle(record: ContainerRecord): Container {
    return { record, paths: containerPaths(this.dir, record.id) };
  }

  /** Mounts a new container of `imageRef`, or brings back the named one. */
  async mount(req: MountRequest): Promise<ContainerRecord> {
    const mountpoint = resolvePath(req.mountpoint);
    await checkMountpoint(mountpoint);

    // The store lock only while the record is found or made: from then on the record
    // keeps the image and its layers from rmi and prune (store/image-remover.ts), and the
    // slow part — index check, launching the mount process — runs under this container's
    // own lock, so concurrent runs of other containers do not wait for it.
    const found = await this.store.withLock(async () => {
      const imageId = await this.store.resolveImage(req.imageRef);
      const existing = req.name ? await this.find(req.name) : undefined;
      if (existing && existing.image !== imageId) {
        throw new LayerfsError('INVALID_ARGUMENT', `container ${existing.name} is of image ${existing.imageRef}, not ${req.imageRef}`);
      }
      return { imageId, created: !existing, record: existing ?? (await this.newRecord(imageId, req)) };
    });
    const imageId = found.imageId;
    return this.withContainerLock(found.record.id, async () => {
      let record = await readRecord(containerPaths(this.dir, found.record.id).record).catch(() => undefined);
      if (!record) throw new LayerfsError('NOT_FOUND', `container ${found.record.name} was removed meanwhile`);
      if (record.state === 'mounted') throw new LayerfsError('IN_USE', `container ${record.name} is already mounted on ${record.mountpoint}`);
      const readOnly = req.readOnly ?? record.readOnly;
      const p = containerPaths(this.dir, record.id);
      // The store lists layers bottom first; overlay's lowerdir order is top first.
      const lowerDirs = (await this.store.layerDirs(imageId)).reverse();
      const indexCache = await this.store.lowerIndexCache(imageId);
      // Built here on the first mount of an image: the long-lived mount process then only
      // loads it and never carries the walk's garbage. Two first mounts at once may both
      // build it; each writes a temp file and renames it, so readers see one whole file.
      // A failure here is not fatal: the mount process builds (and tries to write) it itself.
      if (indexCache !== undefined) await LowerIndex.ensureCache(lowerDirs, indexCache).catch(() => undefined);
      const launched = launchUnionMount(
        {
          mountpoint,
          lowerDirs,
          ...(indexCache !== undefined ? { indexCache } : {}),
          ...(readOnly ? {} : { upperDir: p.upper, workDir: p.work }),
          fsname: mountSourceFor(record),
          damageFile: p.damage,
          ...(req.volatile ? { volatile: true } : {}),
          ...(req.engine ? { engine: req.engine } : {}),
          extraOptions: [...(readOnly ? ['ro'] : []), ...(req.suid ? ['suid'] : [])],
        },
        p.log,
      );
      // A container made by this call and never mounted is no container: nothing stays behind.
      const { pid } = await launched.catch(async (err: unknown) => {
        if (found.created) await removeTree(p.dir);
        throw err;
      });
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
    // 0700: the mount point `merged` below serves setuid binaries (store-permissions.ts).
    await mkdir(p.dir, { recursive: true, mode: 0o700 });
    await mkdir(p.upper);
    await mkdir(p.work, { recursive: true, mode: 0o700 });
    await writeRecord(p.record, record);
    return record;
  }

  /** Renames a container (the name must be free); its id, mount and writable layer stay. */
  async rename(ref: string, name: string): Promise<ContainerRecord> {
    return this.store.withLock(async () => {
      const record = await this.get(ref);
      const taken = (await this.list()).find((c) => c.name === name);
      if (taken && taken.id !== record.id) {
        throw new LayerfsError('ALREADY_EXISTS', `the container name ${name} is already in use`, { hint: `remove it with \`layerfs rm ${name}\` or choose another name` });
      }
      const updated = { ...record, name };
      await writeRecord(containerPaths(this.dir, record.id).record, updated);
      return updated;
    });
  }

  /** Unmounts; the writable layer stays. */
  async unmount(ref: string): Promise<ContainerRecord> {
    const found = await this.get(ref);
    return this.withContainerLock(found.id, async () => {
      const record = await this.get(found.id);
      if (record.state !== 'mounted') throw new LayerfsError('FAILED_PRECONDITION', `container ${record.name} is not mounted`);
      return this.stopMount(record);
    });
  }

  /** Deletes the container and its writable layer (unmounting first with `force`). */
  async remove(ref: string, force = false): Promise<ContainerRecord> {
    const found = await this.get(ref);
    return this.withContainerLock(found.id, async () => {
      let record = await this.get(found.id);
      if (record.state === 'mounted') {
        if (!force) throw new LayerfsError('IN_USE', `container ${record.name} is mounted on ${record.mountpoint}`, { hint: `umount it first (layerfs umount ${record.name}), or use rm --force` });
        record = await this.stopMount(record);
      }
      // Its writable layer may hold paths deeper than Node's own rm reaches.
      await removeTree(containerPaths(this.dir, record.id).dir);
      return record;
    });
  }

  /**
   * Clears mounts whose process died and mount processes whose mount vanished. Reads the
   * mount table once; a container whose lock another process holds is being mounted or
   * removed right now and is left to it.
   */
  async recover(): Promise<ContainerRecord[]> {
    const fixed: ContainerRecord[] = [];
    const candidates = (await this.list()).filter((r) => r.state === 'mounted' && r.mountpoint);
    if (candidates.length === 0) return fixed;
    const table = await listMounts();
    for (const seen of candidates) {
      const ours = table.filter((m) => m.mountpoint === seen.mountpoint && m.source === mountSourceFor(seen));
      if (ours.length > 0 && (await isMountProcess(seen.pid))) continue;
      const lock = await tryLock(this.lockFile(seen.id));
      if (!lock) continue;
      try {
        const record = await readRecord(containerPaths(this.dir, seen.id).record).catch(() => undefined);
        if (!record || record.state !== 'mounted' || !record.mountpoint) continue;
        const alive = await isMountProcess(record.pid);
        const now = (await mountsAt(record.mountpoint)).filter((m) => m.source === mountSourceFor(record));
        if (alive && now.length > 0) continue;
        if (alive && record.pid) process.kill(record.pid, 'SIGTERM');
        if (now.length > 0) await abortAndDetach(record.mountpoint, new Set((await mountsAt(record.mountpoint)).filter((m) => m.source !== mountSourceFor(record)).map((m) => m.device)));
        const updated: ContainerRecord = { ...record, state: 'unmounted', pid: null };
        await writeRecord(containerPaths(this.dir, record.id).record, updated);
        fixed.push(updated);
      } finally {
        await lock.release();
      }
    }
    return fixed;
  }

  /** `containers/<id>.lock`: beside the folder, so removing the folder under it is fine. */
  private lockFile(id: string): string {
    return `${this.dir}/${id}.lock`;
  }

  /** Runs `fn` holding one container's lock (mount, unmount, remove, recovery of that container). */
  private async withContainerLock<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const lock = await acquireLock(this.lockFile(id));
    try {
      return await fn();
    } finally {
      await lock.release();
    }
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
