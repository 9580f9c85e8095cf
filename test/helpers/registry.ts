/**
 * The real distribution registry (Debian's docker-registry) for tests, on 127.0.0.1 with a
 * free port and its storage in a temp dir: plain, with htpasswd Basic auth, with Bearer
 * tokens from a small RS256 token issuer run here, or with TLS from a CA made here. Also:
 * a loopback proxy that can corrupt, cut or stall what the registry sends, and skopeo.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createSign, randomBytes, X509Certificate } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** A free TCP port on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

async function waitForPort(port: number, proc: ChildProcess, log: () => string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (proc.exitCode !== null) throw new Error(`docker-registry exited ${proc.exitCode}:\n${log()}`);
    const ok = await new Promise<boolean>((r) => {
      const c = net.connect(port, '127.0.0.1', () => {
        c.destroy();
        r(true);
      });
      c.on('error', () => r(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`docker-registry did not listen on ${port}:\n${log()}`);
}

/** A self-signed CA and a server certificate for 127.0.0.1 signed by it (openssl). */
export async function makeCerts(dir: string): Promise<{ ca: string; cert: string; key: string }> {
  const ca = join(dir, 'ca.pem');
  const caKey = join(dir, 'ca.key');
  const key = join(dir, 'server.key');
  const csr = join(dir, 'server.csr');
  const cert = join(dir, 'server.pem');
  const ext = join(dir, 'ext.cnf');
  await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', caKey, '-out', ca, '-days', '2', '-subj', '/CN=layerfs test CA']);
  await run('openssl', ['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', csr, '-subj', '/CN=127.0.0.1']);
  await writeFile(ext, 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  await run('openssl', ['x509', '-req', '-in', csr, '-CA', ca, '-CAkey', caKey, '-CAcreateserial', '-out', cert, '-days', '2', '-extfile', ext]);
  return { ca, cert, key };
}

/** A token issuer: checks Basic credentials, grants the scopes asked for, signs RS256 JWTs. */
export interface TokenIssuer {
  url: string;
  certFile: string;
  requests: string[];
  close(): Promise<void>;
}

const b64url = (b: Buffer | string): string => Buffer.from(b).toString('base64url');

/** Starts a token issuer on 127.0.0.1 accepting `user`/`password` (anonymous gets nothing). */
export async function startTokenIssuer(dir: string, user: string, password: string): Promise<TokenIssuer> {
  const keyFile = join(dir, 'token.key');
  const certFile = join(dir, 'token.pem');
  await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '2', '-subj', '/CN=layerfs test token issuer']);
  const key = await readFile(keyFile, 'utf8');
  const der = new X509Certificate(await readFile(certFile)).raw;
  const requests: string[] = [];
  const server = http.createServer((req, res) => {
    requests.push(req.url ?? '');
    const url = new URL(req.url ?? '/', 'http://x');
    const auth = req.headers.authorization ?? '';
    const given = auth.startsWith('Basic ') ? Buffer.from(auth.slice(6), 'base64').toString() : '';
    if (given !== `${user}:${password}`) {
      res.writeHead(401, { 'Content-Type': 'application/json' }).end('{"details":"wrong credentials"}');
      return;
    }
    const access = url.searchParams.getAll('scope').map((s) => {
      const [type, name, actions] = s.split(':');
      return { type, name, actions: (actions ?? '').split(',') };
    });
    const now = Math.floor(Date.now() / 1000);
    const header = { alg: 'RS256', typ: 'JWT', x5c: [der.toString('base64')] };
    const claims = { iss: 'layerfs-test-issuer', sub: user, aud: url.searchParams.get('service'), exp: now + 300, nbf: now - 10, iat: now, jti: randomBytes(8).toString('hex'), access };
    const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    const sig = createSign('RSA-SHA256').update(input).sign(key);
    const token = `${input}.${b64url(sig)}`;
    res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ token, access_token: token, expires_in: 300 }));
  });
  const port = await freePort();
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${port}/token`, certFile, requests, close: () => new Promise((r) => server.close(() => r())) };
}

/** How to run the registry. */
export interface RegistryOptions {
  htpasswd?: { user: string; password: string };
  token?: TokenIssuer;
  tls?: { cert: string; key: string };
}

/** A running registry. */
export interface Registry {
  host: string;
  port: number;
  pid: number;
  stop(): Promise<void>;
}

/** Starts `docker-registry serve` with its own config in `dir`. */
export async function startRegistry(dir: string, opts: RegistryOptions = {}): Promise<Registry> {
  await mkdir(dir, { recursive: true });
  const port = await freePort();
  const lines = [
    'version: 0.1',
    'log:',
    '  level: warn',
    '  accesslog:',
    '    disabled: true',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${join(dir, 'data')}`,
    '  delete:',
    '    enabled: true',
    'http:',
    `  addr: 127.0.0.1:${port}`,
  ];
  if (opts.tls) lines.push('  tls:', `    certificate: ${opts.tls.cert}`, `    key: ${opts.tls.key}`);
  if (opts.htpasswd) {
    const file = join(dir, 'htpasswd');
    const { stdout } = await run('htpasswd', ['-nbB', '-C', '5', opts.htpasswd.user, opts.htpasswd.password]);
    await writeFile(file, stdout.trim() + '\n');
    lines.push('auth:', '  htpasswd:', '    realm: layerfs-test', `    path: ${file}`);
  }
  if (opts.token) {
    lines.push('auth:', '  token:', `    realm: ${opts.token.url}`, '    service: layerfs-test-registry', '    issuer: layerfs-test-issuer', `    rootcertbundle: ${opts.token.certFile}`);
  }
  const config = join(dir, 'config.yml');
  await writeFile(config, lines.join('\n') + '\n');
  let log = '';
  const proc = spawn('/usr/bin/docker-registry', ['serve', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  proc.stdout!.on('data', (d) => (log += d));
  proc.stderr!.on('data', (d) => (log += d));
  await waitForPort(port, proc, () => log);
  return {
    host: `127.0.0.1:${port}`,
    port,
    pid: proc.pid!,
    stop: async () => {
      const running = (): boolean => proc.exitCode === null && proc.signalCode === null;
      if (!running()) return;
      const exited = new Promise((r) => proc.once('exit', r));
      process.kill(proc.pid!, 'SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
      if (running()) process.kill(proc.pid!, 'SIGKILL');
    },
  };
}

/** `skopeo copy` with TLS verification off on both sides (a loopback test registry). */
export async function skopeoCopy(src: string, dest: string, extra: string[] = []): Promise<void> {
  await run('skopeo', ['copy', '--quiet', '--src-tls-verify=false', '--dest-tls-verify=false', ...extra, src, dest], { maxBuffer: 64 * 1024 * 1024 });
}

/** What a proxy does to a response from the registry. */
export type ProxyMode =
  | { kind: 'pass' }
  /** Flip one byte in the middle of every blob body of at least `minSize` bytes. */
  | { kind: 'corrupt-blobs'; minSize: number }
  /** Send half of the first blob body that is over `minSize` bytes, then close the connection. */
  | { kind: 'cut-blob-once'; minSize: number }
  /** Send half of every large blob body, then stop sending (connection left open). */
  | { kind: 'stall-blobs'; minSize: number }
  /** Answer blob GETs with a 307 redirect to the same path on `to` (blob storage elsewhere). */
  | { kind: 'redirect-blobs'; to: string }
  /** Answer manifest requests with these bytes (and a matching Docker-Content-Digest). */
  | { kind: 'manifest'; body: Buffer; contentType: string; digestHeader?: string };

/** A loopback HTTP proxy in front of a plain registry. */
export interface Proxy {
  host: string;
  mode: ProxyMode;
  /** `Range` headers of the blob requests seen. */
  ranges: string[];
  /** `METHOD path` of every request seen. */
  requests: string[];
  close(): Promise<void>;
}

/** Starts a proxy forwarding to `target` (host:port, plain HTTP). */
export async function startProxy(target: string): Promise<Proxy> {
  const [thost, tport] = target.split(':');
  const sockets = new Set<net.Socket>();
  const p: Proxy = { host: '', mode: { kind: 'pass' }, ranges: [], requests: [], close: async () => {} };
  const server = http.createServer((req, res) => {
    p.requests.push(`${req.method} ${req.url}`);
    const isBlob = /\/blobs\/sha256:/.test(req.url ?? '') && req.method === 'GET';
    if (isBlob) p.ranges.push(String(req.headers.range ?? ''));
    const mode = p.mode;
    if (mode.kind === 'manifest' && /\/manifests\//.test(req.url ?? '')) {
      const headers: Record<string, string> = { 'Content-Type': mode.contentType, 'Content-Length': String(mode.body.length) };
      if (mode.digestHeader) headers['Docker-Content-Digest'] = mode.digestHeader;
      res.writeHead(200, headers).end(mode.body);
      return;
    }
    if (mode.kind === 'redirect-blobs' && isBlob) {
      res.writeHead(307, { Location: `http://${mode.to}${req.url}`, 'Content-Length': '0' }).end();
      return;
    }
    const up = http.request({ host: thost, port: Number(tport), method: req.method, path: req.url, headers: req.headers }, (ur) => {
      const size = Number(ur.headers['content-length'] ?? 0);
      const big = isBlob && (ur.statusCode === 200 || ur.statusCode === 206);
      if (big && mode.kind === 'corrupt-blobs' && size > 0 && size >= mode.minSize) {
        const chunks: Buffer[] = [];
        ur.on('data', (c: Buffer) => chunks.push(c));
        ur.on('end', () => {
          const b = Buffer.concat(chunks);
          const mid = Math.floor(b.length / 2);
          b[mid] = b[mid]! ^ 0xff;
          res.writeHead(ur.statusCode!, ur.headers).end(b);
        });
        return;
      }
      if (big && (mode.kind === 'cut-blob-once' || mode.kind === 'stall-blobs') && size >= mode.minSize) {
        if (mode.kind === 'cut-blob-once') p.mode = { kind: 'pass' };
        res.writeHead(ur.statusCode!, ur.headers);
        let sent = 0;
        const half = Math.floor(size / 2);
        ur.on('data', (c: Buffer) => {
          if (sent >= half) return;
          const part = c.subarray(0, half - sent);
          sent += part.length;
          res.write(part);
          if (sent >= half) {
            ur.destroy();
            if (mode.kind === 'cut-blob-once') setTimeout(() => res.socket?.destroy(), 50);
          }
        });
        return;
      }
      res.writeHead(ur.statusCode!, ur.headers);
      ur.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  const port = await freePort();
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  p.host = `127.0.0.1:${port}`;
  p.close = () =>
    new Promise((r) => {
      for (const s of sockets) s.destroy();
      server.close(() => r());
    });
  return p;
}
