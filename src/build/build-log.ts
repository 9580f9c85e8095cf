/**
 * What recent builds did, for `layerfs ui`'s build view: each build's steps — hit or miss
 * and why, time, and the layer each step produced — kept as one JSON file per build in
 * `<root>/build-cache/builds/` (the newest KEEP; a failed build is kept too, with its error).
 */
import { readdir, readFile, rm } from 'node:fs/promises';
import { writeFileAtomic } from '../store/index.js';
import type { Store } from '../store/index.js';
import { buildDir } from './image-state.js';

/** The layer a step produced (a metadata step produces none). */
export interface StepLayer {
  diffId: string;
  size: number;
  /** Its position in the image, 0 at the bottom. */
  position: number;
}

/** One step as it happened. */
export interface StepReport {
  n: number;
  stage: string;
  text: string;
  cached: boolean;
  /** Why it missed (absent on a hit and for ARG). */
  reason?: string;
  seconds: number;
  layer?: StepLayer;
}

/** One build. */
export interface BuildRecord {
  started: string;
  seconds: number;
  dockerfile: string;
  context: string | null;
  tags: string[];
  /** The image built (absent when the build failed). */
  id?: string;
  error?: string;
  steps: StepReport[];
}

const KEEP = 20;

const dirOf = (store: Store): string => `${buildDir(store)}/builds`;

/** Records a build and drops the oldest beyond KEEP. */
export async function recordBuild(store: Store, rec: BuildRecord): Promise<void> {
  const dir = dirOf(store);
  await writeFileAtomic(`${dir}/${rec.started.replace(/[:.]/g, '-')}-${process.pid}.json`, JSON.stringify(rec));
  const names = (await readdir(dir)).filter((n) => n.endsWith('.json')).sort();
  for (const n of names.slice(0, Math.max(0, names.length - KEEP))) await rm(`${dir}/${n}`, { force: true });
}

/** The recorded builds, newest first. */
export async function recentBuilds(store: Store): Promise<BuildRecord[]> {
  const dir = dirOf(store);
  const names = (await readdir(dir).catch(() => [] as string[])).filter((n) => n.endsWith('.json')).sort().reverse();
  const out: BuildRecord[] = [];
  for (const n of names) {
    try {
      out.push(JSON.parse(await readFile(`${dir}/${n}`, 'utf8')) as BuildRecord);
    } catch {
      // A record being replaced or damaged: the view shows the others.
    }
  }
  return out;
}
