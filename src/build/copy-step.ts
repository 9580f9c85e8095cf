/**
 * A COPY or ADD step: a container of the parent image is mounted by the supervisor, the
 * sources are written into it through the mount (copy-files.ts), the mount is taken down
 * and the writable layer becomes the new layer through the commit path. `--from` sources
 * are read from another image (a stage's result, or an image in the store) mounted
 * read-only for the step. Containers and mounts are removed whatever happens.
 */
import { mkdir, rm } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { Digest } from '../core/digest.js';
import { LayerfsError } from '../core/errors.js';
import { resolveUser, readRootfsFile } from '../sandbox/index.js';
import type { Store } from '../store/index.js';
import { Supervisor } from '../supervisor/index.js';
import { commitContainer } from '../commit/index.js';
import { copyInto, type CopySpec } from './copy-files.js';
import { HISTORY_COMMENT, stateOfImage, type ImageState } from './image-state.js';

/**
 * Mounts image `id` in a new container and runs `during` on its rootfs; after the unmount,
 * `after` gets the container's writable layer (to commit it). The container goes in the end.
 */
export async function withMountedImage<T>(
  store: Store,
  id: Digest,
  readOnly: boolean,
  during: (rootfs: string) => Promise<void>,
  after: (upperDir: string, name: string) => Promise<T>,
): Promise<T> {
  const supervisor = new Supervisor(store);
  const record = await supervisor.create({ imageRef: id, name: `build-${randomBytes(6).toString('hex')}`, readOnly });
  const p = supervisor.handle(record).paths;
  try {
    if ((await store.imageLayers(id)).length === 0) {
      // An image without layers (FROM scratch) has nothing to merge: the writable layer is
      // the whole rootfs, written directly (there is nothing to copy up or white out).
      const root = readOnly ? join(p.dir, 'empty') : p.upper;
      await mkdir(root, { recursive: true });
      await during(root);
      return await after(p.upper, record.name);
    }
    const mnt = join(p.dir, 'merged');
    await mkdir(mnt, { recursive: true });
    await supervisor.mount({ imageRef: id, mountpoint: mnt, name: record.name, readOnly });
    try {
      await during(mnt);
    } finally {
      await supervisor.unmount(record.id);
    }
    return await after(p.upper, record.name);
  } finally {
    await supervisor.remove(record.id, true).catch(() => undefined);
    await rm(p.dir, { recursive: true, force: true });
  }
}

/** `--chown=user[:group]`: names from the rootfs's /etc/passwd and /etc/group; a user alone means gid = uid (Docker's rule). */
export async function resolveChown(rootfs: string, spec: string): Promise<{ uid: number; gid: number }> {
  const passwd = await readRootfsFile(rootfs, '/etc/passwd');
  const group = await readRootfsFile(rootfs, '/etc/group');
  const [u, g] = spec.split(':') as [string, string | undefined];
  const uid = resolveUser(u, passwd, group).uid;
  const gid = g === undefined || g === '' ? uid : resolveUser(`${u}:${g}`, passwd, group).gid;
  return { uid, gid };
}

/** What a COPY/ADD step needs. */
export interface CopyStepInput {
  parent: ImageState;
  spec: Omit<CopySpec, 'owner'>;
  chown: string | undefined;
  createdBy: string;
}

/** Runs the step; returns the new state (stored by the commit). */
export async function copyStep(store: Store, i: CopyStepInput): Promise<ImageState> {
  const parent = i.parent.stored;
  if (!parent) throw new LayerfsError('IO', 'internal: COPY on a parent that is not stored');
  return withMountedImage(
    store,
    parent,
    false,
    async (rootfs) => {
      const owner = i.chown ? await resolveChown(rootfs, i.chown) : undefined;
      await copyInto(rootfs, { ...i.spec, owner });
    },
    async (upperDir, name) => {
      const committed = await commitContainer(store, { image: parent, upperDir, containerName: name, createdBy: i.createdBy, message: HISTORY_COMMENT });
      return stateOfImage(store, committed.id);
    },
  );
}
