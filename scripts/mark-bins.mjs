#!/usr/bin/env node
// Part of `npm run build`, after tsc: copies what tsc does not compile into dist/ — the
// `layerfs-overlay` front end, a POSIX sh script (src/cli/layerfs-overlay.sh, see why there) —
// and gives the package's bin files (package.json "bin": layerfs, layerfs-overlay) the run
// bit, which tsc leaves off, so they run as programs from a checkout too (a mount helper or
// containers-storage's mount_program execs them).
import { chmodSync, copyFileSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
copyFileSync(join(root, 'src', 'cli', 'layerfs-overlay.sh'), join(root, 'dist', 'cli', 'layerfs-overlay'));
const { bin } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
for (const file of Object.values(bin)) chmodSync(join(root, file), 0o755);
