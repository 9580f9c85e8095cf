/**
 * The per-instruction build cache, kept in the store (`<root>/build-cache/entries/`), shared
 * by every build and surviving restarts. A step's key hashes what its result depends on:
 *
 *   parent   the key of the step below it (for the first step, the FROM image's id), so the
 *            key names the parent's whole chain — its layers (chain ID) and its config;
 *   text     the instruction as written, with its arguments expanded;
 *   args     the build args in scope for a RUN (they reach its environment);
 *   sources  for COPY/ADD, a digest of the sources' names, types, modes, owners and
 *            content — never mtimes (as BuildKit's content hash).
 *
 * An entry holds the resulting image state: config bytes and layer descriptors whose layers
 * the store already has (no second copy). On a miss, `explainMiss` finds the closest
 * earlier entry — same parent, else same instruction — and says which input differs.
 * An entry file's mtime is when the entry was last used (written, or hit by a build):
 * `builder prune --filter until=…` goes by it, as BuildKit's prune goes by last use.
 */
import { createHash } from 'node:crypto';
import { readdir, readFile, rm, stat, utimes } from 'node:fs/promises';
import type { Descriptor } from '../image/index.js';
import { writeFileAtomic } from '../store/index.js';
import type { Store } from '../store/index.js';
import type { SourcesDigest } from './build-context.js';
import { buildDir } from './image-state.js';

/** What a step's result depends on. */
export interface CacheInputs {
  /**
   * Where the step is written (context, Dockerfile, stage, position): not part of the key,
   * it finds the previous build of the same line to compare with.
   */
  slot: string;
  parent: string;
  /** How to name the parent in messages (an image reference or a step). */
  parentName: string;
  text: string;
  args: Record<string, string>;
  sources?: SourcesDigest;
}

/** One cached step. */
export interface CacheEntry {
  key: string;
  inputs: CacheInputs;
  result: { configBytes: string; layers: Descriptor[] };
  created: string;
}

/** An entry and when a build last used it (ms since the epoch). */
export interface UsedEntry {
  entry: CacheEntry;
  lastUsed: number;
}

/** The key of a step with these inputs. */
export function cacheKey(i: CacheInputs): string {
  const canonical = JSON.stringify({
    parent: i.parent,
    text: i.text,
    args: Object.entries(i.args).sort(([a], [b]) => a.localeCompare(b)),
    sources: i.sources?.digest ?? null,
  });
  return `sha256:${createHash('sha256').update(canonical).digest('hex')}`;
}

const MAX_LISTED = 5;

function listOf(names: string[]): string {
  const shown = names.slice(0, MAX_LISTED).join(', ');
  return names.length > MAX_LISTED ? `${shown} and ${names.length - MAX_LISTED} more` : shown;
}

/** Which files differ between two source digests, in words. */
function sourceChanges(before: SourcesDigest | undefined, now: SourcesDigest | undefined): string {
  const a = before?.files ?? {};
  const b = now?.files ?? {};
  const changed = Object.keys(b).filter((k) => k in a && a[k] !== b[k]);
  const added = Object.keys(b).filter((k) => !(k in a));
  const removed = Object.keys(a).filter((k) => !(k in b));
  const parts: string[] = [];
  if (changed.length) parts.push(`changed: ${listOf(changed)}`);
  if (added.length) parts.push(`added: ${listOf(added)}`);
  if (removed.length) parts.push(`removed: ${listOf(removed)}`);
  return parts.length ? `source files differ (${parts.join('; ')})` : 'the sources differ';
}

/** Which build args differ, in words. */
function argChanges(before: Record<string, string>, now: Record<string, string>): string | undefined {
  const keys = [...new Set([...Object.keys(before), ...Object.keys(now)])].sort();
  const diffs = keys.filter((k) => before[k] !== now[k]).map((k) => `${k}: ${before[k] === undefined ? 'unset' : JSON.stringify(before[k])} → ${now[k] === undefined ? 'unset' : JSON.stringify(now[k])}`);
  return diffs.length ? `build arg changed (${diffs.join(', ')})` : undefined;
}

