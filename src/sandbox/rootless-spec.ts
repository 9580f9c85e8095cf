/**
 * Turns a container's runtime spec into one an ordinary user's runtime (crun, or runc,
 * which detects rootless mode itself) can run, as rootless podman does:
 * - a user namespace mapped like the store's (podman layout: container uid 0 is the user,
 *   1…N the subordinate range; only the user when there is no range). crun and runc write
 *   multi-range maps through newuidmap/newgidmap themselves.
 * - no cgroup resources: an ordinary user gets no cgroup of their own on cgroup v1 (and
 *   needs systemd delegation on v2), so device rules are left to the namespace (no
 *   CAP_MKNOD outside it; the runtime binds the standard devices instead) and limits are
 *   refused before anything is created (rootlessLimitsError).
 * - /sys: a sysfs mount needs a network namespace owned by the user namespace; with the
 *   host's network, and for /sys/fs/cgroup (no cgroup v1 mount in a user namespace), the
 *   host's are bound read-only instead.
 * - /dev/pts without gid=5 when group 5 (tty) has no mapping.
 */
import { LayerfsError } from '../core/errors.js';
import { toHost, type UsernsMapping } from '../userns/index.js';
import type { RuntimeSpec, SpecMount } from './runtime-spec-types.js';

/** The spec's id maps: containerID/hostID/size. */
export interface SpecIdMapping {
  containerID: number;
  hostID: number;
  size: number;
}

/** A RuntimeSpec with the fields rootless mode adds. */
export type RootlessRuntimeSpec = Omit<RuntimeSpec, 'linux'> & {
  linux: Omit<RuntimeSpec['linux'], 'resources'> & { uidMappings: SpecIdMapping[]; gidMappings: SpecIdMapping[] };
};

/** The user namespace's maps for this user: their ranges, else only themselves. */
export function specMappings(mapping: UsernsMapping | undefined, uid: number, gid: number): { uids: SpecIdMapping[]; gids: SpecIdMapping[] } {
  const conv = (l: UsernsMapping['uids']): SpecIdMapping[] => l.map((x) => ({ containerID: x.inside, hostID: x.outside, size: x.count }));
  if (mapping) return { uids: conv(mapping.uids), gids: conv(mapping.gids) };
  return { uids: [{ containerID: 0, hostID: uid, size: 1 }], gids: [{ containerID: 0, hostID: gid, size: 1 }] };
}

const ro = ['rbind', 'nosuid', 'noexec', 'nodev', 'ro'];

/** The rootless form of `spec` (see the module comment). */
export function rootlessSpec(spec: RuntimeSpec, mapping: UsernsMapping | undefined, uid: number, gid: number): RootlessRuntimeSpec {
  const maps = specMappings(mapping, uid, gid);
  const ownNetwork = spec.linux.namespaces.some((n) => n.type === 'network');
  const gidMapped = (g: number): boolean => toHost(maps.gids.map((m) => ({ inside: m.containerID, outside: m.hostID, count: m.size })), g) !== undefined;
  const mounts: SpecMount[] = spec.mounts.map((m) => {
    if (m.destination === '/sys' && m.type === 'sysfs' && !ownNetwork) return { destination: '/sys', type: 'bind', source: '/sys', options: ro };
    if (m.destination === '/sys/fs/cgroup' && m.type === 'cgroup') return { destination: '/sys/fs/cgroup', type: 'bind', source: '/sys/fs/cgroup', options: ro };
    if (m.type === 'devpts' && !gidMapped(5)) return { ...m, options: m.options.filter((o) => o !== 'gid=5') };
    return m;
  });
  const { resources: _none, ...linux } = spec.linux;
  return {
    ...spec,
    mounts,
    linux: { ...linux, namespaces: [{ type: 'user' }, ...linux.namespaces], uidMappings: maps.uids, gidMappings: maps.gids },
  };
}

/** The error for limits an ordinary user cannot have; undefined when none were asked for. */
export function rootlessLimitsError(o: { memory?: number; pidsLimit?: number }): LayerfsError | undefined {
  const asked = [o.memory !== undefined ? '--memory' : '', o.pidsLimit !== undefined ? '--pids-limit' : ''].filter(Boolean);
  if (asked.length === 0) return undefined;
  return new LayerfsError('FAILED_PRECONDITION', `${asked.join(' and ')} cannot be applied as an ordinary user: resource limits need a cgroup of the user's own, which cgroup v1 does not give (and cgroup v2 only with systemd delegation)`, {
    hint: 'run without them, or as root',
  });
}
