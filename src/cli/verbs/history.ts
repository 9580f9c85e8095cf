/** `layerfs history IMAGE`: the image's history, newest first, empty layers included. */
import type { Command } from 'commander';
import { shortId } from '../../core/digest.js';
import { humanSize, openStore, printJson, table, timeAgo } from './format.js';

interface HistoryFlags {
  json?: boolean;
  trunc?: boolean;
  human?: boolean;
}

/** Registers `history` on the program. */
export function register(program: Command): void {
  program
    .command('history')
    .description('Show the history of an image (IMAGE CREATED CREATED BY SIZE COMMENT)')
    .argument('<image>', 'image name or id')
    .option('--no-trunc', "don't truncate output")
    .option('--json', 'JSON output')
    .action(async (ref: string, flags: HistoryFlags, cmd: Command) => {
      const store = await openStore(cmd);
      const id = await store.resolveImage(ref);
      const s = await store.summary(id);
      const history = s.config.history?.length
        ? s.config.history
        : s.layers.map(() => ({ created: s.created, created_by: '', comment: '' }) as { created?: string; created_by?: string; comment?: string; empty_layer?: boolean });
      // Walk history bottom-up, pairing each non-empty entry with the next layer.
      let li = 0;
      const rows = history.map((h) => {
        const layer = h.empty_layer ? undefined : s.layers[li++];
        return { created: h.created, createdBy: h.created_by ?? '', size: layer?.size ?? 0, comment: h.comment ?? '', layer: layer?.chainId };
      });
      rows.reverse();
      const out = rows.map((r, i) => ({ ...r, image: i === 0 ? id : '<missing>' }));
      if (flags.json) {
        printJson(out.map((r) => ({ ID: r.image, CreatedAt: r.created ?? null, CreatedBy: r.createdBy, Size: r.size, Comment: r.comment })));
        return;
      }
      const full = flags.trunc === false;
      const by = (c: string): string => (full || c.length <= 45 ? c : c.slice(0, 44) + '…');
      process.stdout.write(
        table(['IMAGE', 'CREATED', 'CREATED BY', 'SIZE', 'COMMENT'], out.map((r) => [r.image === '<missing>' || full ? r.image : shortId(r.image), timeAgo(r.created), by(r.createdBy.replace(/\s+/g, ' ')), humanSize(r.size), r.comment])),
      );
    });
}
