/**
 * `start` of a run container that has exited: the same container again — its writable
 * layer mounted on its rootfs once more, the same runtime spec, the same /etc files —
 * with run.json reset to "created" and owned by the caller, ready for the monitor (in the
 * foreground with `start -a`, else detached, whose output goes to `logs`).
 */
import { LayerfsError } from '../core/errors.js';
import type { Store } from '../store/index.js';
import { Supervisor } from '../supervisor/index.js';
import { OciRuntime } from './oci-runtime.js';
import type { PreparedRun } from './prepare-run.js';
import { isRunning, type RunContainer } from './run-control.js';
import { runPaths, selfIdentity, updateRunState, type RunState } from './run-state.js';

/** Mounts an exited run container again and resets its state; see the module comment. */
export async function prepareStart(store: Store, c: RunContainer, detached: boolean): Promise<PreparedRun> {
  if (!c.state) {
    throw new LayerfsError('FAILED_PRECONDITION', `container ${c.record.name} was never run (it is a mount)`, { hint: `mount it again with layerfs mount --name ${c.record.name} IMAGE DIR` });
  }
  if (await isRunning(c)) throw new LayerfsError('FAILED_PRECONDITION', `container ${c.record.name} is already running`);
  const runtime = await OciRuntime.locate(c.state.runtime, store.paths.root);
  const supervisor = new Supervisor(store);
  const previous = c.state;
  const state = (await updateRunState(c.dir, {
    status: 'created',
    detached,
    monitor: await selfIdentity(),
    containerPid: null,
    startedAt: null,
    finishedAt: null,
    exitCode: null,
    error: null,
  })) as RunState;
  try {
    // By image id, not the name it was run as: the tag may have moved since.
    const record = await supervisor.mount({ imageRef: c.record.image, mountpoint: runPaths(c.dir).rootfs, name: c.record.name, suid: true, ...(state.autoRemove ? { volatile: true } : {}) });
    return { storeRoot: store.paths.root, supervisor, record, dir: c.dir, runtime, state };
  } catch (err) {
    await updateRunState(c.dir, { ...previous, monitor: null, error: (err as Error).message });
    throw err;
  }
}
