/**
 * Registry authentication and TLS against the real distribution registry: htpasswd Basic
 * auth, Bearer tokens from an RS256 token issuer run by the test (the registry's
 * `auth.token` verifies them), credentials from `layerfs login` and from Docker's
 * config.json, and HTTPS with a CA made by the test (`--tls-ca`, `--insecure`).
 */
import { execFile } from 'node:child_process';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LAYERFS, REPO, runNode, type CliResult } from '../helpers/cli.js';
import { makeCerts, skopeoCopy, startRegistry, startTokenIssuer, type Registry, type TokenIssuer } from '../helpers/registry.js';
import { tempDir } from '../helpers/temp.js';

const run = promisify(execFile);

let work: string;
let sampleId: string;

/** Runs layerfs with its own auth file and Docker config folder (never the real ones). */
function layerfs(root: string, args: string[], env: Record<string, string> = {}, input?: string): Promise<CliResult> {
  return runNode(LAYERFS, ['--root', root, ...args], {
    env: { ...process.env, LAYERFS_AUTH_FILE: join(work, 'auth.json'), DOCKER_CONFIG: join(work, 'no-docker'), ...env },
    ...(input !== undefined ? { input: Buffer.from(input) } : {}),
  });
}

async function ok(root: string, args: string[], env: Record<string, string> = {}, input?: string): Promise<string> {
  const r = await layerfs(root, args, env, input);
  if (r.code !== 0) throw new Error(`layerfs ${args.join(' ')} exited ${r.code}:\n${r.stderr}${r.stdout}`);
  return r.stdout;
}

async function imageId(root: string, ref: string): Promise<string> {
  const v = JSON.parse(await ok(root, ['inspect', ref])) as Array<{ Id: string }>;
  return v[0]!.Id;
}

/** One line `layerfs: …`, optionally a `hint:` line, nothing else. */
function expectOneLineError(r: CliResult, re: RegExp): void {
  expect(r.code).not.toBe(0);
  const lines = r.stderr.trimEnd().split('\n');
  expect(lines[0]).toMatch(/^layerfs: /);
  expect(lines[0]).toMatch(re);
  expect(lines.length).toBeLessThanOrEqual(2);
}

beforeAll(async () => {
  work = await tempDir();
  await run(join(REPO, 'scripts', 'make-sample-image'), [join(work, 'oci')]);
  const r = join(work, 'ref-store');
  await ok(r, ['load', '-i', join(work, 'oci'), '--name', 'sample']);
  sampleId = await imageId(r, 'sample:latest');
});

describe('htpasswd Basic auth', () => {
  let reg: Registry;
  beforeAll(async () => {
    reg = await startRegistry(join(work, 'basic'), { htpasswd: { user: 'alice', password: 's3cret' } });
    await skopeoCopy(`oci:${join(work, 'oci')}:latest`, `docker://${reg.host}/private:1`, ['--dest-creds', 'alice:s3cret']);
  });
  afterAll(async () => reg?.stop());

  it('refuses anonymous pulls and wrong passwords with one line, and stores nothing', async () => {
    const root = join(work, 'basic-anon');
    expectOneLineError(await layerfs(root, ['pull', `${reg.host}/private:1`]), /requires authentication|authentication required/);
    expectOneLineError(await layerfs(root, ['login', '-u', 'alice', '--password-stdin', reg.host], {}, 'wrong\n'), /authentication failed/);
    await expect(stat(join(work, 'auth.json'))).rejects.toThrow();
    expect(JSON.parse(await ok(root, ['images', '--json']))).toEqual([]);
  });

  it('logs in, keeps the credentials like Docker (0600), pulls, and logs out', async () => {
    const root = join(work, 'basic-login');
    const out = await ok(root, ['login', '-u', 'alice', '--password-stdin', reg.host], {}, 's3cret\n');
    expect(out).toMatch(/^Login Succeeded/);
    const file = join(work, 'auth.json');
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    const saved = JSON.parse(await readFile(file, 'utf8')) as { auths: Record<string, { auth: string }> };
    expect(Buffer.from(saved.auths[reg.host]!.auth, 'base64').toString()).toBe('alice:s3cret');
    await ok(root, ['pull', `${reg.host}/private:1`]);
    expect(await imageId(root, `${reg.host}/private:1`)).toBe(sampleId);
    expect(await ok(root, ['logout', reg.host])).toContain(`Removing login credentials for ${reg.host}`);
    expectOneLineError(await layerfs(join(work, 'basic-after'), ['pull', `${reg.host}/private:1`]), /authentication/);
  });

  it("reads Docker's config.json", async () => {
    const dockerDir = join(work, 'docker-config');
    await mkdir(dockerDir, { recursive: true });
    await writeFile(join(dockerDir, 'config.json'), JSON.stringify({ auths: { [reg.host]: { auth: Buffer.from('alice:s3cret').toString('base64') } } }));
    const root = join(work, 'basic-docker');
    await ok(root, ['pull', `${reg.host}/private:1`], { DOCKER_CONFIG: dockerDir });
    expect(await imageId(root, `${reg.host}/private:1`)).toBe(sampleId);
  });
});

