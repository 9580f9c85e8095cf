/**
 * `inspect` of a container: docker's container JSON shape where layerfs has the facts
 * (Id, Created, Path/Args, State, Image, Name, GraphDriver, Config, HostConfig, Mounts),
 * plus where the store keeps each part, as image inspect's Store does.
 */
import { readFile } from 'node:fs/promises';
import { readRunState, runPaths, type RuntimeSpec } from '../sandbox/index.js';
import type { Store } from '../store/index.js';
import type { Container } from '../supervisor/index.js';

const DEFAULT_MOUNTS = new Set(['/proc', '/dev', '/dev/pts', '/dev/shm', '/dev/mqueue', '/sys', '/sys/fs/cgroup', '/etc/hosts', '/etc/hostname', '/etc/resolv.conf']);

/** The inspect object of one container. */
export async function inspectContainer(store: Store, { record: c, paths: p }: Container): Promise<Record<string, unknown>> {
  const rp = runPaths(p.dir);
  const run = await readRunState(p.dir).catch(() => undefined);
  const spec = run ? ((await readFile(rp.spec, 'utf8').then(JSON.parse, () => undefined)) as RuntimeSpec | undefined) : undefined;
  const lower = [...(await store.layerDirs(c.image).catch(() => [] as string[]))].reverse().join(':');
  const status = run ? run.status : c.state;
  return {
    Id: c.id,
    Created: c.created,
    Path: run?.command[0] ?? '',
    Args: run?.command.slice(1) ?? [],
    State: {
      Status: status,
      Running: run?.status === 'running',
      Mounted: c.state === 'mounted',
      Pid: run?.containerPid ?? 0,
      ExitCode: run?.exitCode ?? 0,
      Error: run?.error ?? '',
      StartedAt: run?.startedAt ?? null,
      FinishedAt: run?.finishedAt ?? null,
    },
    Image: c.image,
    Name: `/${c.name}`,
    Driver: 'layerfs',
    Mountpoint: c.state === 'mounted' ? c.mountpoint : null,
    GraphDriver: {
      Name: 'overlay',
      Data: { LowerDir: lower, UpperDir: p.upper, WorkDir: p.work, ...(c.state === 'mounted' && c.mountpoint ? { MergedDir: c.mountpoint } : {}) },
    },
    Config: {
      Image: c.imageRef,
      Hostname: spec?.hostname ?? '',
      User: spec ? `${spec.process.user.uid}:${spec.process.user.gid}` : '',
      Env: spec?.process.env ?? [],
      Cmd: run?.command ?? null,
      WorkingDir: spec?.process.cwd ?? '',
      Tty: spec?.process.terminal ?? false,
    },
    HostConfig: {
      Runtime: run?.runtime ?? null,
      AutoRemove: run?.autoRemove ?? false,
      ReadonlyRootfs: spec?.root.readonly ?? c.readOnly,
      Memory: spec?.linux.resources.memory?.limit ?? 0,
      PidsLimit: spec?.linux.resources.pids?.limit ?? null,
    },
    Mounts: (spec?.mounts ?? [])
      .filter((m) => m.type === 'bind' && !DEFAULT_MOUNTS.has(m.destination))
      .map((m) => ({ Type: 'bind', Source: m.source, Destination: m.destination, RW: !m.options.includes('ro') })),
    Store: { Record: p.record, Upper: p.upper, Work: p.work, MountLog: p.log, ...(run ? { RunState: rp.state, Bundle: rp.bundle, Log: rp.log } : {}) },
  };
}
