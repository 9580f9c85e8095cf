/**
 * `layerfs events MOUNT|NAME [--json] [--count N]`: a live stream of a container's
 * copy-on-write events (copy-up, create, whiteout, opaque, rename, remove), one line
 * each: time, event, path, source layer → writable layer, bytes. Runs until interrupted
 * (or N events). A line "watching …" on stderr says the watch is in place.
 */
import type { Command } from 'commander';
import { LayerfsError } from '../../core/errors.js';
import { layerShortId } from '../../core/digest.js';
import { Supervisor } from '../../supervisor/index.js';
import { type CowEvent, loadImageStack, UpperWatcher } from '../../inspect/index.js';
import { humanSize, openStore } from './format.js';

const show = (p: string): string => Buffer.from(p, 'latin1').toString('utf8');

function line(e: CowEvent): string {
  const src = e.layer ? `layer ${e.layer.position} (${layerShortId(e.layer.diffId)})` : 'image';
  const flow =
    e.event === 'copy-up' ? `${src} → writable layer` :
    e.event === 'whiteout' ? `hides it in ${src}` :
    e.event === 'opaque' ? 'hides everything below it in the image' :
    e.event === 'rename' ? `from ${show(e.from ?? '?')}` :
    e.event === 'create' ? 'new in the writable layer' : 'gone from the writable layer';
  const bytes = e.bytes !== undefined && e.event === 'copy-up' ? `  ${humanSize(e.bytes)} copied` : '';
  return `${e.time}  ${e.event.padEnd(8)}  ${show(e.path)}  ${flow}${bytes}`;
}

/** Registers `events` on the program. */
export function register(program: Command): void {
  program
    .command('events')
    .description("Stream a container's copy-on-write events live: copy-ups, whiteouts, opaque dirs, renames")
    .argument('<container>', 'mount point, container name or id')
    .option('--json', 'one JSON object per line')
    .option('--count <n>', 'exit after this many events')
    .action(async (ref: string, flags: { json?: boolean; count?: string }, cmd: Command) => {
      const store = await openStore(cmd);
      const sup = new Supervisor(store);
      // find() takes names, ids and mount points alike; the message names what was typed.
      const record = await sup.find(ref);
      if (!record) throw new LayerfsError('NOT_FOUND', `no such container: ${ref}`, { hint: '`layerfs ps -a` lists containers' });
      const stack = await loadImageStack(store, record.image);
      const watcher = new UpperWatcher(sup.handle(record).paths.upper, stack);
      let left = flags.count === undefined ? Number.POSITIVE_INFINITY : Number(flags.count);
      await new Promise<void>((resolve, reject) => {
        const stop = (): void => {
          watcher.close();
          resolve();
        };
        watcher.on('error', (err: unknown) => {
          watcher.close();
          reject(err as Error);
        });
        watcher.on('warning', (msg: string) => process.stderr.write(`layerfs: ${msg}\n`));
        watcher.on('end', () => {
          process.stderr.write(`container ${record.name} was removed\n`);
          stop();
        });
        watcher.on('event', (e: CowEvent) => {
          if (left <= 0) return;
          if (flags.json) {
            const out: Record<string, unknown> = { time: e.time, event: e.event, path: show(e.path) };
            if (e.from !== undefined) out.from = show(e.from);
            if (e.layer) out.layer = { position: e.layer.position, chainId: e.layer.chainId, createdBy: e.layer.createdBy };
            if (e.bytes !== undefined) out.bytes = e.bytes;
            process.stdout.write(JSON.stringify(out) + '\n');
          } else {
            process.stdout.write(line(e) + '\n');
          }
          if (--left <= 0) stop();
        });
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
        watcher.start().then(
          () => process.stderr.write(`watching container ${record.name} (${record.state}); Ctrl-C to stop\n`),
          (err: unknown) => reject(err as Error),
        );
      });
    });
}
