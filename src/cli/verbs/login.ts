/**
 * `layerfs login REGISTRY` / `layerfs logout REGISTRY`: check credentials against a
 * registry and keep them (registry/credentials.ts says where: ~/.config/layerfs/auth.json,
 * Docker's config.json format).
 */
import { createInterface } from 'node:readline/promises';
import type { Command } from 'commander';
import { LayerfsError } from '../../core/errors.js';
import { parseReference } from '../../image/index.js';
import { RegistryClient, removeCredentials, saveCredentials } from '../../registry/index.js';
import { clientOptions, connectionOptions } from './registry-options.js';

interface LoginFlags {
  username?: string;
  password?: string;
  passwordStdin?: boolean;
  insecure?: boolean;
  tlsCa?: string;
  timeout?: string;
}

/** `docker.io`, `127.0.0.1:5000`: the registry part of what the user typed. */
function registryHost(arg: string | undefined): string {
  if (!arg) return 'docker.io';
  const bare = arg.replace(/^https?:\/\//, '').replace(/\/.*$/, '');
  if (bare === 'index.docker.io' || bare === 'registry-1.docker.io') return 'docker.io';
  return parseReference(`${bare}/x`).domain;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

/** Registers `login` and `logout` on the program. */
export function register(program: Command): void {
  connectionOptions(
    program
      .command('login')
      .description('Log in to a registry (credentials kept in ~/.config/layerfs/auth.json)')
      .argument('[registry]', 'registry host, e.g. 127.0.0.1:5000 (default: docker.io)')
      .option('-u, --username <name>', 'user name')
      .option('-p, --password <password>', 'password (prefer --password-stdin)')
      .option('--password-stdin', 'read the password from stdin'),
  ).action(async (registry: string | undefined, flags: LoginFlags) => {
    const host = registryHost(registry);
    let username = flags.username;
    let password = flags.password;
    if (flags.passwordStdin) {
      if (password !== undefined) throw new LayerfsError('INVALID_ARGUMENT', '--password and --password-stdin are mutually exclusive');
      password = await readStdin();
    }
    if (username === undefined || password === undefined) {
      if (!process.stdin.isTTY) throw new LayerfsError('INVALID_ARGUMENT', 'give --username and --password-stdin (no terminal to ask on)');
      const rl = createInterface({ input: process.stdin, output: process.stderr });
      username ??= await rl.question('Username: ');
      password ??= await rl.question('Password: ');
      rl.close();
    }
    if (username === '' || password === '') throw new LayerfsError('INVALID_ARGUMENT', 'user name and password must not be empty');
    const client = await RegistryClient.connect(host, { ...(await clientOptions(flags)), credentials: { username, password } });
    try {
      await client.checkLogin();
    } finally {
      client.close();
    }
    const file = await saveCredentials(host, { username, password });
    process.stdout.write(`Login Succeeded (credentials for ${host} stored in ${file})\n`);
  });

  program
    .command('logout')
    .description('Forget the credentials stored for a registry')
    .argument('[registry]', 'registry host (default: docker.io)')
    .action(async (registry: string | undefined) => {
      const host = registryHost(registry);
      if (await removeCredentials(host)) process.stdout.write(`Removing login credentials for ${host}\n`);
      else process.stdout.write(`Not logged in to ${host}\n`);
    });
}
