/** A store's layers as `inspect` shows them, for tests that damage a store by hand. */
import { join } from 'node:path';
import { layerfs } from './images.js';

export interface LayerInfo {
  ChainID: string;
  CacheID: string;
  Diff: string;
}

/** `layerfs --root ROOT ARGS…`, rejecting with the output when it fails. */
export async function okIn(root: string, args: string[]): Promise<string> {
  const r = await layerfs(root, args);
  if (r.code !== 0) throw new Error(`layerfs ${args.join(' ')} exited ${r.code}: ${r.stderr}${r.stdout}`);
  return r.stdout;
}

export async function layersOf(root: string, image: string): Promise<LayerInfo[]> {
  return (JSON.parse(await okIn(root, ['inspect', image])) as { Store: { Layers: LayerInfo[] } }[])[0]!.Store.Layers;
}

/** The layerdb entry folder of a chain id. */
export function entryDir(root: string, chain: string): string {
  return join(root, 'image', 'layerdb', 'sha256', chain.slice(7));
}
