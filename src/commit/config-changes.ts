/**
 * `commit --change 'INSTRUCTION …'`: the Dockerfile instructions `docker commit --change`
 * accepts, applied to an image config's `config` object: CMD, ENTRYPOINT, ENV, WORKDIR,
 * USER, EXPOSE, LABEL, VOLUME, STOPSIGNAL. CMD and ENTRYPOINT take the JSON (exec) form
 * or the shell form (wrapped in `/bin/sh -c`, as Docker does). As in a Dockerfile, an
 * ENTRYPOINT resets an inherited CMD unless the changes also set CMD.
 */
import { LayerfsError } from '../core/errors.js';

type RunConfig = Record<string, unknown>;

function bad(change: string, why: string): LayerfsError {
  return new LayerfsError('INVALID_ARGUMENT', `--change ${JSON.stringify(change)}: ${why}`, {
    hint: 'supported: CMD, ENTRYPOINT, ENV, WORKDIR, USER, EXPOSE, LABEL, VOLUME, STOPSIGNAL',
  });
}

/** Exec form `["a","b"]` or shell form `a b` → argv. */
function commandForm(change: string, rest: string): string[] {
  if (rest.startsWith('[')) {
    let v: unknown;
    try {
      v = JSON.parse(rest);
    } catch {
      throw bad(change, 'not a valid JSON array');
    }
    if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) throw bad(change, 'the JSON form must be an array of strings');
    return v;
  }
  return ['/bin/sh', '-c', rest];
}

/** `k=v k2="v 2"` (or the legacy `k v`) → pairs. */
function keyValues(change: string, rest: string): [string, string][] {
  const words = rest.match(/(?:[^\s"']+|"(?:\\.|[^"\\])*"|'[^']*')+/g) ?? [];
  if (words.length > 0 && !words[0]!.includes('=')) {
    const key = words[0]!;
    return [[key, rest.slice(rest.indexOf(key) + key.length).trim()]];
  }
  return words.map((w) => {
    const i = w.indexOf('=');
    if (i <= 0) throw bad(change, `expected KEY=VALUE, got ${JSON.stringify(w)}`);
    return [w.slice(0, i), unquote(w.slice(i + 1))];
  });
}

function unquote(v: string): string {
  if (v.startsWith('"') && v.endsWith('"') && v.length >= 2) return v.slice(1, -1).replace(/\\(.)/g, '$1');
  if (v.startsWith("'") && v.endsWith("'") && v.length >= 2) return v.slice(1, -1);
  return v;
}

/** Applies `changes` to a copy of `config` (the image config's `config` object). */
export function applyConfigChanges(config: RunConfig | undefined, changes: string[]): RunConfig {
  const out: RunConfig = { ...(config ?? {}) };
  const setsCmd = changes.some((c) => /^\s*cmd\b/i.test(c));
  for (const change of changes) {
    const m = /^\s*([A-Za-z]+)\s*(.*?)\s*$/s.exec(change);
    if (!m) throw bad(change, 'empty');
    const op = m[1]!.toUpperCase();
    const rest = m[2]!;
    if (rest === '') throw bad(change, `${op} needs an argument`);
    switch (op) {
      case 'CMD':
        out.Cmd = commandForm(change, rest);
        break;
      case 'ENTRYPOINT':
        out.Entrypoint = commandForm(change, rest);
        if (!setsCmd) delete out.Cmd;
        break;
      case 'ENV': {
        const env = [...((out.Env as string[] | undefined) ?? [])];
        for (const [k, v] of keyValues(change, rest)) {
          const i = env.findIndex((e) => e.split('=')[0] === k);
          if (i >= 0) env[i] = `${k}=${v}`;
          else env.push(`${k}=${v}`);
        }
        out.Env = env;
        break;
      }
      case 'WORKDIR':
        out.WorkingDir = rest.startsWith('/') ? rest : `${(out.WorkingDir as string | undefined) ?? '/'}/${rest}`.replace(/\/+/g, '/');
        break;
      case 'USER':
        out.User = rest;
        break;
      case 'EXPOSE': {
        const ports = { ...((out.ExposedPorts as Record<string, object> | undefined) ?? {}) };
        for (const p of rest.split(/\s+/)) ports[p.includes('/') ? p : `${p}/tcp`] = {};
        out.ExposedPorts = ports;
        break;
      }
      case 'LABEL':
        out.Labels = { ...((out.Labels as Record<string, string> | undefined) ?? {}), ...Object.fromEntries(keyValues(change, rest)) };
        break;
      case 'VOLUME': {
        const vols = { ...((out.Volumes as Record<string, object> | undefined) ?? {}) };
        for (const v of rest.startsWith('[') ? commandForm(change, rest) : rest.split(/\s+/)) vols[v] = {};
        out.Volumes = vols;
        break;
      }
      case 'STOPSIGNAL':
        out.StopSignal = rest;
        break;
      default:
        throw bad(change, `${op} is not supported`);
    }
  }
  return out;
}
