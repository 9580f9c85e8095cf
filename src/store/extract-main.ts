/**
 * The extraction helper run inside the user's namespace (layer-privilege.ts): extracts
 * the tar on stdin into the folder named in argv[2]'s JSON options, as uid 0 of the
 * namespace, and prints one JSON line (ExtractHelperResult): the stats or a typed error.
 */
import { LayerfsError } from '../core/errors.js';
import { extractLayer, type ExtractOptions } from './layer-extractor.js';
import type { ExtractHelperResult } from './layer-privilege.js';

async function main(): Promise<ExtractHelperResult> {
  const { dir, ...opts } = JSON.parse(process.argv[2] ?? '{}') as ExtractOptions & { dir: string };
  try {
    return { stats: await extractLayer(process.stdin, dir, opts) };
  } catch (err) {
    if (err instanceof LayerfsError) return { error: { code: err.code, message: err.message, ...(err.hint ? { hint: err.hint } : {}) } };
    return { error: { code: 'IO', message: `${opts.what}: ${(err as Error).message}` } };
  }
}

const res = await main();
process.stdout.write(JSON.stringify(res) + '\n', () => process.exit(res.error ? 1 : 0));