/** The cache of one store. */
export class BuildCache {
  private constructor(
    private readonly dir: string,
    private readonly entries: Map<string, CacheEntry>,
    private readonly used: Map<string, number>,
  ) {}

  /** Loads every entry (unreadable ones are dropped: a cache can always be rebuilt). */
  static async open(store: Store): Promise<BuildCache> {
    const dir = `${buildDir(store)}/entries`;
    const entries = new Map<string, CacheEntry>();
    const used = new Map<string, number>();
    for (const n of await readdir(dir).catch(() => [] as string[])) {
      if (!n.endsWith('.json')) continue;
      try {
        const file = `${dir}/${n}`;
        const e = JSON.parse(await readFile(file, 'utf8')) as CacheEntry;
        if (typeof e.key !== 'string' || !e.result || !e.inputs) throw new Error('not an entry');
        entries.set(e.key, e);
        used.set(e.key, (await stat(file)).mtimeMs);
      } catch {
        await rm(`${dir}/${n}`, { force: true });
      }
    }
    return new BuildCache(dir, entries, used);
  }

  private file(key: string): string {
    return `${this.dir}/${key.slice(7)}.json`;
  }

  get(key: string): CacheEntry | undefined {
    return this.entries.get(key);
  }

  /** Every entry with its last use, least recently used first. */
  list(): UsedEntry[] {
    return [...this.entries.values()].map((entry) => ({ entry, lastUsed: this.used.get(entry.key) ?? 0 })).sort((a, b) => a.lastUsed - b.lastUsed);
  }

  /** Records a step (atomically: a reader sees the whole entry or none). */
  async put(entry: CacheEntry): Promise<void> {
    await writeFileAtomic(this.file(entry.key), JSON.stringify(entry));
    this.entries.set(entry.key, entry);
    this.used.set(entry.key, Date.now());
  }

  /** Notes that a build used an entry (its file's mtime; an entry pruned meanwhile stays gone). */
  async touch(key: string): Promise<void> {
    const t = new Date();
    await utimes(this.file(key), t, t).catch(() => undefined);
    this.used.set(key, t.getTime());
  }

  /** Drops an entry (its layers left the store, or `builder prune`). */
  async drop(key: string): Promise<void> {
    this.entries.delete(key);
    this.used.delete(key);
    await rm(this.file(key), { force: true });
  }

  /**
   * Why `inputs` missed, compared with the closest earlier entry. `parentRebuilt` names
   * the step below when it was not served from the cache: then everything above re-runs.
   */
  explainMiss(inputs: CacheInputs, parentRebuilt: string | undefined): string {
    if (parentRebuilt) return `its parent changed (${parentRebuilt} was rebuilt), so this and every later step run again`;
    // Most recently used first: a hit counts as the last build of its line.
    const all = this.list().reverse().map((u) => u.entry);
    // The last build of this same line on this parent, else of this line on any parent,
    // else the same instruction on this parent from another Dockerfile.
    const previous =
      all.find((e) => e.inputs.slot === inputs.slot && e.inputs.parent === inputs.parent) ??
      all.find((e) => e.inputs.slot === inputs.slot) ??
      all.find((e) => e.inputs.parent === inputs.parent && e.inputs.text === inputs.text);
    if (previous) {
      if (previous.inputs.parent !== inputs.parent) return `the parent changed (last built on ${previous.inputs.parentName}, now on ${inputs.parentName})`;
      if (previous.inputs.text !== inputs.text) return `the instruction changed (last built as ${JSON.stringify(previous.inputs.text)})`;
      const args = argChanges(previous.inputs.args, inputs.args);
      if (args) return args;
      if (previous.inputs.sources?.digest !== inputs.sources?.digest) return sourceChanges(previous.inputs.sources, inputs.sources);
      return 'the cached result is gone from the store (pruned)';
    }
    const elsewhere = all.find((e) => e.inputs.text === inputs.text);
    if (elsewhere) return `not built on this parent before (built on ${elsewhere.inputs.parentName}; now on ${inputs.parentName})`;
    return 'not in the cache (never built)';
  }

  /** Number of entries (for messages and tests). */
  get size(): number {
    return this.entries.size;
  }
}
