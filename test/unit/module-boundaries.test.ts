/**
 * The module graph of src/, read from the source with the TypeScript compiler's import
 * scanner, held to two rules (issue 17):
 *
 * 1. Direction. Every folder of src/ has a rank; a module imports only modules of lower
 *    rank (cli at the top, core at the bottom), so that the overlay vocabulary, the store
 *    and the union can each be read, tested and changed without what sits above them.
 * 2. Front doors. A module with an `index.ts` is imported only through it; a module
 *    without one must be listed below with the reason, so the list can only shrink.
 *
 * A new folder fails the test until it is given a rank here: that is where its place in
 * the layering gets decided, once, on purpose.
 */
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const SRC = resolve(import.meta.dirname, '../../src');

/** Lower imports nothing of higher; equal ranks import each other only if listed in SAME_RANK. */
const RANK: Record<string, number> = {
  core: 0, // errors, digests, the PathFilesystem contract, safe join: no module below it
  sys: 1, // the native syscall addon, the mount table, the fuse-native binding
  'engine/formats': 1, // binary layouts shared by TypeScript and C (generated into C headers)
  overlay: 2, // the overlayfs on-disk vocabulary
  image: 2, // references, manifests, archives, tar
  userns: 2, // id maps, subordinate ids, spawning in a user namespace
  store: 3, // blobs, imagedb, layerdb, layer caches, tags, lock
  union: 4, // the union filesystem over overlay-format layers
  inspect: 5, // reading images and containers (layers, diff, explain, events)
  registry: 5, // the distribution client
  fuse: 5, // the mount process and the fuse-native adapter
  engine: 5, // layerfs's own FUSE engine
  supervisor: 6, // containers: records, mounting, recovery
  snapshotter: 6, // the containerd snapshotter
  commit: 6, // a container's writable layer becomes an image
  ui: 6, // the layers explorer and the web page
  sandbox: 7, // running containers (OCI runtime)
  build: 8, // Dockerfile builds
  cli: 9, // argv, verbs, tables; imported by nothing
};

/**
 * Same-rank imports that are intended. engine/ is the own engine behind fuse/'s mount
 * process (fuse/union-mount-main starts it) and reuses fuse/'s errno table, mount options
 * and server contract: the two are one layer in two folders.
 */
const SAME_RANK = new Set(['engine->fuse', 'fuse->engine']);

/**
 * Modules without a front door, and why. core/, sys/ and engine/formats are leaf
 * libraries whose files are each a contract of their own (errors, digests, the
 * filesystem contract; one syscall family per file; one binary layout per file).
 */
const NO_FRONT_DOOR: Record<string, string> = {
  core: 'leaf library: each file is its own contract',
  sys: 'leaf library: each file wraps one kind of system interface',
  'engine/formats': 'one binary layout per file, each generated into a C header',
  cli: 'imported by nothing: its entry points are package.json bin (cli/main.ts, cli/layerfs-overlay.sh → cli/overlay-main.ts)',
};

/**
 * Files allowed to reach into another module's files, each with its reason (a measured
 * one: loading a whole front door costs start-up time). Only deep imports are tolerated
 * here; the direction rule holds for them too, and an entry that no longer imports deeply fails.
 */
const DEEP_IMPORTS_PENDING = new Set([
  // Runs for every verb: imports store-paths alone so start-up loads no more of store/ (buildspeed's lazy verbs).
  'cli/store-use.ts',
  // layerfs-overlay's mount process (podman runs one per container) serves in itself:
  // fuse/union-mount-serve.ts loads the union, the engine and the store, which fuse/'s front
  // door must not load for every `layerfs` verb that only needs the mount process's name.
  'cli/overlay-main.ts',
]);

interface Edge {
  from: string; // file, relative to src/
  to: string; // file, relative to src/
}

function moduleOf(file: string): string {
  if (file.startsWith('engine/formats/')) return 'engine/formats';
  return file.split('/')[0]!;
}

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    // native/ holds C sources and build output; proto/ the snapshotter's .proto files.
    if (e.isDirectory()) {
      if (e.name !== 'native' && e.name !== 'proto') out.push(...sourceFiles(p));
    } else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

/** Every relative import and re-export of src/, resolved to the .ts file it names. */
function importGraph(): Edge[] {
  const edges: Edge[] = [];
  for (const file of sourceFiles(SRC)) {
    const info = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
    for (const ref of info.importedFiles) {
      if (!ref.fileName.startsWith('.')) continue;
      const target = resolve(dirname(file), ref.fileName).replace(/\.js$/, '.ts');
      edges.push({ from: relative(SRC, file), to: relative(SRC, target) });
    }
  }
  return edges;
}

const edges = importGraph();
const crossing = edges.filter((e) => moduleOf(e.from) !== moduleOf(e.to));
const modules = new Set(sourceFiles(SRC).map((f) => moduleOf(relative(SRC, f))));

describe('module boundaries of src/', () => {
  it('reads a real graph (the scanner found the imports)', () => {
    expect(edges.length).toBeGreaterThan(500);
    expect(crossing.length).toBeGreaterThan(100);
    for (const e of edges) expect(existsSync(join(SRC, e.to)), `${e.from} imports ${e.to}, which does not exist`).toBe(true);
  });

  it('gives every module a rank', () => {
    expect([...modules].filter((m) => RANK[m] === undefined)).toEqual([]);
  });

  it('imports only downwards', () => {
    const upward = crossing
      .filter((e) => {
        const [a, b] = [moduleOf(e.from), moduleOf(e.to)];
        return RANK[b]! > RANK[a]! || (RANK[b] === RANK[a] && !SAME_RANK.has(`${a}->${b}`));
      })
      .map((e) => `${e.from} -> ${e.to}`);
    expect(upward).toEqual([]);
  });

  it('enters a module only through its front door', () => {
    const deep = crossing
      .filter((e) => {
        const m = moduleOf(e.to);
        if (DEEP_IMPORTS_PENDING.has(e.from)) return false;
        return NO_FRONT_DOOR[m] === undefined && e.to !== `${m}/index.ts`;
      })
      .map((e) => `${e.from} -> ${e.to}`);
    expect(deep).toEqual([]);
  });

  it('lists as pending only files that still import deeply (a converted file leaves the list)', () => {
    const deepFrom = new Set(
      crossing.filter((e) => NO_FRONT_DOOR[moduleOf(e.to)] === undefined && e.to !== `${moduleOf(e.to)}/index.ts`).map((e) => e.from),
    );
    expect([...DEEP_IMPORTS_PENDING].filter((f) => !deepFrom.has(f))).toEqual([]);
  });

  it('gives every module a front door unless it says why not', () => {
    const missing = [...modules].filter((m) => !existsSync(join(SRC, m, 'index.ts')) && NO_FRONT_DOOR[m] === undefined);
    expect(missing).toEqual([]);
  });
});
