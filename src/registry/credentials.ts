/**
 * Registry credentials, kept the way Docker keeps them: `{"auths": {"<host>": {"auth":
 * base64("user:password")}}}`. layerfs writes its own file — `$LAYERFS_AUTH_FILE`, else
 * `$XDG_CONFIG_HOME/layerfs/auth.json`, else `~/.config/layerfs/auth.json` (mode 0600) — and
 * also reads Docker's (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`) so a
 * `docker login` is honoured. layerfs's own file wins. Credential helpers are not run.
 */
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname } from 'node:path';
import { LayerfsError, hasErrnoCode } from '../core/errors.js';

/** A user name and password (or identity token) for one registry. */
export interface Credentials {
  username: string;
  password: string;
}

interface AuthFile {
  auths?: Record<string, { auth?: string; username?: string; password?: string }>;
  [k: string]: unknown;
}

/** layerfs's credentials file. */
export function layerfsAuthFile(): string {
  if (process.env.LAYERFS_AUTH_FILE) return process.env.LAYERFS_AUTH_FILE;
  const base = process.env.XDG_CONFIG_HOME || `${homedir()}/.config`;
  return `${base}/layerfs/auth.json`;
}

/** Docker's config file. */
export function dockerConfigFile(): string {
  return `${process.env.DOCKER_CONFIG || `${homedir()}/.docker`}/config.json`;
}

/** The keys a registry may be stored under (Docker Hub has historical ones). */
function keysFor(host: string): string[] {
  if (host === 'docker.io') return ['https://index.docker.io/v1/', 'docker.io', 'index.docker.io', 'registry-1.docker.io'];
  return [host, `https://${host}`, `http://${host}`, `https://${host}/v2/`];
}

/** The key layerfs stores a registry under (Docker's choice for Docker Hub). */
function storeKey(host: string): string {
  return host === 'docker.io' ? 'https://index.docker.io/v1/' : host;
}

async function readAuthFile(file: string): Promise<AuthFile | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if (hasErrnoCode(err, 'ENOENT')) return undefined;
    throw new LayerfsError('IO', `cannot read ${file}: ${(err as Error).message}`, { cause: err });
  }
  try {
    const v = JSON.parse(text) as unknown;
    return typeof v === 'object' && v !== null ? (v as AuthFile) : {};
  } catch {
    throw new LayerfsError('INVALID_ARGUMENT', `${file} is not valid JSON`, { hint: 'fix or remove it' });
  }
}

function decode(entry: { auth?: string; username?: string; password?: string } | undefined): Credentials | undefined {
  if (!entry) return undefined;
  if (entry.username !== undefined && entry.password !== undefined) return { username: entry.username, password: entry.password };
  if (typeof entry.auth !== 'string' || entry.auth === '') return undefined;
  const plain = Buffer.from(entry.auth, 'base64').toString('utf8');
  const colon = plain.indexOf(':');
  if (colon < 0) return undefined;
  return { username: plain.slice(0, colon), password: plain.slice(colon + 1) };
}

/** Credentials for `host` from layerfs's file, then Docker's; undefined means anonymous. */
export async function findCredentials(host: string): Promise<Credentials | undefined> {
  for (const file of [layerfsAuthFile(), dockerConfigFile()]) {
    const f = await readAuthFile(file);
    for (const k of keysFor(host)) {
      const c = decode(f?.auths?.[k]);
      if (c) return c;
    }
  }
  return undefined;
}

async function writeAuthFile(file: string, f: AuthFile): Promise<void> {
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.tmp-${process.pid}`;
  await writeFile(tmp, JSON.stringify(f, null, 2) + '\n', { mode: 0o600 });
  await chmod(tmp, 0o600);
  await rename(tmp, file);
}

/** Stores credentials for `host` in layerfs's file (replacing earlier ones). */
export async function saveCredentials(host: string, c: Credentials): Promise<string> {
  const file = layerfsAuthFile();
  const f = (await readAuthFile(file)) ?? {};
  f.auths = { ...(f.auths ?? {}), [storeKey(host)]: { auth: Buffer.from(`${c.username}:${c.password}`).toString('base64') } };
  await writeAuthFile(file, f);
  return file;
}

/** Removes the credentials for `host` from layerfs's file; false when there were none. */
export async function removeCredentials(host: string): Promise<boolean> {
  const file = layerfsAuthFile();
  const f = await readAuthFile(file);
  if (!f?.auths) return false;
  let found = false;
  for (const k of keysFor(host)) {
    if (k in f.auths) {
      delete f.auths[k];
      found = true;
    }
  }
  if (found) await writeAuthFile(file, f);
  return found;
}
