/** `layerfs pull [REGISTRY/]REPO[:TAG|@DIGEST]`: download an image from a registry. */
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { LayerfsError } from '../../core/errors.js';
import { parsePlatform } from '../../image/platform.js';
import { pullImage, type PullEvent } from '../../registry/puller.js';
import { humanSize, openStore } from './format.js';

interface PullFlags {
  platform?: string;
  jobs: string;
  insecure?: boolean;
  tlsCa?: string;
  timeout?: string;
  quiet?: boolean;
}

/** Shared `--insecure`, `--tls-ca`, `--timeout` handling of pull, push and login. */
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

/** Plain status lines, one per change, as docker prints them without a terminal. */
function printer(quiet: boolean): (e: PullEvent) => void {
  const lastStatus = new Map<string, string>();
  return (e) => {
    if (e.type === 'waiting') {
      process.stderr.write(`Waiting for the store lock (held by process ${e.pid ?? '?'})…\n`);
      return;
    }
    if (quiet) return;
    if (e.type === 'start') process.stdout.write(`${e.tagOrDigest}: Pulling from ${e.repository}\n`);
    else if (e.type === 'layer') {
      if (lastStatus.get(e.id) === e.status) return;
      lastStatus.set(e.id, e.status);
      const size = e.status === 'Downloading' && e.total !== undefined ? ` ${humanSize(e.total)}` : '';
      process.stdout.write(`${e.id}: ${e.status}${size}\n`);
    } else {
      process.stdout.write(`Digest: ${e.digest}\n`);
      process.stdout.write(`Status: ${e.upToDate ? 'Image is up to date for' : 'Downloaded newer image for'} ${e.reference}\n`);
    }
  };
}

/** Registers `pull` on the program. */
export function register(program: Command): void {
  connectionOptions(
    program
      .command('pull')
      .description('Download an image from a registry ([REGISTRY/]REPO[:TAG|@DIGEST])')
      .argument('<reference>', 'image reference, e.g. debian:12, 127.0.0.1:5000/app@sha256:…')
      .option('--platform <os/arch[/variant]>', "platform to pick from a multi-platform image (default: this host's)")
      .option('-j, --jobs <n>', 'layers downloaded in parallel', '3')
      .option('-q, --quiet', 'print only the image id'),
  ).action(async (reference: string, flags: PullFlags, cmd: Command) => {
    const jobs = Number(flags.jobs);
    if (!Number.isInteger(jobs) || jobs < 1 || jobs > 64) throw new LayerfsError('INVALID_ARGUMENT', `invalid --jobs ${JSON.stringify(flags.jobs)}: expected 1…64`);
    const store = await openStore(cmd);
    const result = await pullImage(store, reference, {
      ...(await clientOptions(flags)),
      jobs,
      onEvent: printer(flags.quiet === true),
      ...(flags.platform ? { platform: parsePlatform(flags.platform) } : {}),
    });
    if (flags.quiet) process.stdout.write(`${result.id}\n`);
  });
}
