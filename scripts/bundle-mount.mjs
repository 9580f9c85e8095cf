#!/usr/bin/env node
// Part of `npm run build`, after tsc: bundles each mount-process entry (the supervisor's
// dist/fuse/union-mount-main.js, layerfs-overlay's dist/cli/overlay-main.js) with esbuild
// into one CommonJS file beside it, `<entry>.bundle.cjs`, which the launchers start when it
// is there.
//
// Why: a mount process is a fresh node for every container, and its time to ready is what
// `podman run` and `layerfs run` wait for. Loaded as ~100 ES modules, node spends more time
// resolving, reading and linking them than the mount itself takes (native-notes/performance.md,
// "Mount-to-ready"). One module removes that; the code is the same.
//
// Why CommonJS: a node whose main module is CommonJS never starts its ES module loader
// (~20 ms CPU here, native-notes/performance.md, "Mount-to-ready: a startup snapshot").
// The modules' ES semantics are kept where they differ: the file is strict, `import.meta.url`
// and `import.meta.dirname` are the bundle's own (it sits beside its entry), and a lazy
// `import()` stays a real dynamic import, which node gives a CommonJS file too.
//
// What stays out of the bundle, and why:
// - npm packages (`packages: 'external'`): loaded by node as usual, by the same resolution
//   as the unbundled build (fuse-native's addon, tar-stream), none of them at start-up.
// - dynamic `import()`s of project modules, but for the serving code the entry always needs:
//   they exist to keep a module off the start-up path (store/'s front door, ~60 ms, loaded
//   only to write a damage record), and bundled they would be parsed, and their packages
//   loaded, at start-up. They are rewritten relative to the bundle, which sits in the same
//   dist/ folder as its entry, so they load the unbundled dist/ module as before.
// The bundle sits beside its entry so that `import.meta.url`-relative lookups (the addons,
// package.json, helper scripts) find the same files: every entry is one level below dist/.
import { build } from 'esbuild';
import { rmSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
/** Entry (dist-relative) → dynamic imports that are part of serving and so bundled. */
const ENTRIES = {
  'fuse/union-mount-main.js': [],
  'cli/overlay-main.js': ['fuse/union-mount-serve.js'],
};

/** Keeps a project module's dynamic import lazy: external, its path relative to the bundle. */
function lazyImports(outfile, bundled) {
  return {
    name: 'layerfs-lazy-imports',
    setup(b) {
      b.onResolve({ filter: /^\.\.?\// }, (args) => {
        if (args.kind !== 'dynamic-import') return undefined;
        const target = resolve(args.resolveDir, args.path);
        if (bundled.some((m) => target === join(root, 'dist', m))) return undefined;
        let path = relative(dirname(outfile), target);
        if (!path.startsWith('.')) path = `./${path}`;
        return { path, external: true };
      });
    },
  };
}

for (const [entry, bundled] of Object.entries(ENTRIES)) {
  const entryFile = join(root, 'dist', entry);
  const outfile = entryFile.replace(/\.js$/, '.bundle.cjs');
  rmSync(entryFile.replace(/\.js$/, '.bundle.js'), { force: true }); // the ES module bundle of builds before
  await build({
    entryPoints: [entryFile],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    packages: 'external',
    // `import.meta` has no CommonJS meaning: the bundle's own file, as its ES module had.
    define: { 'import.meta.url': '__bundleUrl', 'import.meta.dirname': '__dirname' },
    logOverride: { 'empty-import-meta': 'error' }, // any other `import.meta` use would be undefined
    banner: { js: `"use strict";\nconst __bundleUrl = require("node:url").pathToFileURL(__filename).href;` },
    // Not minified: the mount log's stack traces keep the functions' names, and the
    // `// src/…` markers esbuild writes say which module a bundle line came from.
    logLevel: 'warning',
    plugins: [lazyImports(outfile, bundled)],
  });
}
