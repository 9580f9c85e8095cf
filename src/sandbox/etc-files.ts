/**
 * The three /etc files a container gets from its runtime rather than its image, written
 * into the container folder and bind-mounted by the spec (as Docker does):
 *  - hostname: the container's host name;
 *  - hosts: localhost entries (own network namespace) or the host's file (--network host);
 *  - resolv.conf: the host's, minus loopback name servers that mean nothing in a fresh
 *    network namespace (verbatim with --network host).
 */
import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { EtcFiles } from './runtime-spec.js';

async function writeAtomic(file: string, text: string): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}`;
  await writeFile(tmp, text, { mode: 0o644 });
  await rename(tmp, file);
}

/** Drops `nameserver 127.x`/`::1` lines; Docker falls back to public resolvers, layerfs (no network) just drops them. */
export function filterResolvConf(text: string): string {
  return text
    .split('\n')
    .filter((l) => !/^\s*nameserver\s+(127\.|::1\b)/.test(l))
    .join('\n');
}

/** Writes hosts, hostname and resolv.conf into `dir`; returns their paths. */
export async function writeEtcFiles(dir: string, opts: { hostname: string; network: 'none' | 'host' }): Promise<EtcFiles> {
  const files: EtcFiles = { hosts: join(dir, 'hosts'), hostname: join(dir, 'hostname'), resolvConf: join(dir, 'resolv.conf') };
  const hostResolv = await readFile('/etc/resolv.conf', 'utf8').catch(() => '');
  const hosts =
    opts.network === 'host'
      ? await readFile('/etc/hosts', 'utf8').catch(() => '127.0.0.1\tlocalhost\n')
      : `127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n127.0.1.1\t${opts.hostname}\n`;
  await writeAtomic(files.hostname, `${opts.hostname}\n`);
  await writeAtomic(files.hosts, hosts);
  await writeAtomic(files.resolvConf, opts.network === 'host' ? hostResolv : filterResolvConf(hostResolv));
  return files;
}
