/** `layerfs images [REPOSITORY[:TAG]]`: list stored images with Docker's columns. */
import type { Command } from 'commander';
import { shortId } from '../../core/digest.js';
import { isIntermediate } from '../../store/build-marks.js';
import { familiarName, parseReference } from '../../image/reference.js';
import { damageHint, humanSize, openStore, printJson, table, timeAgo } from './format.js';

interface ImagesFlags {
  all?: boolean;
  quiet?: boolean;
  json?: boolean;
  trunc?: boolean;
}

/** Registers `images` on the program. */
export function register(program: Command): void {
  program
    .command('images')
    .description('List images (REPOSITORY TAG IMAGE ID CREATED SIZE)')
    .argument('[reference]', 'only images of this repository (and tag)')
    .option('-a, --all', "also the intermediate images of builds (the build cache's)")
    .option('-q, --quiet', 'only image ids')
    .option('--no-trunc', 'full image ids')
    .option('--json', 'JSON output')
    .action(async (reference: string | undefined, flags: ImagesFlags, cmd: Command) => {
      const store = await openStore(cmd);
      const filter = reference ? parseReference(reference, null) : undefined;
      const rows: { repo: string; tag: string; id: string; created: string | undefined; size: number }[] = [];
      for (const id of await store.images.list()) {
        // One damaged image must not hide the others: it is named on stderr with the fix.
        const s = await store.summary(id).catch((err: unknown) => {
          const msg = (err as Error).message;
          process.stderr.write(`layerfs: ${msg.includes(shortId(id)) ? '' : `image ${shortId(id)}: `}${msg}\n${damageHint(err)}`);
          process.exitCode = 1;
          return undefined;
        });
        if (!s) continue;
        if (!flags.all && s.tags.length === 0 && (await isIntermediate(store.images, id))) continue;
        const tags = s.tags.length ? s.tags : ['<none>:<none>'];
        for (const t of tags) {
          const i = t.lastIndexOf(':');
          const repo = t.slice(0, i);
          const tag = t.slice(i + 1);
          if (filter && (repo !== familiarName(filter) || (filter.tag !== undefined && tag !== filter.tag))) continue;
          rows.push({ repo, tag, id, created: s.created, size: s.size });
        }
      }
      rows.sort((a, b) => (b.created ?? '').localeCompare(a.created ?? '') || a.repo.localeCompare(b.repo) || a.tag.localeCompare(b.tag));
      if (flags.json) {
        printJson(rows.map((r) => ({ Repository: r.repo, Tag: r.tag, ID: r.id, CreatedAt: r.created ?? null, Size: r.size })));
      } else if (flags.quiet) {
        const ids = [...new Set(rows.map((r) => (flags.trunc === false ? r.id : shortId(r.id))))];
        process.stdout.write(ids.map((i) => i + '\n').join(''));
      } else {
        const full = flags.trunc === false;
        process.stdout.write(table(['REPOSITORY', 'TAG', 'IMAGE ID', 'CREATED', 'SIZE'], rows.map((r) => [r.repo, r.tag, full ? r.id : shortId(r.id), timeAgo(r.created), humanSize(r.size)])));
      }
    });
}
