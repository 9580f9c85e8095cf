/**
 * ARG semantics: global ARGs (before the first FROM) are visible in FROM lines only; a
 * stage sees an ARG once it declares it, taking the `--build-arg` value, else its own
 * default, else the global one. The proxy args Docker predefines are usable in RUN without
 * a declaration and are kept out of the history and the cache key (they hold credentials
 * and vary per host); BuildKit's platform args are declared-on-use with the host's values.
 */
import { LayerfsError } from '../core/errors.js';
import { hostPlatform, formatPlatform } from '../image/index.js';
import type { Instruction } from './dockerfile-model.js';
import { keyValuePairs, processWord, type LexOptions, type Vars } from './shell-words.js';

/** Docker's predefined proxy args. */
export const PROXY_ARGS = new Set(['HTTP_PROXY', 'http_proxy', 'HTTPS_PROXY', 'https_proxy', 'FTP_PROXY', 'ftp_proxy', 'NO_PROXY', 'no_proxy', 'ALL_PROXY', 'all_proxy']);

/** BuildKit's automatic platform args (the host's platform: no cross builds). */
export function platformArgs(): Map<string, string> {
  const p = hostPlatform();
  const platform = formatPlatform(p);
  return new Map([
    ['TARGETPLATFORM', platform], ['TARGETOS', p.os], ['TARGETARCH', p.architecture], ['TARGETVARIANT', p.variant ?? ''],
    ['BUILDPLATFORM', platform], ['BUILDOS', p.os], ['BUILDARCH', p.architecture], ['BUILDVARIANT', p.variant ?? ''],
  ]);
}

/** Parses `--build-arg K=V` values (`K` alone takes K from our environment, as docker does). */
export function parseBuildArgs(list: string[], env: NodeJS.ProcessEnv = process.env): Map<string, string> {
  const out = new Map<string, string>();
  for (const a of list) {
    const eq = a.indexOf('=');
    const k = eq < 0 ? a : a.slice(0, eq);
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) throw new LayerfsError('INVALID_ARGUMENT', `invalid --build-arg ${JSON.stringify(a)}: expected NAME=VALUE`);
    const v = eq < 0 ? env[k] : a.slice(eq + 1);
    if (v !== undefined) out.set(k, v);
  }
  return out;
}

/** The declared args of a scope and their values. */
export class ArgScope {
  /** Declared names, in order, with their values (undefined: declared without any value). */
  readonly values = new Map<string, string | undefined>();

  constructor(
    private readonly buildArgs: ReadonlyMap<string, string>,
    private readonly globals: ReadonlyMap<string, string | undefined>,
    /** Names of build args some ARG consumed (to warn about the rest). */
    private readonly consumed: Set<string>,
  ) {}

  /** Applies an ARG instruction; returns its history text (`ARG A=1 B`). */
  declare(ins: Instruction, visible: Vars, lex: LexOptions): string {
    const pairs = keyValuePairs(ins.args, lex.escape, false);
    if (pairs.length === 0) throw new LayerfsError('INVALID_ARGUMENT', 'ARG requires at least one argument');
    const shown: string[] = [];
    const auto = platformArgs();
    for (const [name, raw] of pairs) {
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new LayerfsError('INVALID_ARGUMENT', `ARG: invalid name ${JSON.stringify(name)}`);
      const scope = new Map([...visible, ...this.defined()]);
      const dflt = raw === undefined ? undefined : processWord(raw, scope, lex);
      let value: string | undefined;
      if (this.buildArgs.has(name)) {
        value = this.buildArgs.get(name);
        this.consumed.add(name);
      } else value = dflt ?? this.globals.get(name) ?? auto.get(name);
      this.values.set(name, value);
      shown.push(raw === undefined ? name : `${name}=${dflt}`);
    }
    return `ARG ${shown.join(' ')}`;
  }

  /** Declared args that have a value. */
  defined(): Map<string, string> {
    const m = new Map<string, string>();
    for (const [k, v] of this.values) if (v !== undefined) m.set(k, v);
    return m;
  }

  /** What a RUN depends on: declared args with values, proxies left out. */
  forKey(): Record<string, string> {
    return Object.fromEntries([...this.defined()].filter(([k]) => !PROXY_ARGS.has(k)));
  }

  /** Proxy args given with --build-arg (usable in RUN without a declaration). */
  proxies(): Map<string, string> {
    const m = new Map<string, string>();
    for (const [k, v] of this.buildArgs) {
      if (PROXY_ARGS.has(k)) {
        m.set(k, v);
        this.consumed.add(k);
      }
    }
    return m;
  }
}
