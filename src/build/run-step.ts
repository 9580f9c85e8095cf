/**
 * A RUN step: a container of the parent image is created and mounted by the supervisor,
 * the command runs in it through the sandbox (runc, Docker's defaults, network none unless
 * `--network=host`), and its writable layer — copy-ups, whiteouts and opaque directories
 * as the mount recorded them — becomes the new layer through the commit path. The
 * container is removed afterwards whatever happened, so a failed or interrupted step
 * leaves no container, mount or writable layer, and nothing is cached.
 */
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { LayerfsError } from '../core/errors.js';
import { monitorContainer, prepareRun } from '../sandbox/index.js';
import type { Store } from '../store/index.js';
import { commitContainer } from '../commit/index.js';
import { HISTORY_COMMENT, stateOfImage, type ImageState } from './image-state.js';

/** What a RUN step needs. */
export interface RunStepInput {
  /** The parent, stored (`stored` set). */
  parent: ImageState;
  argv: string[];
  /** Build args for the environment (ENV of the same name wins; the caller filtered them). */
  env: string[];
  workdir: string | undefined;
  user: string | undefined;
  network: 'none' | 'host';
  createdBy: string;
  /** Receives the command's output (stdout and stderr, interleaved) once it ended. */
  output: (text: string) => void;
  /** Set when the build is interrupted: the command is killed and the step fails. */
  signal: AbortSignal;
}

/** Runs the step; returns the new state (stored: the commit loads it into the store). */
export async function runStep(store: Store, i: RunStepInput): Promise<ImageState> {
  if (!i.parent.stored) throw new LayerfsError('IO', 'internal: RUN on a parent that is not stored');
  const prepared = await prepareRun(store, {
    imageRef: i.parent.stored,
    args: i.argv,
    entrypoint: '',
    env: i.env,
    ...(i.workdir ? { workdir: i.workdir } : {}),
    ...(i.user ? { user: i.user } : {}),
    volumes: [],
    readOnly: false,
    network: i.network,
    runtime: 'runc',
    autoRemove: false,
    detach: false,
    interactive: false,
    tty: false,
  });
  const { supervisor, record, dir, runtime } = prepared;
  const log = join(dir, 'build-output.log');
  const kill = (): void => void runtime.kill(record.id, 'KILL');
  i.signal.addEventListener('abort', kill);
  try {
    const result = await monitorContainer({ supervisor, record, dir, runtime, autoRemove: false, io: { mode: 'logfile', file: log } });
    i.output(await readFile(log, 'utf8').catch(() => ''));
    if (i.signal.aborted) throw new LayerfsError('RUNTIME', 'interrupted');
    if (result.failure) throw new LayerfsError('RUNTIME', `the command could not start: ${result.failure.message}`);
    if (result.exitCode !== 0) throw new LayerfsError('RUNTIME', `the command ${JSON.stringify(i.argv.join(' '))} returned a non-zero code: ${result.exitCode}`);
    // The runtime's mount stubs were removed by the teardown (sandbox/mount-stubs.ts).
    const upperDir = supervisor.handle(record).paths.upper;
    const committed = await commitContainer(store, {
      image: i.parent.stored,
      upperDir,
      containerName: record.name,
      createdBy: i.createdBy,
      message: HISTORY_COMMENT,
    });
    return await stateOfImage(store, committed.id);
  } finally {
    i.signal.removeEventListener('abort', kill);
    await supervisor.remove(record.id, true).catch(() => undefined);
    await rm(log, { force: true });
  }
}
