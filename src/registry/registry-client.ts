/**
 * A client for one registry (OCI distribution spec / Docker registry API v2): picks the
 * scheme with `GET /v2/` (HTTPS; plain HTTP only for loopback registries or with
 * --insecure), authenticates each request for its repository scopes (authenticator.ts),
 * and turns the registry's `{"errors":[{code,message}]}` answers into one-line errors.
 */
import { LayerfsError } from '../core/errors.js';
import { Authenticator } from './authenticator.js';
import { findCredentials, type Credentials } from './credentials.js';
import { HttpTransport, drain, isPlainHttpAnswer, readBody, type HttpResponse, type RequestBody } from './http-transport.js';

/** How to talk to a registry. */
export interface ClientOptions {
  /** Allow plain HTTP and skip TLS verification for this registry. */
  insecure?: boolean;
  /** Extra CA (PEM) to trust. */
  tlsCa?: Buffer;
  /** Idle timeout in ms (default 30 s; LAYERFS_REGISTRY_TIMEOUT overrides, in seconds). */
  timeoutMs?: number;
  /** Credentials; default: looked up in layerfs's and Docker's auth files. */
  credentials?: Credentials | null;
}

/** Options of one request. */
export interface CallOptions {
  /** Token scopes, e.g. `repository:library/debian:pull`. */
  scopes: string[];
  headers?: Record<string, string>;
  body?: RequestBody;
}

/** True for localhost, 127.0.0.0/8 and ::1 (Docker treats these as insecure registries too). */
export function isLoopbackHost(host: string): boolean {
  const name = host.startsWith('[') ? host.slice(1, host.indexOf(']')) : host.replace(/:\d+$/, '');
  return name === 'localhost' || name === '::1' || /^127\.\d+\.\d+\.\d+$/.test(name);
}

/** The default idle timeout. */
export function defaultTimeoutMs(): number {
  const s = Number(process.env.LAYERFS_REGISTRY_TIMEOUT);
  return Number.isFinite(s) && s > 0 ? s * 1000 : 30_000;
}

/** Reads an error answer into a one-line LayerfsError. */
export async function registryError(res: HttpResponse, what: string): Promise<LayerfsError> {
  const body = await readBody(res, 64 * 1024, 'error answer').catch(() => Buffer.alloc(0));
  let detail = '';
  let code = '';
  try {
    const v = JSON.parse(body.toString('utf8')) as { errors?: Array<{ code?: string; message?: string }> };
    const e = v.errors?.[0];
    if (e) {
      code = e.code ?? '';
      detail = `${e.code ?? 'ERROR'}: ${e.message ?? ''}`.trim();
    }
  } catch {
    /* not the registry's JSON error form */
  }
  const suffix = detail ? ` (${detail})` : ` (HTTP ${res.status})`;
  if (res.status === 404 || code.endsWith('_UNKNOWN')) return new LayerfsError('NOT_FOUND', `${what}: not found${suffix}`);
  if (res.status === 401 || res.status === 403) return new LayerfsError('UNAUTHORIZED', `${what}: access denied${suffix}`, { hint: 'check the repository name, and log in with `layerfs login REGISTRY`' });
  return new LayerfsError('REGISTRY', `${what}: the registry answered HTTP ${res.status}${suffix}`);
}

/** A connection to one registry host. */
export class RegistryClient {
  readonly transport: HttpTransport;
  /** Where the API lives (`https://host`), known after `ping`. */
  private base: URL | undefined;
  private auth: Authenticator | undefined;

  private constructor(readonly host: string, private readonly opts: ClientOptions) {
    const t: ConstructorParameters<typeof HttpTransport>[0] = { timeoutMs: opts.timeoutMs ?? defaultTimeoutMs() };
    if (opts.tlsCa) t.ca = opts.tlsCa;
    if (opts.insecure) t.insecureTls = true;
    this.transport = new HttpTransport(t);
  }

