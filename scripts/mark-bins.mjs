#!/usr/bin/env node
// Part of `npm run build`: tsc writes dist/ files without the run bit, so the package's
// bin files (package.json "bin": layerfs, layerfs-overlay) could not be run as programs
// from a checkout (a mount helper or containers-storage's mount_program execs them).
import { chmodSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { bin } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
for (const file of Object.values(bin)) chmodSync(join(root, file), 0o755);
