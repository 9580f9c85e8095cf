/**
 * The registry client's small decisions, without a registry: WWW-Authenticate parsing,
 * which hosts may use plain HTTP, and where credentials are looked up (Docker Hub's
 * historical keys, layerfs's file before Docker's).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseChallenge } from '../../src/registry/authenticator.js';
import { findCredentials, removeCredentials, saveCredentials } from '../../src/registry/credentials.js';
import { isLoopbackHost } from '../../src/registry/registry-client.js';
import { tempDir } from '../helpers/temp.js';

describe('WWW-Authenticate challenges', () => {
  it('parses Bearer with quoted, escaped and bare values, and Basic', () => {
    expect(parseChallenge('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/debian:pull"')).toEqual({
      scheme: 'bearer',
      params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/debian:pull' },
    });
    expect(parseChallenge('bearer realm=http://127.0.0.1:1/token, service="a \\"b\\""')).toEqual({ scheme: 'bearer', params: { realm: 'http://127.0.0.1:1/token', service: 'a "b"' } });
    expect(parseChallenge('Basic realm="Registry Realm"')).toEqual({ scheme: 'basic', params: { realm: 'Registry Realm' } });
    expect(parseChallenge('Negotiate abc')).toBeUndefined();
    expect(parseChallenge(undefined)).toBeUndefined();
  });
});

describe('plain HTTP', () => {
  it('is allowed only for loopback hosts', () => {
    for (const h of ['localhost', 'localhost:5000', '127.0.0.1', '127.0.0.1:5000', '127.1.2.3:80', '[::1]:5000']) expect(isLoopbackHost(h), h).toBe(true);
    for (const h of ['docker.io', 'registry.example.com:5000', '10.0.0.1:5000', '128.0.0.1', 'localhost.example.com', '[::2]:5000']) expect(isLoopbackHost(h), h).toBe(false);
  });
});

describe('credentials', () => {
  const saved = { ...process.env };
  afterEach(() => {
    process.env = { ...saved };
  });

  it("reads Docker Hub's historical key, prefers layerfs's file, and removes what it stored", async () => {
    const dir = await tempDir();
    process.env.LAYERFS_AUTH_FILE = join(dir, 'layerfs', 'auth.json');
    process.env.DOCKER_CONFIG = join(dir, 'docker');
    await mkdir(join(dir, 'docker'), { recursive: true });
    const b64 = (s: string): string => Buffer.from(s).toString('base64');
    await writeFile(join(dir, 'docker', 'config.json'), JSON.stringify({ auths: { 'https://index.docker.io/v1/': { auth: b64('hub:pw') }, 'reg.example:5000': { auth: b64('d:x:y') } } }));
    expect(await findCredentials('docker.io')).toEqual({ username: 'hub', password: 'pw' });
    expect(await findCredentials('reg.example:5000')).toEqual({ username: 'd', password: 'x:y' });
    expect(await findCredentials('other.example')).toBeUndefined();
    await saveCredentials('reg.example:5000', { username: 'mine', password: 'p' });
    expect(await findCredentials('reg.example:5000')).toEqual({ username: 'mine', password: 'p' });
    expect(await removeCredentials('reg.example:5000')).toBe(true);
    expect(await findCredentials('reg.example:5000')).toEqual({ username: 'd', password: 'x:y' });
    expect(await removeCredentials('reg.example:5000')).toBe(false);
  });
});
