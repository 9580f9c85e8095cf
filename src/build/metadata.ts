/**
 * Instructions that change only the image config — ENV, LABEL, WORKDIR, USER, CMD,
 * ENTRYPOINT, EXPOSE, VOLUME, STOPSIGNAL, HEALTHCHECK, SHELL, MAINTAINER — applied as
 * `docker build` (BuildKit) applies them, each returning the CREATED BY text BuildKit
 * writes in the image history (an `empty_layer` entry).
 */
import { posix } from 'node:path';
import { LayerfsError } from '../core/errors.js';
import type { Instruction } from './dockerfile-model.js';
import { jsonForm, keyValuePairs, processWord, processWords, type LexOptions, type Vars } from './shell-words.js';

/** The `config` object of an image config (Docker's field names). */
export type RunConfig = Record<string, unknown> & {
  Env?: string[];
  Cmd?: string[] | null;
  Entrypoint?: string[] | null;
  WorkingDir?: string;
  User?: string;
  Labels?: Record<string, string>;
  ExposedPorts?: Record<string, object>;
  Volumes?: Record<string, object>;
  StopSignal?: string;
  Healthcheck?: Record<string, unknown>;
  Shell?: string[];
};

/** Docker's default shell for the shell form. */
export const DEFAULT_SHELL = ['/bin/sh', '-c'];

/** The shell of a config (SHELL instruction), else /bin/sh -c. */
export function shellOf(c: RunConfig): string[] {
  return c.Shell?.length ? c.Shell : DEFAULT_SHELL;
}

/** Go's %q of a string list: `["a" "b"]` (how BuildKit prints CMD and ENTRYPOINT). */
export function goQuoted(list: string[]): string {
  return `[${list.map((s) => JSON.stringify(s)).join(' ')}]`;
}

/** Sets KEY=VALUE in an Env list, replacing an earlier KEY in place. */
export function setEnv(env: string[], key: string, value: string): string[] {
  const out = env.filter((kv) => kv.split('=')[0] !== key);
  const i = env.findIndex((kv) => kv.split('=')[0] === key);
  const entry = `${key}=${value}`;
  if (i < 0) return [...out, entry];
  out.splice(i, 0, entry);
  return out;
}

/** The variables ENV defines (for expansion): name → value. */
export function envVars(c: RunConfig): Map<string, string> {
  const m = new Map<string, string>();
  for (const kv of c.Env ?? []) {
    const eq = kv.indexOf('=');
    if (eq > 0) m.set(kv.slice(0, eq), kv.slice(eq + 1));
  }
  return m;
}

/** Go duration text (`30s`, `1m30s`) in nanoseconds. */
function duration(flag: string, v: string | null | undefined): number | undefined {
  if (v === undefined || v === null) return undefined;
  let ns = 0;
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g;
  const units: Record<string, number> = { ns: 1, us: 1e3, µs: 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };
  let consumed = 0;
  for (const m of v.matchAll(re)) {
    ns += Number(m[1]) * units[m[2]!]!;
    consumed += m[0].length;
  }
  if (consumed !== v.length || v === '') throw new LayerfsError('INVALID_ARGUMENT', `HEALTHCHECK --${flag}: invalid duration ${JSON.stringify(v)}`);
  return Math.round(ns);
}

const goDuration = (ns: number | undefined): string => (ns === undefined || ns === 0 ? '0s' : `${ns / 1e9}s`);

/** The command of CMD/ENTRYPOINT/HEALTHCHECK: exec form as is, shell form through the shell. */
function commandOf(args: string, shell: string[]): string[] {
  return jsonForm(args) ?? [...shell, args];
}

