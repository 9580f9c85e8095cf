/** package.json's version, for `layerfs --version` and `layerfs-overlay --version`. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** dist/cli/*.js and src/cli/*.ts are both two levels below package.json. */
export function packageVersion(): string {
  return (JSON.parse(readFileSync(join(import.meta.dirname, '..', '..', 'package.json'), 'utf8')) as { version: string }).version;
}
