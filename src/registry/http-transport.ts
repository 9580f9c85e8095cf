/**
 * One HTTP(S) exchange with a registry or its blob storage, on node:http/https: keep-alive
 * agents per client, an idle timeout that covers the whole exchange (headers and body),
 * redirects followed for GET/HEAD (the Authorization header is dropped when the redirect
 * leaves the origin, as blob storage behind a redirect must not see registry credentials),
 * and network failures turned into one-line LayerfsErrors naming the host.
 */
import http, { type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import https from 'node:https';
import { rootCertificates } from 'node:tls';
import type { Readable } from 'node:stream';
import { LayerfsError } from '../core/errors.js';

/** How to reach one registry. */
export interface TransportOptions {
  /** Idle timeout: no byte for this long fails the exchange. */
  timeoutMs: number;
  /** Extra CA certificates (PEM) trusted besides the system ones. */
  ca?: Buffer;
  /** Skip TLS certificate verification (--insecure). */
  insecureTls?: boolean;
}

/** A request body: bytes, or a factory of streams so the request can be sent again. */
export type RequestBody = Buffer | { length: number; open: () => Readable };

/** One request. */
export interface RequestInit {
  method: string;
  headers?: Record<string, string>;
  body?: RequestBody;
}

/** A response whose body is still to be read (or discarded with `drain`). */
export interface HttpResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: IncomingMessage;
  /** The URL that answered (after redirects). */
  url: URL;
}

const MAX_REDIRECTS = 5;

/** Sends HTTP requests with shared keep-alive agents. */
export class HttpTransport {
  private readonly httpAgent: http.Agent;
  private readonly httpsAgent: https.Agent;

  constructor(readonly opts: TransportOptions) {
    this.httpAgent = new http.Agent({ keepAlive: true, maxSockets: 16 });
    const tlsOpts: https.AgentOptions = { keepAlive: true, maxSockets: 16 };
    if (opts.ca) tlsOpts.ca = [...rootCertificates, opts.ca.toString('utf8')];
    if (opts.insecureTls) tlsOpts.rejectUnauthorized = false;
    this.httpsAgent = new https.Agent(tlsOpts);
  }

  /** Sends `init` to `url`, following redirects for GET and HEAD. */
  async send(url: URL, init: RequestInit): Promise<HttpResponse> {
    let current = url;
    let headers = { ...(init.headers ?? {}) };
    for (let hop = 0; ; hop++) {
      const res = await this.once(current, { ...init, headers });
      const loc = res.headers.location;
      const redirect = [301, 302, 303, 307, 308].includes(res.status) && loc !== undefined && (init.method === 'GET' || init.method === 'HEAD');
      if (!redirect) return res;
      drain(res);
      if (hop >= MAX_REDIRECTS) throw new LayerfsError('REGISTRY', `${url.host}: more than ${MAX_REDIRECTS} redirects for ${url.pathname}`);
      const next = new URL(loc, current);
      if (next.origin !== current.origin) {
        headers = Object.fromEntries(Object.entries(headers).filter(([k]) => k.toLowerCase() !== 'authorization'));
      }
      current = next;
    }
  }

  private once(url: URL, init: RequestInit): Promise<HttpResponse> {
    const mod = url.protocol === 'https:' ? https : http;
    const agent = url.protocol === 'https:' ? this.httpsAgent : this.httpAgent;
    const headers: Record<string, string> = { 'User-Agent': 'layerfs', ...(init.headers ?? {}) };
    const body = init.body;
    if (body !== undefined) headers['Content-Length'] = String(body.length);
    else if (init.method === 'PUT' || init.method === 'POST' || init.method === 'PATCH') headers['Content-Length'] = '0';
    return new Promise((resolve, reject) => {
      const req = mod.request(url, { method: init.method, headers, agent });
      const timedOut = (): LayerfsError =>
        new LayerfsError('REGISTRY', `${url.host}: timed out after ${this.opts.timeoutMs / 1000}s without data (${init.method} ${url.pathname})`, {
          hint: 'the registry stopped answering; run the command again (downloads resume where they stopped)',
        });
      let response: IncomingMessage | undefined;
      // The idle timeout keeps covering the body: a registry that stalls mid-blob fails.
      req.setTimeout(this.opts.timeoutMs, () => (response ? response.destroy(timedOut()) : req.destroy(timedOut())));
      req.on('error', (err) => reject(networkError(url, err)));
      req.on('response', (res) => {
        response = res;
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: res, url });
      });
      if (body === undefined) req.end();
      else if (Buffer.isBuffer(body)) req.end(body);
      else {
        const s = body.open();
        s.on('error', (e) => req.destroy(e));
        s.pipe(req);
      }
    });
  }

  /** Closes idle keep-alive sockets so the process can exit. */
  close(): void {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }
}

/** Discards a response body (keeps the socket reusable). */
export function drain(res: HttpResponse): void {
  res.body.resume();
  res.body.on('error', () => {});
}

/** Reads a whole response body, failing beyond `max` bytes. */
export async function readBody(res: HttpResponse, max: number, what: string): Promise<Buffer> {
  const declared = Number(res.headers['content-length']);
  if (Number.isFinite(declared) && declared > max) {
    res.body.destroy();
    throw new LayerfsError('LIMIT_EXCEEDED', `${what} is ${declared} bytes, over the ${max}-byte limit`);
  }
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of res.body as AsyncIterable<Buffer>) {
    n += c.length;
    if (n > max) {
      res.body.destroy();
      throw new LayerfsError('LIMIT_EXCEEDED', `${what} is larger than the ${max}-byte limit`);
    }
    chunks.push(c);
  }
  return Buffer.concat(chunks);
}

/** Turns a socket/TLS error into a one-line error naming the host. */
export function networkError(url: URL, err: unknown): LayerfsError {
  if (err instanceof LayerfsError) return err;
  const e = err as NodeJS.ErrnoException;
  const code = e.code ?? '';
  if (code === 'ECONNREFUSED') return new LayerfsError('REGISTRY', `cannot connect to ${url.host}: connection refused`, { cause: err, hint: 'is the registry running, and is the address right?' });
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return new LayerfsError('REGISTRY', `cannot resolve ${url.hostname}`, { cause: err });
  if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS_CERT_ALTNAME/.test(code)) {
    return new LayerfsError('REGISTRY', `${url.host}: TLS certificate not trusted (${e.message})`, { cause: err, hint: 'pass the CA with --tls-ca FILE, or --insecure to skip verification' });
  }
  if (code === 'ECONNRESET' || code === 'EPIPE' || e.message === 'aborted') return new LayerfsError('REGISTRY', `${url.host}: connection closed by the registry (${url.pathname})`, { cause: err });
  return new LayerfsError('REGISTRY', `${url.host}: ${e.message}`, { cause: err });
}

/** True for TLS handshake failures that mean "this port speaks plain HTTP". */
export function isPlainHttpAnswer(err: unknown): boolean {
  const e = ((err as { cause?: unknown }).cause ?? err) as NodeJS.ErrnoException;
  return e.code === 'EPROTO' || /wrong version number|packet length too long|http request/i.test(e.message ?? '');
}
