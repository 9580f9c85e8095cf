#!/usr/bin/env node
// Builds layerfs's syscall addon (src/sys/native) with the node-gyp bundled inside npm,
// so no network fetch of node-gyp is needed. When this Node ships its headers next to the
// binary (distro packages: /usr/include/node; official tarballs: <prefix>/include/node),
// they are used directly, so the build also works offline. Idempotent: rebuilds each time.
import { execFileSync } from 'node:child_process';
import { existsSync, realpathSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const dir = join(root, 'src', 'sys', 'native');

function findNodeGyp() {
  const candidates = [];
  if (process.env.npm_config_node_gyp) candidates.push(process.env.npm_config_node_gyp);
  const prefix = dirname(dirname(process.execPath));
  candidates.push(join(prefix, 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  if (process.env.npm_execpath) {
    // npm_execpath = <npm>/bin/npm-cli.js
    candidates.push(join(dirname(dirname(realpathSync(process.env.npm_execpath))), 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  }
  const found = candidates.find((c) => existsSync(c));
  if (!found) throw new Error(`node-gyp not found (looked in: ${candidates.join(', ')})`);
  return found;
}

const args = [findNodeGyp(), '--directory', dir, 'rebuild'];
const nodedir = dirname(dirname(process.execPath));
if (existsSync(join(nodedir, 'include', 'node', 'common.gypi'))) args.push(`--nodedir=${nodedir}`);
try {
  execFileSync(process.execPath, [...args, '--loglevel=error'], { stdio: ['ignore', 'pipe', 'pipe'] });
} catch (err) {
  // Only on failure is the compiler's output worth showing.
  process.stderr.write(`${err.stdout ?? ''}${err.stderr ?? ''}`);
  console.error('layerfs: building src/sys/native failed (needs python3, make and a C compiler)');
  process.exit(1);
}
console.log(`layerfs: built ${join(dir, 'build', 'Release', 'layerfs_sys.node')}`);
