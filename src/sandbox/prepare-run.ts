/**
 * Everything `run` does before the process starts: check the options and the runtime,
 * create the container, mount it on `<container>/merged`, resolve the user and working
 * directory against the merged rootfs, write /etc files and the runtime spec
 * (`<container>/bundle/config.json`), and record run.json. Any failure removes what was
 * created, so a bad request leaves nothing behind.
 */
import { access, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { hostname as hostHostname } from 'node:os';
import { LayerfsError } from '../core/errors.js';
import { isRootless } from '../core/user-dirs.js';
import { ownMapping } from '../userns/index.js';
import { rootlessLimitsError, rootlessSpec } from './rootless-spec.js';
import type { Store } from '../store/index.js';
import { type ContainerRecord, Supervisor } from '../supervisor/index.js';
import { writeEtcFiles } from './etc-files.js';
import { containerArgs, containerEnv, imageRunConfig } from './image-process.js';
import { OciRuntime } from './oci-runtime.js';
import { mkdirInRootfs } from './rootfs-path.js';
import { checkRunOptions, type RunOptions } from './run-options.js';
import { runPaths, selfIdentity, writeRunState, type RunState } from './run-state.js';
import { buildRuntimeSpec } from './runtime-spec.js';
import { resolveUserInRootfs } from './user-resolver.js';

/** A created, mounted container whose runtime spec is written, ready to start. */
export interface PreparedRun {
  storeRoot: string;
  supervisor: Supervisor;
  record: ContainerRecord;
  dir: string;
  runtime: OciRuntime;
  state: RunState;
}

/** Whether the memory cgroup accounts swap here (v1 memsw, or v2 memory.swap.max). */
async function swapAccounting(): Promise<boolean> {
  for (const f of ['/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes', '/sys/fs/cgroup/memory.swap.max']) {
    if (await access(f).then(() => true, () => false)) return true;
  }
  return false;
}

/** Creates and prepares a run container; see the module comment. */
export async function prepareRun(store: Store, o: RunOptions): Promise<PreparedRun> {
  checkRunOptions(o);
  const rootless = isRootless();
  if (rootless) {
    const refused = rootlessLimitsError(o);
    if (refused) throw refused;
  }
  const runtime = await OciRuntime.locate(o.runtime, store.paths.root);
  const imageId = await store.resolveImage(o.imageRef);
  const image = imageRunConfig((await store.images.config(imageId)).config.config);
  const args = containerArgs(image, o.entrypoint, o.args);

  const supervisor = new Supervisor(store);
  let record = await supervisor.create({ imageRef: o.imageRef, ...(o.name ? { name: o.name } : {}) });
  const dir = supervisor.handle(record).paths.dir;
  const p = runPaths(dir);
  // Recorded first, naming this process as the owner: if it dies while preparing, the
  // next command's recovery tears the half-made container down.
  const state: RunState = {
    status: 'created',
    runtime: o.runtime,
    command: args,
    autoRemove: o.autoRemove,
    detached: o.detach,
    monitor: await selfIdentity(),
    containerPid: null,
    startedAt: null,
    finishedAt: null,
    exitCode: null,
    error: null,
  };
  try {
    await writeRunState(dir, state);
    await mkdir(p.rootfs, { recursive: true });
    await mkdir(p.bundle, { recursive: true });
    // suid: setuid binaries of the image work as in Docker (noNewPrivileges still applies).
    // --rm: the writable layer dies with the container, so copy-ups skip their flush (podman
    // mounts such containers volatile).
    record = await supervisor.mount({ imageRef: o.imageRef, mountpoint: p.rootfs, name: record.name, suid: true, ...(o.autoRemove ? { volatile: true } : {}) });
    const user = await resolveUserInRootfs(p.rootfs, o.user ?? image.User ?? '');
    const cwd = o.workdir ?? (image.WorkingDir || '/');
    await mkdirInRootfs(p.rootfs, cwd);
    const hostname = o.network === 'host' ? hostHostname() : (o.hostname ?? record.id.slice(0, 12));
    const etcFiles = await writeEtcFiles(dir, { hostname, network: o.network });
    const spec = buildRuntimeSpec({
      rootfs: p.rootfs,
      readOnlyRootfs: o.readOnly,
      args,
      env: containerEnv(image, o.env, { ...(o.network === 'host' ? {} : { hostname }), home: user.home, tty: o.tty }),
      cwd,
      user,
      terminal: o.tty,
      ...(o.tty && process.stdout.columns ? { consoleSize: { height: process.stdout.rows, width: process.stdout.columns } } : {}),
      ...(o.network === 'host' ? {} : { hostname }),
      network: o.network,
      etcFiles,
      volumes: o.volumes,
      ...(o.memory !== undefined ? { memory: o.memory, swapAccounting: await swapAccounting() } : {}),
      ...(o.pidsLimit !== undefined ? { pidsLimit: o.pidsLimit } : {}),
    });
    // An ordinary user's container runs in a user namespace mapped as the store's layers.
    const final = rootless ? rootlessSpec(spec, ownMapping(), process.getuid!(), process.getgid!()) : spec;
    const tmp = `${p.spec}.tmp-${process.pid}`;
    await writeFile(tmp, JSON.stringify(final, null, 2) + '\n');
    await rename(tmp, p.spec);
    return { storeRoot: store.paths.root, supervisor, record, dir, runtime, state };
  } catch (err) {
    await supervisor.remove(record.id, true).catch(() => undefined);
    throw err;
  }
}

/** The runtime spec of a prepared container, as written. */
export async function readSpec(dir: string): Promise<Record<string, unknown>> {
  try {
    return JSON.parse(await readFile(runPaths(dir).spec, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new LayerfsError('NOT_FOUND', `container folder ${dir} has no runtime spec`, { cause: err });
  }
}
