/**
 * The options of `layerfs run`, validated before anything is created: a bad `-v`, size,
 * name or network is one clear error and leaves nothing behind.
 */
import { stat } from 'node:fs/promises';
import { isAbsolute, resolve } from 'node:path';
import { LayerfsError } from '../core/errors.js';

/** The OCI runtimes `--runtime` accepts. */
export type RuntimeName = 'runc' | 'crun';

/** `-v HOST:CTR[:ro|rw]`, with HOST made absolute. */
export interface VolumeSpec {
  source: string;
  destination: string;
  readOnly: boolean;
}

/** Everything `run` was asked for, after parsing. */
export interface RunOptions {
  imageRef: string;
  /** Arguments after the image name (replace the image's Cmd). */
  args: string[];
  name?: string;
  entrypoint?: string;
  /** -e and --env-file values, already KEY=VALUE, in command-line order. */
  env: string[];
  workdir?: string;
  user?: string;
  hostname?: string;
  volumes: VolumeSpec[];
  readOnly: boolean;
  network: 'none' | 'host';
  memory?: number;
  pidsLimit?: number;
  runtime: RuntimeName;
  autoRemove: boolean;
  detach: boolean;
  interactive: boolean;
  tty: boolean;
}

function bad(message: string, hint?: string): LayerfsError {
  return new LayerfsError('INVALID_ARGUMENT', message, hint ? { hint } : {});
}

/** Parses one `-v` value; the host path must exist (layerfs never creates host folders). */
export async function parseVolume(spec: string): Promise<VolumeSpec> {
  const parts = spec.split(':');
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => p === '')) {
    throw bad(`invalid volume specification ${JSON.stringify(spec)}: expected HOST:CONTAINER[:ro|rw]`);
  }
  const [host, ctr, mode = 'rw'] = parts as [string, string, string?];
  if (!isAbsolute(host) && !host.startsWith('.')) {
    throw bad(`invalid volume specification ${JSON.stringify(spec)}: named volumes are not supported`, 'give an absolute host path');
  }
  if (!isAbsolute(ctr)) throw bad(`invalid volume specification ${JSON.stringify(spec)}: the container path must be absolute`);
  if (mode !== 'ro' && mode !== 'rw') throw bad(`invalid volume specification ${JSON.stringify(spec)}: mode must be ro or rw, not ${mode}`);
  const source = resolve(host);
  if (!(await stat(source).catch(() => null))) throw bad(`invalid volume specification ${JSON.stringify(spec)}: host path ${source} does not exist`);
  return { source, destination: ctr, readOnly: mode === 'ro' };
}

/** Docker's byte sizes: `1048576`, `512k`, `64m`, `1g`, `1.5GB` (binary units). */
export function parseBytes(value: string, what: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgtp])?i?b?$/i.exec(value.trim());
  if (!m) throw bad(`invalid ${what} ${JSON.stringify(value)}: expected a size such as 64m or 1g`);
  const exp = m[2] ? 'kmgtp'.indexOf(m[2].toLowerCase()) + 1 : 0;
  return Math.floor(Number(m[1]) * 1024 ** exp);
}

/** `--memory`: at least 6 MiB, like Docker (less cannot even start a runtime). */
export function parseMemory(value: string): number {
  const n = parseBytes(value, '--memory');
  if (n < 6 * 1024 * 1024) throw bad(`--memory ${value} is below the minimum of 6MB`);
  return n;
}

/** `--pids-limit`: a positive count (0 or -1 mean "no limit" in Docker). */
export function parsePidsLimit(value: string): number | undefined {
  if (!/^-?\d+$/.test(value)) throw bad(`invalid --pids-limit ${JSON.stringify(value)}: expected a number`);
  const n = Number(value);
  return n <= 0 ? undefined : n;
}

/** `--network`: none (default, loopback only) or host. */
export function parseNetwork(value: string | undefined): 'none' | 'host' {
  if (value === undefined || value === 'none') return 'none';
  if (value === 'host') return 'host';
  throw bad(`unsupported --network ${JSON.stringify(value)}: use none or host`);
}

/** `--runtime`: runc or crun. */
export function parseRuntime(value: string | undefined): RuntimeName {
  if (value === undefined || value === 'runc' || value === 'crun') return value ?? 'runc';
  throw bad(`unsupported --runtime ${JSON.stringify(value)}: use runc or crun`);
}

/** Docker's container name rule. */
export function checkName(name: string): string {
  if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(name)) throw bad(`invalid container name ${JSON.stringify(name)}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`);
  return name;
}

/** Cross-option rules, checked once everything is parsed. */
export function checkRunOptions(o: RunOptions): void {
  if (o.workdir !== undefined && !o.workdir.startsWith('/')) throw bad(`the working directory ${JSON.stringify(o.workdir)} is invalid: it needs to be an absolute path`);
  if (o.hostname !== undefined && o.network === 'host') throw bad('conflicting options: --hostname and --network host (the host network shares the host name)');
  if (o.hostname !== undefined && !/^[a-zA-Z0-9]([a-zA-Z0-9.-]{0,62})$/.test(o.hostname)) throw bad(`invalid hostname ${JSON.stringify(o.hostname)}`);
  if (o.detach && o.tty) throw bad('-t with -d is not supported yet', 'run with -it in the foreground, or use `layerfs exec -it` on a detached container');
  if (o.tty && o.interactive && !process.stdin.isTTY) throw bad('the input device is not a TTY', 'drop -t when stdin is not a terminal');
}
