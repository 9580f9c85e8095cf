/**
 * A container's merged view rebuilt from disk, for reading only: the image stack plus
 * the writable layer (`<root>/containers/<id>/upper`) loaded the way the mount process
 * loads it. It reads the upper directory directly, so it works whether or not the
 * container is mounted, and it never talks to a mount process.
 */
import { stat } from 'node:fs/promises';
import type { Digest } from '../core/digest.js';
import { LayerfsError, hasErrnoCode } from '../core/errors.js';
import type { Store } from '../store/index.js';
import { UnionView, UpperState } from '../union/index.js';
import { loadImageStack, type ImageStack } from './image-stack.js';

/** A container's writable layer over its image. */
export interface ContainerView {
  stack: ImageStack;
  /** The writable layer's folder. */
  upperDir: string;
  upper: UpperState;
  /** The merged view, resolved exactly as the mount resolves it. */
  view: UnionView;
}

/** Opens the view of a container of image `image` whose writable layer is `upperDir`. */
export async function openContainerView(store: Store, image: Digest, upperDir: string): Promise<ContainerView> {
  const stack = await loadImageStack(store, image);
  try {
    if (!(await stat(upperDir)).isDirectory()) throw new Error('not a directory');
  } catch (err) {
    if (hasErrnoCode(err, 'ENOENT')) {
      throw new LayerfsError('NOT_FOUND', `the container's writable layer ${upperDir} is missing`, { cause: err });
    }
    throw new LayerfsError('IO', `cannot read the writable layer ${upperDir}: ${(err as Error).message}`, { cause: err });
  }
  const upper = await UpperState.load(upperDir);
  return { stack, upperDir, upper, view: new UnionView(stack.index, upper) };
}
