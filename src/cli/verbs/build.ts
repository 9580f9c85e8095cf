/**
 * `layerfs build -t NAME[:TAG] [-f FILE] [--build-arg K=V]… [--target STAGE] [--no-cache]
 * [--progress plain|tty] [--label K=V]… [--network none|host] [--pull[=missing|always|never]]
 * [--allow-network] [--insecure] [--tls-ca FILE] CONTEXT`: a Dockerfile becomes
 * an image (src/build). Progress goes to stderr, the image id to stdout; CONTEXT `-` reads
 * the Dockerfile from stdin and has no files.
 */
import type { Command } from 'commander';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { BuildContext, Builder, parseBuildArgs, parsePullPolicy, plainProgress, ttyProgress } from '../../build/index.js';
import { LayerfsError } from '../../core/errors.js';
import { openStore, printJson } from './format.js';
import { clientOptions, connectionOptions } from './registry-options.js';

interface BuildFlags {
  tag: string[];
  file?: string;
  buildArg: string[];
  target?: string;
  cache: boolean;
  progress: string;
  label: string[];
  network?: string;
  pull?: string | boolean;
  allowNetwork?: boolean;
  insecure?: boolean;
  tlsCa?: string;
  timeout?: string;
  json?: boolean;
}

const collect = (v: string, prev: string[]): string[] => [...prev, v];

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

async function dockerfileText(context: string, file: string | undefined): Promise<{ text: string; name: string }> {
  if (context === '-' || file === '-') return { text: await readStdin(), name: 'Dockerfile' };
  const path = file !== undefined ? resolve(file) : join(context, 'Dockerfile');
  try {
    return { text: await readFile(path, 'utf8'), name: file ?? 'Dockerfile' };
  } catch (err) {
    throw new LayerfsError('NOT_FOUND', `cannot read the Dockerfile ${path}: ${(err as Error).message}`, { cause: err, hint: 'give its path with -f' });
  }
}

/**
 * `--network`, checked by the sandbox's parser, which is imported only when the flag is
 * given: a cached build runs nothing and should not load the sandbox to learn 'none'.
 */
async function networkOf(value: string | undefined): Promise<'none' | 'host'> {
  return value === undefined ? 'none' : (await import('../../sandbox/index.js')).parseNetwork(value);
}

function labelsOf(list: string[]): Map<string, string> {
  const m = new Map<string, string>();
  for (const l of list) {
    const eq = l.indexOf('=');
    if (eq <= 0) throw new LayerfsError('INVALID_ARGUMENT', `invalid --label ${JSON.stringify(l)}: expected KEY=VALUE`);
    m.set(l.slice(0, eq), l.slice(eq + 1));
  }
  return m;
}

/** Registers `build` on the program. */
export function register(program: Command): void {
  connectionOptions(program
    .command('build')
    .description('Build an image from a Dockerfile, one layer per RUN/COPY/ADD, with a per-instruction cache that explains its misses')
    .argument('<context>', 'build context folder, or - for a Dockerfile on stdin and no context')
    .option('-t, --tag <name:tag>', 'name the image (repeatable)', collect, [])
    .option('-f, --file <path>', 'the Dockerfile (default: CONTEXT/Dockerfile)')
    .option('--build-arg <KEY=VALUE>', 'set a build arg (repeatable)', collect, [])
    .option('--target <stage>', 'build up to this stage (stages it does not need are skipped)')
    .option('--no-cache', 'run every step (the results are still recorded)')
    .option('--progress <mode>', 'plain (one line per event), tty (steps redrawn in place) or auto (tty on a terminal)', 'auto')
    .option('--label <KEY=VALUE>', 'add a label to the image (repeatable)', collect, [])
    .option('--network <mode>', 'network of RUN steps: none (default) or host')
    .option('--pull [policy]', 'pull FROM images: missing (default), always (a bare --pull), never')
    .option('--allow-network', 'let ADD fetch http(s) sources (verified with ADD --checksum when given)')
    .option('--json', 'print the result (image id and steps) as JSON on stdout'))
    .action(async (context: string, flags: BuildFlags, cmd: Command) => {
      if (!['plain', 'tty', 'auto'].includes(flags.progress)) throw new LayerfsError('INVALID_ARGUMENT', `unsupported --progress ${JSON.stringify(flags.progress)}: use plain or tty`);
      const store = await openStore(cmd);
      const dockerfile = await dockerfileText(context, flags.file);
      const controller = new AbortController();
      const onInt = (): void => {
        process.stderr.write('layerfs: interrupted; cleaning up the current step\n');
        controller.abort();
      };
      process.on('SIGINT', onInt);
      process.on('SIGTERM', onInt);
      try {
        const builder = new Builder(store, {
          dockerfile,
          context: await BuildContext.open(context === '-' ? undefined : context),
          tags: flags.tag,
          buildArgs: parseBuildArgs(flags.buildArg),
          ...(flags.target !== undefined ? { target: flags.target } : {}),
          noCache: !flags.cache,
          labels: labelsOf(flags.label),
          network: await networkOf(flags.network),
          pull: { policy: parsePullPolicy(flags.pull), client: await clientOptions(flags) },
          allowNetwork: flags.allowNetwork === true,
          progress: (flags.progress === 'tty' || (flags.progress === 'auto' && process.stderr.isTTY) ? ttyProgress : plainProgress)((s) => process.stderr.write(s)),
          signal: controller.signal,
        });
        const result = await builder.build();
        if (flags.json) {
          printJson({ Id: result.id, Steps: result.steps });
          return;
        }
        process.stdout.write(`${result.id}\n`);
      } finally {
        process.off('SIGINT', onInt);
        process.off('SIGTERM', onInt);
      }
    });
}
