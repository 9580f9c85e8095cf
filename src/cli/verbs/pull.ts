/** `layerfs pull [REGISTRY/]REPO[:TAG|@DIGEST]`: download an image from a registry. */
import type { Command } from 'commander';
import { LayerfsError } from '../../core/errors.js';
import { parsePlatform } from '../../image/index.js';
import { pullImage, type PullEvent } from '../../registry/index.js';
import { humanSize, openStore } from './format.js';
import { clientOptions, connectionOptions } from './registry-options.js';

interface PullFlags {
  platform?: string;
  jobs: string;
  insecure?: boolean;
  tlsCa?: string;
  timeout?: string;
  quiet?: boolean;
}

/** Plain status lines, one per change, as docker prints them without a terminal. */
function plainPrinter(): (e: PullEvent) => void {
  const lastStatus = new Map<string, string>();
  return (e) => {
    if (e.type === 'start') process.stdout.write(`${e.tagOrDigest}: Pulling from ${e.repository}\n`);
    else if (e.type === 'layer') {
      if (lastStatus.get(e.id) === e.status) return;
      lastStatus.set(e.id, e.status);
      const size = e.status === 'Downloading' && e.total !== undefined ? ` ${humanSize(e.total)}` : '';
      process.stdout.write(`${e.id}: ${e.status}${size}\n`);
    } else if (e.type === 'done') {
      process.stdout.write(`Digest: ${e.digest}\n`);
      process.stdout.write(`Status: ${e.upToDate ? 'Image is up to date for' : 'Downloaded newer image for'} ${e.reference}\n`);
    }
  };
}

/** One line per layer, redrawn in place: a bar, bytes, rate and ETA while downloading. */
function ttyPrinter(): (e: PullEvent) => void {
  const plain = plainPrinter();
  const order: string[] = [];
  const text = new Map<string, string>();
  const started = new Map<string, number>();
  let drawn = 0;
  let timer: NodeJS.Timeout | undefined;
  const render = (): void => {
    timer = undefined;
    let out = drawn > 0 ? `\x1b[${drawn}A` : '';
    for (const id of order) out += `\x1b[2K${id}: ${text.get(id)}\n`;
    drawn = order.length;
    process.stdout.write(out);
  };
  const bar = (id: string, done: number, total: number): string => {
    const width = 40;
    const filled = total > 0 ? Math.min(width, Math.floor((done / total) * width)) : 0;
    const secs = Math.max(0.001, (Date.now() - (started.get(id) ?? Date.now())) / 1000);
    const rate = done / secs;
    const eta = rate > 0 ? Math.ceil((total - done) / rate) : 0;
    const head = filled === 0 ? '' : filled >= width ? '='.repeat(width) : `${'='.repeat(filled - 1)}>`;
    return `Downloading [${head.padEnd(width)}] ${humanSize(done)}/${humanSize(total)} ${humanSize(rate)}/s ETA ${eta}s`;
  };
  const cancel = (): void => {
    if (timer) clearTimeout(timer);
    timer = undefined;
  };
  return (e) => {
    if (e.type !== 'layer') {
      cancel();
      if (e.type === 'done') render();
      plain(e);
      if (e.type === 'done') drawn = 0;
      return;
    }
    if (!text.has(e.id)) order.push(e.id);
    if (e.status === 'Downloading') {
      if (!started.has(e.id)) started.set(e.id, Date.now());
      text.set(e.id, bar(e.id, e.current ?? 0, e.total ?? 0));
      timer ??= setTimeout(render, 100);
    } else {
      text.set(e.id, e.status);
      cancel();
      render();
    }
  };
}

function printer(quiet: boolean): (e: PullEvent) => void {
  const print = process.stdout.isTTY ? ttyPrinter() : plainPrinter();
  return (e) => {
    if (e.type === 'waiting') process.stderr.write(`Waiting for the store lock (held by process ${e.pid ?? '?'})…\n`);
    else if (!quiet) print(e);
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
