/**
 * The connection options of the verbs that reach a registry (pull, push, login, build):
 * `--insecure`, `--tls-ca`, `--timeout`. Apart from pull.ts so that `build` does not load
 * the registry client to read them (a build from stored images never pulls).
 */
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { LayerfsError } from '../../core/errors.js';

/** Shared `--insecure`, `--tls-ca`, `--timeout` handling of pull, push, login and build. */
export async function clientOptions(flags: { insecure?: boolean; tlsCa?: string; timeout?: string }): Promise<{ insecure?: boolean; tlsCa?: Buffer; timeoutMs?: number }> {
  const out: { insecure?: boolean; tlsCa?: Buffer; timeoutMs?: number } = {};
  if (flags.insecure) out.insecure = true;
  if (flags.tlsCa) {
    out.tlsCa = await readFile(flags.tlsCa).catch((err: Error) => {
      throw new LayerfsError('INVALID_ARGUMENT', `cannot read --tls-ca ${flags.tlsCa}: ${err.message}`);
    });
  }
  if (flags.timeout !== undefined) {
    const s = Number(flags.timeout);
    if (!(s > 0)) throw new LayerfsError('INVALID_ARGUMENT', `invalid --timeout ${JSON.stringify(flags.timeout)}: expected seconds`);
    out.timeoutMs = s * 1000;
  }
  return out;
}

/** Adds the connection options to a registry verb. */
export function connectionOptions(cmd: Command): Command {
  return cmd
    .option('--tls-ca <file>', 'trust this CA certificate (PEM) besides the system ones')
    .option('--insecure', 'allow plain HTTP and unverified TLS for this registry')
    .option('--timeout <seconds>', 'give up on a registry that sends nothing for this long (default 30)');
}
