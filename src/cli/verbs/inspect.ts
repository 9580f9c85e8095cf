/** `layerfs inspect IMAGE…`: like `docker image inspect`, plus where the store keeps each part. */
import type { Command } from 'commander';
import { openStore, printJson } from './format.js';

/** Registers `inspect` on the program. */
export function register(program: Command): void {
  program
    .command('inspect')
    .description('Show image details as JSON (like docker image inspect), with store paths')
    .argument('<image...>', 'image names or ids')
    .option('--json', 'JSON output (the default; accepted for symmetry)')
    .action(async (refs: string[], _flags: unknown, cmd: Command) => {
      const store = await openStore(cmd);
      const out: unknown[] = [];
      for (const ref of refs) {
        const id = await store.resolveImage(ref);
        const s = await store.summary(id);
        const repos = s.tags.map((t) => t.slice(0, t.lastIndexOf(':')));
        const dirs = s.layers.map((l) => store.paths.diff(l.cacheId));
        out.push({
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
        });
      }
      printJson(out);
    });
}
