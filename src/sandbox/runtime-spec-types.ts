/**
 * The part of the OCI runtime spec (config.json, runtime-spec v1.0) that layerfs writes.
 * Field names are the spec's own, so the object serialises to a valid config.json.
 */
import type { SeccompProfile } from './seccomp-profile.js';

/** One entry of `mounts`. */
export interface SpecMount {
  destination: string;
  type: string;
  source: string;
  options: string[];
}

/** A device cgroup rule (`linux.resources.devices`). */
export interface SpecDeviceRule {
  allow: boolean;
  type?: 'a' | 'b' | 'c';
  major?: number;
  minor?: number;
  access: string;
}

/** `process`: what runs, as whom, with which privileges. */
export interface SpecProcess {
  terminal: boolean;
  consoleSize?: { height: number; width: number };
  user: { uid: number; gid: number; additionalGids?: number[] };
  args: string[];
  env: string[];
  cwd: string;
  capabilities: { bounding: string[]; effective: string[]; permitted: string[]; inheritable: string[]; ambient: string[] };
  noNewPrivileges: boolean;
}

/** The whole config.json. */
export interface RuntimeSpec {
  ociVersion: string;
  process: SpecProcess;
  root: { path: string; readonly: boolean };
  hostname?: string;
  mounts: SpecMount[];
  linux: {
    namespaces: Array<{ type: string }>;
    resources: {
      devices: SpecDeviceRule[];
      memory?: { limit: number; swap?: number };
      pids?: { limit: number };
    };
    maskedPaths: string[];
    readonlyPaths: string[];
    seccomp: SeccompProfile;
  };
}
