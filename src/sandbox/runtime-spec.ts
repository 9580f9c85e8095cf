/**
 * Builds a container's OCI runtime spec (config.json) from what `run` resolved: Docker's
 * defaults (docker-defaults.ts) plus this run's process, user, namespaces, mounts and
 * cgroup limits. Pure: no disk access, so every rule is unit-testable.
 */
import { DEFAULT_CAPABILITIES, MASKED_PATHS, READONLY_PATHS, defaultDeviceRules, defaultMounts } from './docker-defaults.js';
import type { VolumeSpec } from './run-options.js';
import { defaultSeccompProfile } from './seccomp-profile.js';
import type { ResolvedUser } from './user-resolver.js';
import type { RuntimeSpec, SpecMount } from './runtime-spec-types.js';

/** Host files the sandbox wrote for the container, bind-mounted over /etc. */
export interface EtcFiles {
  hosts: string;
  hostname: string;
  resolvConf: string;
}

/** Everything the spec depends on. */
export interface SpecInput {
  rootfs: string;
  readOnlyRootfs: boolean;
  args: string[];
  env: string[];
  cwd: string;
  user: ResolvedUser;
  terminal: boolean;
  consoleSize?: { height: number; width: number };
  /** Undefined with the host's network (and UTS) namespace. */
  hostname?: string;
  network: 'none' | 'host';
  etcFiles: EtcFiles;
  volumes: VolumeSpec[];
  memory?: number;
  /** Whether the kernel accounts swap (memory.memsw): then swap is capped at the memory limit. */
  swapAccounting?: boolean;
  pidsLimit?: number;
}

/** The runtime spec for `input`. */
export function buildRuntimeSpec(input: SpecInput): RuntimeSpec {
  const caps = [...DEFAULT_CAPABILITIES];
  const namespaces = [{ type: 'pid' }, { type: 'ipc' }, { type: 'mount' }];
  // --network host shares the host's network and, as in Docker, its host name (UTS).
  if (input.network !== 'host') namespaces.push({ type: 'uts' }, { type: 'network' });

  const etcOptions = ['rbind', 'rprivate', ...(input.readOnlyRootfs ? ['ro'] : [])];
  const etc: SpecMount[] = [
    { destination: '/etc/resolv.conf', type: 'bind', source: input.etcFiles.resolvConf, options: etcOptions },
    { destination: '/etc/hostname', type: 'bind', source: input.etcFiles.hostname, options: etcOptions },
    { destination: '/etc/hosts', type: 'bind', source: input.etcFiles.hosts, options: etcOptions },
  ];
  // A parent folder's bind must come before binds inside it, whatever the order of -v flags.
  const depth = (p: string): number => p.split('/').filter(Boolean).length;
  const volumes: SpecMount[] = [...input.volumes].sort((a, b) => depth(a.destination) - depth(b.destination)).map((v) => ({
    destination: v.destination,
    type: 'bind',
    source: v.source,
    options: ['rbind', 'rprivate', ...(v.readOnly ? ['ro'] : [])],
  }));

  const resources: RuntimeSpec['linux']['resources'] = { devices: defaultDeviceRules() };
  if (input.memory !== undefined) {
    // Docker's --memory without --memory-swap allows as much swap again; layerfs keeps the
    // limit strict (no swap beyond it) so the limit means what it says.
    resources.memory = input.swapAccounting ? { limit: input.memory, swap: input.memory } : { limit: input.memory };
  }
  if (input.pidsLimit !== undefined) resources.pids = { limit: input.pidsLimit };

  return {
    ociVersion: '1.0.2',
    process: {
      terminal: input.terminal,
      ...(input.terminal && input.consoleSize ? { consoleSize: input.consoleSize } : {}),
      user: { uid: input.user.uid, gid: input.user.gid, ...(input.user.additionalGids.length ? { additionalGids: input.user.additionalGids } : {}) },
      args: input.args,
      env: input.env,
      cwd: input.cwd,
      // Bounding, permitted and effective hold Docker's set; inheritable and ambient stay
      // empty (CVE-2022-24769), so a non-root user's exec() ends with no capabilities.
      capabilities: { bounding: caps, effective: caps, permitted: caps, inheritable: [], ambient: [] },
      noNewPrivileges: true,
    },
    root: { path: input.rootfs, readonly: input.readOnlyRootfs },
    ...(input.hostname !== undefined ? { hostname: input.hostname } : {}),
    mounts: [...defaultMounts(), ...etc, ...volumes],
    linux: {
      namespaces,
      resources,
      maskedPaths: MASKED_PATHS,
      readonlyPaths: READONLY_PATHS,
      seccomp: defaultSeccompProfile(),
    },
  };
}