describe('Bearer tokens from a token issuer', () => {
  let reg: Registry;
  let issuer: TokenIssuer;
  beforeAll(async () => {
    issuer = await startTokenIssuer(await tempDir(), 'bob', 'tok-pass');
    reg = await startRegistry(join(work, 'token'), { token: issuer });
    await skopeoCopy(`oci:${join(work, 'oci')}:latest`, `docker://${reg.host}/tok/app:1`, ['--dest-creds', 'bob:tok-pass']);
  });
  afterAll(async () => {
    await reg?.stop();
    await issuer?.close();
  });

  it('answers the 401 challenge with a token for the repository scope, then pulls and pushes', async () => {
    const root = join(work, 'token-store');
    expectOneLineError(await layerfs(root, ['login', '-u', 'bob', '--password-stdin', reg.host], {}, 'nope\n'), /wrong user name or password/);
    await ok(root, ['login', '-u', 'bob', '--password-stdin', reg.host], {}, 'tok-pass\n');
    issuer.requests.length = 0;
    await ok(root, ['pull', `${reg.host}/tok/app:1`]);
    expect(await imageId(root, `${reg.host}/tok/app:1`)).toBe(sampleId);
    expect(issuer.requests.some((u) => new URL(u, 'http://x').searchParams.getAll('scope').includes('repository:tok/app:pull'))).toBe(true);
    const pushed = await ok(root, ['push', `${reg.host}/tok/app:1`, `${reg.host}/tok/copy:2`]);
    expect(pushed.match(/: Mounted from tok\/app$/gm)).toHaveLength(3);
    await skopeoCopy(`docker://${reg.host}/tok/copy:2`, `oci:${join(work, 'tok-back')}:2`, ['--src-creds', 'bob:tok-pass']);
  });

  it('fails with one line when no credentials are known', async () => {
    const root = join(work, 'token-anon');
    const r = await layerfs(root, ['pull', `${reg.host}/tok/app:1`], { LAYERFS_AUTH_FILE: join(work, 'none.json') });
    expectOneLineError(r, /authentication required/);
  });
});

describe('HTTPS with a CA made by the test', () => {
  let reg: Registry;
  let ca: string;
  beforeAll(async () => {
    const certs = await makeCerts(await tempDir());
    ca = certs.ca;
    reg = await startRegistry(join(work, 'tls'), { tls: { cert: certs.cert, key: certs.key } });
    await skopeoCopy(`oci:${join(work, 'oci')}:latest`, `docker://${reg.host}/secure:1`);
  });
  afterAll(async () => reg?.stop());

  it('refuses an unknown CA, trusts --tls-ca, and --insecure skips verification', async () => {
    const root = join(work, 'tls-store');
    expectOneLineError(await layerfs(root, ['pull', `${reg.host}/secure:1`]), /TLS certificate not trusted/);
    await ok(root, ['pull', '--tls-ca', ca, `${reg.host}/secure:1`]);
    expect(await imageId(root, `${reg.host}/secure:1`)).toBe(sampleId);
    const root2 = join(work, 'tls-insecure');
    await ok(root2, ['pull', '--insecure', `${reg.host}/secure:1`]);
    expect(await imageId(root2, `${reg.host}/secure:1`)).toBe(sampleId);
    await ok(root, ['push', '--tls-ca', ca, `${reg.host}/secure:1`, `${reg.host}/secure-copy:1`]);
    await skopeoCopy(`docker://${reg.host}/secure-copy:1`, `oci:${join(work, 'tls-back')}:1`);
  });
});
