/**
 * Serves a PathFilesystem on a mountpoint with layerfs's own FUSE engine: the device
 * (mount, reader threads, replies; src/engine/device.ts) and the dispatcher (every request
 * onto the filesystem). Same shape as serveFilesystem (src/fuse/fuse-server.ts), so a
 * mount process picks either.
 */
import { LayerfsError } from '../core/errors.js';
import { capableSysAdmin } from '../core/user-dirs.js';
import type { PathFilesystem } from '../core/filesystem.js';
import type { FuseMount, ServeOptions } from '../fuse/index.js';
import { CACHE_SECONDS, allowOtherPermitted } from '../fuse/index.js';
import { mountFuseDevice, type FuseDevice, type MountRequest } from './device.js';
import { Dispatcher } from './dispatcher.js';

/** 0: the device is read on the JS thread (libuv poll). Measured by engine-c on 2 cores:
 * 21 µs of server CPU a request against 44–83 µs with 1–4 reader threads, whose hand-off to
 * the JS thread costs more than the read it saves (native-notes/engine.md). */
const READER_THREADS = 0;
/** The kernel sends INIT as soon as mount(2) returns; longer means something is wrong. */
const INIT_TIMEOUT_MS = 30_000;

export interface EngineMount extends FuseMount {
  /** Requests that reached the engine, per opcode name (the bench counts READ/WRITE). */
  readonly requestCounts: ReadonlyMap<string, number>;
  /** Microseconds from arrival to reply, summed per opcode name. */
  readonly requestMicros: ReadonlyMap<string, number>;
  /** GETXATTR/LISTXATTR answered by the native request loop (not in requestCounts). */
  nativeAnswers(): { GETXATTR: number; LISTXATTR: number; 'copy-up': number; LOOKUP: number };
  /** Whether the kernel accepted FUSE passthrough. */
  readonly passthrough: boolean;
}

/** Mount flags and cache times from the raw options layerfs mounts pass (libfuse's words). */
export function engineMountOptions(extra: readonly string[]): { flags: Pick<MountRequest, 'readOnly' | 'suid' | 'dev'>; timeouts: Record<'entry' | 'attr' | 'negative', number> } {
  const flags: Pick<MountRequest, 'readOnly' | 'suid' | 'dev'> = {};
  const timeouts = { entry: CACHE_SECONDS, attr: CACHE_SECONDS, negative: CACHE_SECONDS };
  for (const opt of extra) {
    const [key, value] = opt.split('=', 2) as [string, string | undefined];
    if (key === 'ro' || key === 'rw') flags.readOnly = key === 'ro';
    else if (key === 'suid' || key === 'nosuid') flags.suid = key === 'suid';
    else if (key === 'dev' || key === 'nodev') flags.dev = key === 'dev';
    else if (key === 'kernel_cache') continue; // page caching is decided per open file
    else if ((key === 'entry_timeout' || key === 'attr_timeout' || key === 'negative_timeout') && value !== undefined && Number(value) >= 0) {
      timeouts[key.slice(0, -'_timeout'.length) as 'entry' | 'attr' | 'negative'] = Math.floor(Number(value));
    } else throw new LayerfsError('INVALID_ARGUMENT', `mount option ${JSON.stringify(opt)} is not supported by the layerfs engine`);
  }
  return { flags, timeouts };
}

export async function serveWithEngine(filesystem: PathFilesystem, mountpoint: string, options: ServeOptions = {}): Promise<EngineMount> {
  const { flags, timeouts } = engineMountOptions(options.extra ?? []);
  const root = await filesystem.getattr('/');
  let device: FuseDevice;
  try {
    device = await mountFuseDevice({
      mountpoint,
      fsname: options.fsname ?? 'layerfs',
      // type shows as fuse.layerfs, so tooling (and our own cleanup) finds our mounts.
      subtype: 'layerfs',
      allowOther: options.allowOther ?? allowOtherPermitted(),
      // The kernel checks permissions against the modes and owners we report.
      defaultPermissions: true,
      rootMode: root.mode,
      ...flags,
    });
  } catch (err) {
    if (err instanceof LayerfsError) throw err;
    throw new LayerfsError('MOUNT_FAILED', `cannot mount on ${mountpoint}: ${(err as Error).message}`, { cause: err });
  }
  const useFastPath = options.nativeFastPath ?? true;
  const dispatcher = new Dispatcher(filesystem, device, {
    entrySeconds: timeouts.entry,
    attrSeconds: timeouts.attr,
    negativeSeconds: timeouts.negative,
    // The backing-file ioctls need capable(CAP_SYS_ADMIN). Asked for without it (uid 0 of a
    // user namespace: rootless podman), every open fell back to FOPEN_DIRECT_IO and no
    // file's data was ever cached: each read of a binary or library went to the engine.
    passthrough: useFastPath && capableSysAdmin(),
    directData: useFastPath,
    // LAYERFS_LOOP_COPY_UP=0: every copy-up in JS (for comparison).
    loopCopyUp: process.env.LAYERFS_LOOP_COPY_UP !== '0',
    ...(options.traceOps ? { traceOps: options.traceOps } : {}),
    ...(options.onUnexpectedError ? { onUnexpectedError: options.onUnexpectedError } : {}),
  });
  device.start((req) => dispatcher.handle(req), READER_THREADS);

  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      dispatcher.initialized(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new LayerfsError('MOUNT_FAILED', `the kernel sent no FUSE_INIT for ${mountpoint}`)), INIT_TIMEOUT_MS);
      }),
    ]);
  } catch (err) {
    await device.unmount().catch(() => undefined);
    throw err;
  } finally {
    clearTimeout(timer);
  }
  if (dispatcher.init?.error) {
    await device.unmount().catch(() => undefined);
    throw new LayerfsError('MOUNT_FAILED', `the kernel's FUSE protocol cannot be spoken (${dispatcher.init.error})`);
  }

  let unmounted = false;
  return {
    mountpoint,
    requestCounts: dispatcher.counts,
    requestMicros: dispatcher.micros,
    nativeAnswers: () => device.nativeAnswers(),
    passthrough: dispatcher.init?.passthrough ?? false,
    ended: device.closed,
    async unmount() {
      if (unmounted) return;
      unmounted = true;
      await device.unmount();
      await filesystem.destroy?.();
    },
  };
}