/** Applies a metadata instruction to `c` (a copy is returned) and gives its CREATED BY. */
export function applyMetadata(ins: Instruction, c: RunConfig, vars: Vars, lex: LexOptions): { config: RunConfig; createdBy: string } {
  const out: RunConfig = { ...c };
  const word = (s: string): string => processWord(s, vars, lex);
  const words = (s: string): string[] => processWords(s, vars, lex);
  switch (ins.keyword) {
    case 'ENV': {
      const pairs = keyValuePairs(ins.args, lex.escape, true);
      if (pairs.length === 0) throw new LayerfsError('INVALID_ARGUMENT', 'ENV requires at least one argument');
      let env = [...(c.Env ?? [])];
      const shown: string[] = [];
      // Each pair sees the ones before it on the same line (Docker expands left to right).
      const local = new Map(vars);
      for (const [k, raw] of pairs) {
        if (raw === undefined) throw new LayerfsError('INVALID_ARGUMENT', `ENV ${k}: missing '=' (ENV KEY=VALUE)`);
        const v = processWord(raw, local, lex);
        local.set(k, v);
        env = setEnv(env, k, v);
        shown.push(`${k}=${v}`);
      }
      out.Env = env;
      return { config: out, createdBy: `ENV ${shown.join(' ')}` };
    }
    case 'LABEL': {
      const pairs = keyValuePairs(ins.args, lex.escape, true);
      if (pairs.length === 0) throw new LayerfsError('INVALID_ARGUMENT', 'LABEL requires at least one argument');
      const labels = { ...(c.Labels ?? {}) };
      const shown: string[] = [];
      for (const [rawK, raw] of pairs) {
        if (raw === undefined) throw new LayerfsError('INVALID_ARGUMENT', `LABEL ${rawK}: missing '=' (LABEL KEY=VALUE)`);
        const k = word(rawK);
        labels[k] = word(raw);
        shown.push(`${k}=${labels[k]}`);
      }
      out.Labels = labels;
      return { config: out, createdBy: `LABEL ${shown.join(' ')}` };
    }
    case 'MAINTAINER': {
      return { config: out, createdBy: `MAINTAINER ${ins.args}` };
    }
    case 'WORKDIR': {
      const w = word(ins.args);
      if (!w) throw new LayerfsError('INVALID_ARGUMENT', 'WORKDIR requires exactly one argument');
      out.WorkingDir = posix.resolve(c.WorkingDir || '/', w);
      return { config: out, createdBy: `WORKDIR ${out.WorkingDir}` };
    }
    case 'USER': {
      const u = word(ins.args);
      if (!u) throw new LayerfsError('INVALID_ARGUMENT', 'USER requires exactly one argument');
      out.User = u;
      return { config: out, createdBy: `USER ${u}` };
    }
    case 'CMD': {
      out.Cmd = commandOf(ins.args, shellOf(c));
      return { config: out, createdBy: `CMD ${goQuoted(out.Cmd)}` };
    }
    case 'ENTRYPOINT': {
      out.Entrypoint = ins.args.trim() === '' ? null : commandOf(ins.args, shellOf(c));
      // Docker: a new ENTRYPOINT drops a Cmd inherited from the base image.
      out.Cmd = null;
      return { config: out, createdBy: `ENTRYPOINT ${goQuoted(out.Entrypoint ?? [])}` };
    }
    case 'EXPOSE': {
      const ports = { ...(c.ExposedPorts ?? {}) };
      for (const p of words(ins.args)) {
        const m = /^(\d+)(?:-(\d+))?(?:\/(tcp|udp|sctp))?$/i.exec(p);
        if (!m) throw new LayerfsError('INVALID_ARGUMENT', `EXPOSE: invalid port ${JSON.stringify(p)}`);
        const proto = (m[3] ?? 'tcp').toLowerCase();
        for (let n = Number(m[1]); n <= Number(m[2] ?? m[1]); n++) ports[`${n}/${proto}`] = {};
      }
      out.ExposedPorts = ports;
      return { config: out, createdBy: `EXPOSE map[${Object.keys(ports).sort().map((k) => `${k}:{}`).join(' ')}]` };
    }
    case 'VOLUME': {
      const list = jsonForm(ins.args)?.map(word) ?? words(ins.args);
      if (list.length === 0 || list.some((v) => v === '')) throw new LayerfsError('INVALID_ARGUMENT', 'VOLUME specified can not be an empty string');
      out.Volumes = { ...(c.Volumes ?? {}) };
      for (const v of list) out.Volumes[v] = {};
      return { config: out, createdBy: `VOLUME [${list.join(' ')}]` };
    }
    case 'STOPSIGNAL': {
      const s = word(ins.args);
      if (!/^(SIG[A-Z0-9+-]+|\d+)$/.test(s)) throw new LayerfsError('INVALID_ARGUMENT', `STOPSIGNAL: invalid signal ${JSON.stringify(s)}`);
      out.StopSignal = s;
      return { config: out, createdBy: `STOPSIGNAL ${s}` };
    }
    case 'HEALTHCHECK':
      return healthcheck(ins, out);
    case 'SHELL': {
      const sh = jsonForm(ins.args);
      if (!sh || sh.length === 0) throw new LayerfsError('INVALID_ARGUMENT', 'SHELL requires the arguments to be in JSON form, e.g. SHELL ["/bin/bash", "-c"]');
      out.Shell = sh;
      return { config: out, createdBy: `SHELL [${sh.join(' ')}]` };
    }
    default:
      throw new LayerfsError('INVALID_ARGUMENT', `internal: ${ins.keyword} is not a metadata instruction`);
  }
}

function healthcheck(ins: Instruction, out: RunConfig): { config: RunConfig; createdBy: string } {
  const text = ins.args.trim();
  if (/^NONE$/i.test(text)) {
    out.Healthcheck = { Test: ['NONE'] };
    return { config: out, createdBy: 'HEALTHCHECK &{["NONE"] "0s" "0s" "0s" "0s" \'\\x00\'}' };
  }
  const m = /^CMD\s+([\s\S]*)$/i.exec(text);
  if (!m) throw new LayerfsError('INVALID_ARGUMENT', 'HEALTHCHECK needs NONE or CMD <command>');
  const exec = jsonForm(m[1]!);
  const test = exec ? ['CMD', ...exec] : ['CMD-SHELL', m[1]!];
  const hc: Record<string, unknown> = { Test: test };
  const f = ins.flags;
  const interval = duration('interval', f.get('interval'));
  const timeout = duration('timeout', f.get('timeout'));
  const start = duration('start-period', f.get('start-period'));
  const startInterval = duration('start-interval', f.get('start-interval'));
  if (interval !== undefined) hc.Interval = interval;
  if (timeout !== undefined) hc.Timeout = timeout;
  if (start !== undefined) hc.StartPeriod = start;
  if (startInterval !== undefined) hc.StartInterval = startInterval;
  const retries = f.get('retries');
  if (retries !== undefined && retries !== null) {
    if (!/^\d+$/.test(retries)) throw new LayerfsError('INVALID_ARGUMENT', `HEALTHCHECK --retries: invalid number ${JSON.stringify(retries)}`);
    hc.Retries = Number(retries);
  }
  for (const k of f.keys()) {
    if (!['interval', 'timeout', 'start-period', 'start-interval', 'retries'].includes(k)) throw new LayerfsError('INVALID_ARGUMENT', `HEALTHCHECK: unknown flag --${k}`);
  }
  out.Healthcheck = hc;
  const r = Number(hc.Retries ?? 0);
  return { config: out, createdBy: `HEALTHCHECK &{${goQuoted(test)} "${goDuration(interval)}" "${goDuration(timeout)}" "${goDuration(start)}" "${goDuration(startInterval)}" '\\x${r.toString(16).padStart(2, '0')}'}` };
}