  /** Connects to `host` (a reference domain such as `docker.io` or `127.0.0.1:5000`). */
  static async connect(host: string, opts: ClientOptions = {}): Promise<RegistryClient> {
    const c = new RegistryClient(host, opts);
    try {
      await c.ping();
    } catch (err) {
      c.close();
      throw err;
    }
    return c;
  }

  /** The host the API answers on (Docker Hub's API is not on docker.io itself). */
  private get apiHost(): string {
    return this.host === 'docker.io' ? 'registry-1.docker.io' : this.host;
  }

  /** `GET /v2/`: chooses the scheme and records the authentication challenge. */
  private async ping(): Promise<void> {
    const plainOk = this.opts.insecure === true || isLoopbackHost(this.host);
    let res: HttpResponse;
    try {
      res = await this.transport.send(new URL(`https://${this.apiHost}/v2/`), { method: 'GET' });
      this.base = new URL(`https://${this.apiHost}`);
    } catch (err) {
      const refused = (err as { cause?: NodeJS.ErrnoException }).cause?.code === 'ECONNREFUSED';
      if (!plainOk || !(isPlainHttpAnswer(err) || refused)) {
        if (isPlainHttpAnswer(err)) throw new LayerfsError('REGISTRY', `${this.host} does not speak HTTPS`, { hint: 'plain HTTP is used only for loopback registries or with --insecure' });
        throw err;
      }
      res = await this.transport.send(new URL(`http://${this.apiHost}/v2/`), { method: 'GET' });
      this.base = new URL(`http://${this.apiHost}`);
    }
    const credentials = this.opts.credentials === null ? undefined : (this.opts.credentials ?? (await findCredentials(this.host)));
    this.auth = new Authenticator(this.host, this.transport, credentials);
    if (res.status === 401) {
      const h = res.headers['www-authenticate'];
      drain(res);
      if (!this.auth.onChallenge(Array.isArray(h) ? h[0] : h)) throw new LayerfsError('REGISTRY', `${this.host} asks for an authentication scheme layerfs does not support`);
      return;
    }
    if (res.status !== 200) {
      const api = res.headers['docker-distribution-api-version'];
      drain(res);
      throw new LayerfsError('REGISTRY', `${this.host} is not a registry (GET /v2/ answered HTTP ${res.status}${api ? '' : ', no Docker-Distribution-Api-Version header'})`);
    }
    drain(res);
  }

  /** Checks that the credentials are accepted (for `login`): a token or an authorized /v2/. */
  async checkLogin(): Promise<void> {
    const res = await this.call('GET', '/v2/', { scopes: [] });
    if (res.status !== 200) throw await registryError(res, this.host);
    drain(res);
  }

  /** Absolute URL of an API path, or of a Location header the registry sent. */
  url(pathOrLocation: string): URL {
    if (!this.base) throw new Error('internal: registry client used before ping');
    return new URL(pathOrLocation, this.base);
  }

  /** Sends one authenticated request; a 401 with a new challenge is retried once. */
  async call(method: string, pathOrUrl: string | URL, opts: CallOptions): Promise<HttpResponse> {
    const url = typeof pathOrUrl === 'string' ? this.url(pathOrUrl) : pathOrUrl;
    for (let attempt = 0; ; attempt++) {
      const headers = { ...(opts.headers ?? {}) };
      const authz = await this.auth!.header(opts.scopes);
      if (authz) headers.Authorization = authz;
      const res = await this.transport.send(url, { method, headers, ...(opts.body !== undefined ? { body: opts.body } : {}) });
      if (res.status !== 401) return res;
      const h = res.headers['www-authenticate'];
      if (attempt === 0 && !authz && this.auth!.onChallenge(Array.isArray(h) ? h[0] : h)) {
        drain(res);
        continue;
      }
      drain(res);
      throw new LayerfsError('UNAUTHORIZED', `${this.host}: ${authz ? 'authentication failed (wrong user name or password, or no access to this repository)' : 'authentication required'}`, {
        hint: `run \`layerfs login ${this.host}\``,
      });
    }
  }

  /** Closes idle connections. */
  close(): void {
    this.transport.close();
  }
}
