/**
 * Registry authentication, as the distribution spec's token flow describes it: a request
 * answered 401 carries `WWW-Authenticate`; `Basic realm=…` means send the credentials with
 * every request; `Bearer realm=…,service=…,scope=…` means ask the realm (with the
 * credentials, if any) for a token covering the scopes, then retry with `Bearer <token>`.
 * Tokens are cached per scope set until shortly before they expire.
 */
import { LayerfsError } from '../core/errors.js';
import type { Credentials } from './credentials.js';
import { readBody, type HttpTransport } from './http-transport.js';

/** A parsed `WWW-Authenticate` challenge. */
export interface Challenge {
  scheme: 'basic' | 'bearer';
  params: Record<string, string>;
}

/** Parses `Bearer realm="…",service="…",scope="…"` (quoted or token values). */
export function parseChallenge(header: string | undefined): Challenge | undefined {
  if (!header) return undefined;
  const m = /^\s*(\w+)\s*(.*)$/s.exec(header);
  if (!m) return undefined;
  const scheme = m[1]!.toLowerCase();
  if (scheme !== 'basic' && scheme !== 'bearer') return undefined;
  const params: Record<string, string> = {};
  const re = /([A-Za-z_][\w-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))\s*,?\s*/g;
  let p: RegExpExecArray | null;
  while ((p = re.exec(m[2]!)) !== null) {
    if (p[0] === '') break;
    params[p[1]!.toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, '$1') : (p[3] ?? '');
  }
  return { scheme, params };
}

function basicHeader(c: Credentials): string {
  return `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}`;
}

/** Produces Authorization headers for one registry. */
export class Authenticator {
  private challenge: Challenge | undefined;
  private readonly tokens = new Map<string, { token: string; expires: number }>();

  constructor(
    private readonly host: string,
    private readonly transport: HttpTransport,
    private readonly credentials: Credentials | undefined,
  ) {}

  /** True once a challenge was seen (so a retry with authorization can help). */
  get challenged(): boolean {
    return this.challenge !== undefined;
  }

  /** Records the challenge of a 401 answer; false when it is not one layerfs can answer. */
  onChallenge(header: string | undefined): boolean {
    const c = parseChallenge(header);
    if (!c) return false;
    if (c.scheme === 'bearer' && !c.params.realm) return false;
    this.challenge = c;
    this.tokens.clear();
    return true;
  }

  /** The Authorization header for a request needing `scopes`, or undefined when anonymous works. */
  async header(scopes: string[]): Promise<string | undefined> {
    const c = this.challenge;
    if (!c) return undefined;
    if (c.scheme === 'basic') {
      if (!this.credentials) throw this.noCredentials();
      return basicHeader(this.credentials);
    }
    const key = [...scopes].sort().join(' ');
    const cached = this.tokens.get(key);
    if (cached && cached.expires > Date.now()) return `Bearer ${cached.token}`;
    const token = await this.fetchToken(c.params, scopes);
    this.tokens.set(key, token);
    return `Bearer ${token.token}`;
  }

  private noCredentials(): LayerfsError {
    return new LayerfsError('UNAUTHORIZED', `${this.host} requires authentication`, { hint: `run \`layerfs login ${this.host}\`` });
  }

  private async fetchToken(params: Record<string, string>, scopes: string[]): Promise<{ token: string; expires: number }> {
    let url: URL;
    try {
      url = new URL(params.realm!);
    } catch {
      throw new LayerfsError('REGISTRY', `${this.host}: invalid token realm ${JSON.stringify(params.realm)}`);
    }
    if (params.service) url.searchParams.set('service', params.service);
    for (const s of scopes) url.searchParams.append('scope', s);
    const headers: Record<string, string> = {};
    if (this.credentials) headers.Authorization = basicHeader(this.credentials);
    const res = await this.transport.send(url, { method: 'GET', headers });
    const body = await readBody(res, 1024 * 1024, `token from ${url.host}`);
    if (res.status === 401 || res.status === 403) {
      throw new LayerfsError('UNAUTHORIZED', `${this.host}: ${this.credentials ? 'wrong user name or password' : 'authentication required'} (token server ${url.host} answered ${res.status})`, {
        hint: `run \`layerfs login ${this.host}\``,
      });
    }
    if (res.status !== 200) throw new LayerfsError('REGISTRY', `token server ${url.host} answered HTTP ${res.status}`);
    let v: { token?: unknown; access_token?: unknown; expires_in?: unknown };
    try {
      v = JSON.parse(body.toString('utf8')) as typeof v;
    } catch {
      throw new LayerfsError('REGISTRY', `token server ${url.host} sent invalid JSON`);
    }
    const token = typeof v.token === 'string' && v.token ? v.token : typeof v.access_token === 'string' ? v.access_token : '';
    if (!token) throw new LayerfsError('REGISTRY', `token server ${url.host} sent no token`);
    const life = typeof v.expires_in === 'number' && v.expires_in > 0 ? v.expires_in : 60;
    return { token, expires: Date.now() + Math.max(1, life - 10) * 1000 };
  }
}
