/**
 * An image as the teaching verbs see it: its layers bottom first, each with the history
 * entry that made it (CREATED BY), its layer cache folder, and the merged index of all of
 * them — the same LowerIndex a mount serves its lower layers from, so what these verbs
 * say a path is served by is what a mount serves.
 */
import type { ChainId, Digest, DiffId } from '../core/digest.js';
import type { HistoryEntry, ImageConfig } from '../image/index.js';
import type { Store } from '../store/index.js';
import { LowerIndex } from '../union/index.js';

/** One layer of an image, with the history entry that created it. */
export interface StackLayer {
  /** 0 = bottom layer. */
  position: number;
  chainId: ChainId;
  diffId: DiffId;
  cacheId: string;
  /** The extracted layer folder (overlayfs format). */
  dir: string;
  /** Bytes of file content in the layer (layerdb `size`). */
  size: number;
  createdBy: string;
  created: string | undefined;
  comment: string;
}

/** An image's layers and their merged view. */
export interface ImageStack {
  id: Digest;
  config: ImageConfig;
  /** Bottom first. */
  layers: StackLayer[];
  /** Merged lower view; its layer numbers are top first (0 = `layers[layers.length - 1]`). */
  index: LowerIndex;
}

/** Pairs each non-empty history entry with the next layer, bottom up (as `docker history`). */
export function historyOfLayers(config: ImageConfig, layerCount: number): HistoryEntry[] {
  const out: HistoryEntry[] = [];
  for (const h of config.history ?? []) if (!h.empty_layer) out.push(h);
  while (out.length < layerCount) out.push({});
  return out.slice(0, layerCount);
}

/** Loads an image's layers and builds their merged index (a walk of every layer folder). */
export async function loadImageStack(store: Store, id: Digest): Promise<ImageStack> {
  const { config } = await store.images.config(id);
  const records = await store.imageLayers(id, config);
  const history = historyOfLayers(config, records.length);
  const layers = records.map((r, i): StackLayer => ({
    position: i,
    chainId: r.chainId,
    diffId: r.diffId,
    cacheId: r.cacheId,
    dir: store.paths.diff(r.cacheId),
    size: r.size,
    createdBy: history[i]?.created_by ?? '',
    created: history[i]?.created,
    comment: history[i]?.comment ?? '',
  }));
  const index = await LowerIndex.build(layers.map((l) => l.dir).reverse());
  return { id, config, layers, index };
}

/** The stack layer an index layer number (top first) refers to. */
export function layerOfIndex(stack: ImageStack, indexLayer: number): StackLayer {
  return stack.layers[stack.layers.length - 1 - indexLayer]!;
}
