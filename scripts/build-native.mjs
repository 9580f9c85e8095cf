#!/usr/bin/env node
// Builds the native parts from source (npm postinstall): fuse-native with layerfs's patch
// (patch-package has applied patches/fuse-native+2.2.6.patch just before), and layerfs's
// own syscall addon in src/sys/native. The shipped fuse-native prebuilds are deleted so
// that only the patched build can load. Rebuilds only when sources changed (a stamp).
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateFormats } from './generate-formats.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const FUSE_NATIVE_VERSION = '2.2.6';

function fail(message) {
  console.error(`layerfs build-native: ${message}`);
  process.exit(1);
}

/** npm's own node-gyp (npm sets npm_config_node_gyp in lifecycle scripts). */
export function findNodeGyp() {
  const candidates = [
    process.env.npm_config_node_gyp,
    join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
    '/usr/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js',
    '/usr/local/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js',
  ];
  const found = candidates.find((c) => c && existsSync(c));
  if (!found) fail('node-gyp not found (it ships with npm); reinstall npm');
  return found;
}

/** Node's headers on this machine, so node-gyp never downloads them. */
export function nodeGypArgs() {
  const nodedir = process.env.npm_config_nodedir
    || [dirname(dirname(process.execPath)), '/usr', '/usr/local'].find((d) => existsSync(join(d, 'include', 'node', 'node_api.h')));
  return nodedir ? [`--nodedir=${nodedir}`] : [];
}

function hashFiles(files) {
  const h = createHash('sha256');
  for (const f of files) h.update(existsSync(f) ? readFileSync(f) : Buffer.alloc(0));
  return h.digest('hex');
}

function buildIfChanged(name, dir, sources, output) {
  const stampFile = join(dir, 'build', '.layerfs-stamp');
  const stamp = hashFiles(sources.map((s) => join(dir, s)));
  if (existsSync(output) && existsSync(stampFile) && readFileSync(stampFile, 'utf8') === stamp) {
    console.log(`layerfs build-native: ${name} up to date`);
    return;
  }
  try {
    execFileSync(process.execPath, [findNodeGyp(), 'rebuild', ...nodeGypArgs()], { cwd: dir, stdio: 'pipe' });
  } catch (err) {
    process.stderr.write(String(err.stdout ?? '') + String(err.stderr ?? ''));
    fail(`${name}: node-gyp rebuild failed in ${dir} (output above)`);
  }
  if (!existsSync(output)) fail(`${name}: node-gyp finished but ${output} is missing`);
  writeFileSync(stampFile, stamp);
  console.log(`layerfs build-native: built ${name}`);
}

const fuseNative = join(root, 'node_modules', 'fuse-native');
if (!existsSync(fuseNative)) fail('node_modules/fuse-native is missing; run npm install');
const version = JSON.parse(readFileSync(join(fuseNative, 'package.json'), 'utf8')).version;
if (version !== FUSE_NATIVE_VERSION) fail(`fuse-native ${version} installed, the patch is for ${FUSE_NATIVE_VERSION}`);
if (!readFileSync(join(fuseNative, 'fuse-native.c'), 'utf8').includes('LAYERFS_PATCH_LEVEL')) {
  fail('fuse-native is not patched; patch-package must run first (npm install runs it)');
}
try {
  execFileSync('pkg-config', ['--exists', 'fuse']);
} catch {
  fail('libfuse 2 headers are missing: apt-get install libfuse-dev libfuse2 (scripts/setup does it)');
}
rmSync(join(fuseNative, 'prebuilds'), { recursive: true, force: true });
// The binary formats' C headers, from their one definition in src/engine/formats/.
for (const f of await generateFormats()) console.log(`layerfs build-native: generated ${f}`);
// Both addons compile layerfs's own C from src/engine/native/ too (their binding.gyp files
// name it relatively), so those sources are part of their rebuild stamps.
const engineNative = join(root, 'src', 'engine', 'native');
const engineSources = (fromDir) =>
  ['lower-index', 'upper-set', 'resolve']
    .flatMap((n) => [`${n}.c`, `${n}.h`])
    .concat(['handle.h', ...readdirSync(join(engineNative, 'generated')).sort().map((f) => `generated/${f}`)])
    .map((f) => relative(fromDir, join(engineNative, f)));
const sharedSources = engineSources(fuseNative);
buildIfChanged('fuse-native', fuseNative, ['fuse-native.c', 'layerfs-fast.h', 'binding.gyp', ...sharedSources], join(fuseNative, 'build', 'Release', 'fuse.node'));

const sysNative = join(root, 'src', 'sys', 'native');
const sysSources = ['binding.gyp', ...readdirSync(sysNative).filter((f) => /\.[ch]$/.test(f)).sort(), ...engineSources(sysNative)];
buildIfChanged('layerfs_sys', sysNative, sysSources, join(sysNative, 'build', 'Release', 'layerfs_sys.node'));

// The FUSE engine's own addon: every .c/.h in src/engine/native/ except the files the two
// builds above compile (the engine's binding.gyp names its sources).
const engineOwn = readdirSync(engineNative).filter((f) => /\.[ch]$/.test(f) && !engineSources(engineNative).includes(f)).sort();
buildIfChanged('layerfs_engine', engineNative, ['binding.gyp', ...engineOwn], join(engineNative, 'build', 'Release', 'layerfs_engine.node'));
