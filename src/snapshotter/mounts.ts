/**
 * What Mounts returns: the mount(2) descriptions containerd (or its runc shim) performs
 * to get a snapshot's tree.
 *
 *   no parent, active     bind of the snapshot's own folder, rw (nothing to merge)
 *   no parent, view       bind of an empty folder, ro
 *   one parent, view      bind of the parent's layer, ro (a base layer needs no merge)
 *   otherwise             `fuse3.layerfs-overlay`: containerd's mount package runs
 *                         `mount.fuse3 layerfs TARGET -o lowerdir=…,upperdir=…,workdir=…
 *                         -t layerfs-overlay`, and mount.fuse3 runs `layerfs-overlay` from
 *                         PATH — the fuse-overlayfs-compatible mount program. A view gets
 *                         no upperdir and `ro`. `layerfs_index=` names the lower-index
 *                         cache of the parent chain (committed layers never change, so
 *                         each mount loads it instead of walking every layer).
 *
 * `lowerdir` lists the parent chain top first, as overlayfs does. The FUSE mount is owned
 * by whoever mounted it (containerd or its shim), not by the snapshotter: unmounting it
 * ends the layerfs process, and the snapshotter can restart without touching live
 * containers (native-notes/containerd-snapshotter.md says why this form was chosen).
 */

/** containerd.types.Mount. */
export interface MountSpec {
  type: string;
  source: string;
  target: string;
  options: string[];
}

/** The mount program containerd reaches through mount.fuse3 (`fuse3.<program>`). */
export const DEFAULT_MOUNT_PROGRAM = 'layerfs-overlay';

export interface MountInput {
  kind: 'view' | 'active';
  /** The snapshot's own upper folder and overlay work folder. */
  upper: string;
  work: string;
  /** Parent chain, nearest parent first (overlay's lowerdir order). */
  lowers: string[];
  /** Program name after `fuse3.` (fuse-overlayfs for comparisons). */
  program?: string;
  /** The lowers' index cache file, passed as `layerfs_index=` (layerfs-overlay only). */
  indexCache?: string;
}

/** The mounts for one active or view snapshot. */
export function snapshotMounts(m: MountInput): MountSpec[] {
  const ro = m.kind === 'view';
  if (m.lowers.length === 0) {
    return [{ type: 'bind', source: m.upper, target: '', options: [ro ? 'ro' : 'rw', 'rbind'] }];
  }
  if (ro && m.lowers.length === 1) {
    return [{ type: 'bind', source: m.lowers[0]!, target: '', options: ['ro', 'rbind'] }];
  }
  const program = m.program ?? DEFAULT_MOUNT_PROGRAM;
  const options = [`lowerdir=${m.lowers.join(':')}`];
  if (m.indexCache !== undefined && program === DEFAULT_MOUNT_PROGRAM) options.push(`layerfs_index=${m.indexCache}`);
  if (ro) options.push('ro');
  else options.push(`upperdir=${m.upper}`, `workdir=${m.work}`);
  return [{ type: `fuse3.${program}`, source: 'layerfs', target: '', options }];
}
