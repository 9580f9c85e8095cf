/**
 * `layerfs inspect [--type container|image] [--format T] NAME…`: like `docker inspect`,
 * containers and images, plus where the store keeps each part. Without --type a name is
 * a container's when a container has it, else an image's (docker's order).
 */
import type { Command } from 'commander';
import { layerShortId } from '../../core/digest.js';
import { LayerfsError } from '../../core/errors.js';
import type { Store } from '../../store/index.js';
import { Supervisor } from '../../supervisor/index.js';
import { inspectContainer } from '../container-inspect.js';
import { openStore, printFormatted, printJson } from './format.js';

interface InspectFlags {
  type?: string;
  format?: string;
}

/** Registers `inspect` on the program. */
export function register(program: Command): void {
  program
    .command('inspect')
    .description('Show container or image details as JSON (like docker inspect), with store paths')
    .argument('<name...>', 'container or image names or ids')
    .option('--type <container|image>', 'only look for this kind of object')
    .option('-f, --format <template>', 'Go template per object ({{.Id}}, {{.State.Status}}, {{json .Config}} …)')
    .option('--json', 'JSON output (the default; accepted for symmetry)')
    .action(async (refs: string[], flags: InspectFlags, cmd: Command) => {
      if (flags.type !== undefined && flags.type !== 'container' && flags.type !== 'image') {
        throw new LayerfsError('INVALID_ARGUMENT', `invalid --type ${JSON.stringify(flags.type)}: expected container or image`);
      }
      const store = await openStore(cmd);
      const out: object[] = [];
      for (const ref of refs) {
        const sup = new Supervisor(store);
        const container = flags.type === 'image' ? undefined : await sup.find(ref);
        if (container) {
          out.push(await inspectContainer(store, sup.handle(container)));
          continue;
        }
        if (flags.type === 'container') throw new LayerfsError('NOT_FOUND', `no such container: ${ref}`);
        out.push(await inspectImage(store, ref));
      }
      if (flags.format) printFormatted(flags.format, out, {});
      else printJson(out);
    });
}

/** The inspect object of one image. */
async function inspectImage(store: Store, ref: string): Promise<object> {
  const id = await store.resolveImage(ref).catch((err: unknown) => {
    throw err instanceof LayerfsError && err.code === 'NOT_FOUND' ? new LayerfsError('NOT_FOUND', `no such object: ${ref}`, { hint: '`layerfs ps -a` lists containers, `layerfs images` images' }) : err;
  });
  const s = await store.summary(id);
  const repos = s.tags.map((t) => t.slice(0, t.lastIndexOf(':')));
  const dirs = s.layers.map((l) => store.paths.diff(l.cacheId));
  return {
    Id: s.id,
    RepoTags: s.tags,
    RepoDigests: s.manifestDigest ? [...new Set(repos)].map((r) => `${r}@${s.manifestDigest}`) : [],
    Created: s.created ?? null,
    Author: s.config.author ?? '',
    Architecture: s.config.architecture,
    ...(s.config.variant ? { Variant: s.config.variant } : {}),
    Os: s.config.os,
    Size: s.size,
    Config: s.config.config ?? {},
    RootFS: { Type: 'layers', Layers: s.config.rootfs.diff_ids },
    GraphDriver: { Name: 'overlay', Data: { LowerDir: [...dirs].reverse().join(':') } },
    Store: {
      Root: store.paths.root,
      Config: store.paths.imageConfig(s.id),
      Manifest: s.manifestDigest ? { Digest: s.manifestDigest, Path: store.paths.blob(s.manifestDigest) } : null,
      Layers: s.layers.map((l) => ({
        ID: layerShortId(l.diffId),
        ChainID: l.chainId,
        DiffID: l.diffId,
        CacheID: l.cacheId,
        Parent: l.parent ?? null,
        Size: l.size,
        LayerDB: store.paths.layer(l.chainId),
        Diff: store.paths.diff(l.cacheId),
        Blobs: l.blobs,
      })),
    },
  };
}
