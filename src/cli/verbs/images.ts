/** `layerfs images [REPOSITORY[:TAG]] [-a] [-q] [--filter K=V]… [--format T]`: stored images with Docker's columns. */
import type { Command } from 'commander';
import { shortId, type Digest } from '../../core/digest.js';
import { LayerfsError } from '../../core/errors.js';
import { isIntermediate } from '../../store/index.js';
import { familiarName, parseReference } from '../../image/index.js';
import { damageHint, humanSize, openStore, printFormatted, printJson, table, timeAgo } from './format.js';

interface ImagesFlags {
  all?: boolean;
  quiet?: boolean;
  json?: boolean;
  trunc?: boolean;
  filter: string[];
  format?: string;
}

interface ImageRow {
  repo: string;
  tag: string;
  id: Digest;
  created: string | undefined;
  size: number;
  digest: string | undefined;
}

const HEADERS = { ID: 'IMAGE ID', Repository: 'REPOSITORY', Tag: 'TAG', Digest: 'DIGEST', CreatedSince: 'CREATED', CreatedAt: 'CREATED AT', Size: 'SIZE' };

/** A docker `reference=` pattern (`*` within a path component, as filepath.Match) as a RegExp. */
function globRegExp(glob: string): RegExp {
  return new RegExp(`^${glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]')}$`);
}

/** docker images --filter: dangling, reference, before, since (values of one key OR-ed, keys AND-ed). */
async function imageFilter(filters: string[], resolve: (ref: string) => Promise<{ id: Digest; created: string | undefined }>): Promise<(r: ImageRow) => boolean> {
  const tests = new Map<string, Array<(r: ImageRow) => boolean>>();
  for (const f of filters) {
    const eq = f.indexOf('=');
    const key = eq > 0 ? f.slice(0, eq) : '';
    const v = f.slice(eq + 1);
    let test: (r: ImageRow) => boolean;
    if (key === 'dangling') {
      if (v !== 'true' && v !== 'false') throw new LayerfsError('INVALID_ARGUMENT', `invalid --filter dangling=${v}: expected true or false`);
      test = (r) => (r.repo === '<none>') === (v === 'true');
    } else if (key === 'reference') {
      const re = globRegExp(v);
      test = (r) => re.test(r.repo) || re.test(`${r.repo}:${r.tag}`);
    } else if (key === 'before' || key === 'since') {
      const pivot = await resolve(v);
      const at = pivot.created ?? '';
      test = (r) => r.id !== pivot.id && (key === 'before' ? (r.created ?? '') < at : (r.created ?? '') > at);
    } else {
      throw new LayerfsError('INVALID_ARGUMENT', `invalid --filter ${JSON.stringify(f)}: the filters are dangling=true|false, reference=PATTERN, before=IMAGE and since=IMAGE`);
    }
    tests.set(key, [...(tests.get(key) ?? []), test]);
  }
  return (r) => [...tests.values()].every((alternatives) => alternatives.some((t) => t(r)));
}

/** Registers `images` on the program. */
export function register(program: Command): void {
  program
    .command('images')
    .description('List images (REPOSITORY TAG IMAGE ID CREATED SIZE)')
    .argument('[reference]', 'only images of this repository (and tag)')
    .option('-a, --all', "also the intermediate images of builds (the build cache's)")
    .option('-q, --quiet', 'only image ids')
    .option('-f, --filter <key=value>', 'filter: dangling=true|false, reference=PATTERN, before=IMAGE, since=IMAGE (repeatable)', (v: string, all: string[]) => [...all, v], [] as string[])
    .option('--format <template>', "Go template per image ({{.Repository}} {{.Tag}} {{.ID}} {{.Size}} …), 'table TEMPLATE' or 'json'")
    .option('--no-trunc', 'full image ids')
    .option('--json', 'JSON output')
    .action(async (reference: string | undefined, flags: ImagesFlags, cmd: Command) => {
      const store = await openStore(cmd);
      const filter = reference ? parseReference(reference, null) : undefined;
      const keep = await imageFilter(flags.filter, async (ref) => {
        const id = await store.resolveImage(ref);
        return { id, created: (await store.summary(id)).created };
      });
      const rows: ImageRow[] = [];
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
          const row: ImageRow = { repo, tag, id, created: s.created, size: s.size, digest: s.manifestDigest };
          if (keep(row)) rows.push(row);
        }
      }
      rows.sort((a, b) => (b.created ?? '').localeCompare(a.created ?? '') || a.repo.localeCompare(b.repo) || a.tag.localeCompare(b.tag));
      const full = flags.trunc === false;
      const idOf = (r: ImageRow): string => (full ? r.id : shortId(r.id));
      if (flags.json) {
        printJson(rows.map((r) => ({ Repository: r.repo, Tag: r.tag, ID: r.id, CreatedAt: r.created ?? null, Size: r.size })));
      } else if (flags.quiet) {
        process.stdout.write([...new Set(rows.map(idOf))].map((i) => i + '\n').join(''));
      } else if (flags.format) {
        printFormatted(
          flags.format,
          rows.map((r) => ({ ID: idOf(r), Repository: r.repo, Tag: r.tag, Digest: r.digest ?? '<none>', CreatedSince: timeAgo(r.created), CreatedAt: r.created ?? '', Size: humanSize(r.size) })),
          HEADERS,
        );
      } else {
        process.stdout.write(table(['REPOSITORY', 'TAG', 'IMAGE ID', 'CREATED', 'SIZE'], rows.map((r) => [r.repo, r.tag, idOf(r), timeAgo(r.created), humanSize(r.size)])));
      }
    });
}
