/**
 * The command and environment of a container's process, from the image config and the
 * `run` options, with Docker's rules:
 *  - argv = Entrypoint ++ Cmd; arguments after the image name replace Cmd; `--entrypoint`
 *    replaces Entrypoint and also drops the image's Cmd (an empty `--entrypoint ""` clears it);
 *  - env = image Env, then `--env-file` lines, then `-e` flags, a later key replacing an
 *    earlier one; `-e K` (no `=`) copies K from the caller's environment if set; PATH gets
 *    Docker's default when nobody set it.
 */
import { readFile } from 'node:fs/promises';
import { LayerfsError } from '../core/errors.js';
import { DEFAULT_PATH } from './docker-defaults.js';

/** The `config` object of an image config (Docker's "ContainerConfig" fields). */
export interface ImageRunConfig {
  Entrypoint?: string[] | null;
  Cmd?: string[] | null;
  Env?: string[] | null;
  WorkingDir?: string;
  User?: string;
}

function stringList(v: unknown): string[] | undefined {
  return Array.isArray(v) && v.every((x) => typeof x === 'string') ? (v as string[]) : undefined;
}

/** Reads the fields `run` uses from an image config's `config` object (absent or malformed fields count as unset). */
export function imageRunConfig(config: Record<string, unknown> | undefined): ImageRunConfig {
  const c = config ?? {};
  return {
    Entrypoint: stringList(c.Entrypoint) ?? null,
    Cmd: stringList(c.Cmd) ?? null,
    Env: stringList(c.Env) ?? null,
    ...(typeof c.WorkingDir === 'string' ? { WorkingDir: c.WorkingDir } : {}),
    ...(typeof c.User === 'string' ? { User: c.User } : {}),
  };
}

/** argv of the container process; throws when the result is empty (Docker: "no command specified"). */
export function containerArgs(image: ImageRunConfig, entrypoint: string | undefined, args: string[]): string[] {
  const ep = entrypoint === undefined ? (image.Entrypoint ?? []) : entrypoint === '' ? [] : [entrypoint];
  const cmd = args.length > 0 ? args : entrypoint === undefined ? (image.Cmd ?? []) : [];
  const argv = [...ep, ...cmd];
  if (argv.length === 0) throw new LayerfsError('INVALID_ARGUMENT', 'no command specified: the image has no Entrypoint or Cmd and none was given');
  return argv;
}

/** Parses an env file: KEY=VALUE lines, `#` comments and blank lines skipped, bare KEY copied from `hostEnv`. */
export async function readEnvFile(file: string, hostEnv: NodeJS.ProcessEnv = process.env): Promise<string[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new LayerfsError('INVALID_ARGUMENT', `cannot read env file ${file}: ${(err as Error).message}`, { cause: err });
  }
  const out: string[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/\r$/, '').trimStart();
    if (line === '' || line.startsWith('#')) continue;
    out.push(...envFlag(line, hostEnv, `env file ${file}`));
  }
  return out;
}

/** One `-e` value: `K=V` as is; `K` alone takes K from `hostEnv` or is dropped. */
export function envFlag(value: string, hostEnv: NodeJS.ProcessEnv = process.env, where = '-e'): string[] {
  const eq = value.indexOf('=');
  const key = eq < 0 ? value : value.slice(0, eq);
  if (key === '' || /\s/.test(key)) throw new LayerfsError('INVALID_ARGUMENT', `invalid environment variable in ${where}: ${JSON.stringify(value)}`);
  if (eq >= 0) return [value];
  const v = hostEnv[key];
  return v === undefined ? [] : [`${key}=${v}`];
}

/** Merges KEY=VALUE lists, later lists winning per key, keeping first-seen order. */
export function mergeEnv(...lists: string[][]): string[] {
  const byKey = new Map<string, string>();
  for (const list of lists) {
    for (const kv of list) {
      const eq = kv.indexOf('=');
      const key = eq < 0 ? kv : kv.slice(0, eq);
      byKey.delete(key);
      byKey.set(key, kv);
    }
  }
  return [...byKey.values()];
}

/** The final environment: image Env, extras, then the defaults Docker adds when missing (PATH, HOSTNAME, HOME, TERM). */
export function containerEnv(image: ImageRunConfig, extra: string[], defaults: { hostname?: string; home: string; tty: boolean }): string[] {
  const merged = mergeEnv(image.Env ?? [], extra);
  const has = (k: string): boolean => merged.some((kv) => kv.startsWith(`${k}=`));
  const add: string[] = [];
  if (!has('PATH')) add.push(DEFAULT_PATH);
  if (defaults.hostname && !has('HOSTNAME')) add.push(`HOSTNAME=${defaults.hostname}`);
  if (!has('HOME')) add.push(`HOME=${defaults.home}`);
  if (defaults.tty && !has('TERM')) add.push('TERM=xterm');
  return [...add.filter((kv) => kv.startsWith('PATH=')), ...merged, ...add.filter((kv) => !kv.startsWith('PATH='))];
}
