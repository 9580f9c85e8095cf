/**
 * Tags, in `image/repositories.json` with Docker's shape:
 *   {"Repositories": {"debian": {"debian:bookworm": "sha256:<id>", "debian@sha256:…": "sha256:<id>"}}}
 * Repository names are in familiar form (no `docker.io/library/`), as Docker writes them.
 * The file is rewritten whole, atomically, under the store lock.
 */
import { readFile } from 'node:fs/promises';
import { parseDigest, type Digest } from '../core/digest.js';
import { LayerfsError, hasErrnoCode } from '../core/errors.js';
import { familiarName, familiarString, parseReference, type Reference } from '../image/index.js';
import { writeFileAtomic } from './atomic.js';
import type { StorePaths } from './store-paths.js';

type Repositories = Record<string, Record<string, string>>;

/** Access to `image/repositories.json`. */
export class TagStore {
  constructor(private readonly paths: StorePaths) {}

  private async load(): Promise<Repositories> {
    let txt: string;
    try {
      txt = await readFile(this.paths.repositories, 'utf8');
    } catch (err) {
      if (hasErrnoCode(err, 'ENOENT')) return {};
      throw err;
    }
    try {
      const v = JSON.parse(txt) as { Repositories?: Repositories };
      return v.Repositories ?? {};
    } catch (err) {
      throw new LayerfsError('IO', `${this.paths.repositories} is damaged: ${(err as Error).message}`, { cause: err });
    }
  }

  private async save(repos: Repositories): Promise<void> {
    for (const k of Object.keys(repos)) if (Object.keys(repos[k]!).length === 0) delete repos[k];
    await writeFileAtomic(this.paths.repositories, JSON.stringify({ Repositories: repos }));
  }

  /** All tags as [familiar 'name:tag', image id]. */
  async all(): Promise<[string, Digest][]> {
    const out: [string, Digest][] = [];
    for (const tags of Object.values(await this.load())) for (const [t, id] of Object.entries(tags)) out.push([t, parseDigest(id)]);
    return out;
  }

  /** The image a reference names, or undefined. */
  async resolve(ref: Reference): Promise<Digest | undefined> {
    const repo = (await this.load())[familiarName(ref)];
    const id = repo?.[familiarString(ref)];
    return id ? parseDigest(id) : undefined;
  }

  /** Points `ref` at `id`; returns the image it pointed at before, if another. */
  async set(ref: Reference, id: Digest): Promise<Digest | undefined> {
    const repos = await this.load();
    const name = familiarName(ref);
    const repo = (repos[name] ??= {});
    const key = familiarString(ref);
    const before = repo[key];
    repo[key] = id;
    await this.save(repos);
    return before && before !== id ? parseDigest(before) : undefined;
  }

  /** Removes a tag; returns the image it named. */
  async remove(ref: Reference): Promise<Digest | undefined> {
    const repos = await this.load();
    const repo = repos[familiarName(ref)];
    const key = familiarString(ref);
    const id = repo?.[key];
    if (!repo || !id) return undefined;
    delete repo[key];
    await this.save(repos);
    return parseDigest(id);
  }

  /** Removes every tag of an image; returns them. */
  async removeImage(id: Digest): Promise<string[]> {
    const repos = await this.load();
    const removed: string[] = [];
    for (const repo of Object.values(repos)) {
      for (const [t, v] of Object.entries(repo)) {
        if (v === id) {
          removed.push(t);
          delete repo[t];
        }
      }
    }
    if (removed.length) await this.save(repos);
    return removed;
  }

  /** Tags of one image, familiar form. */
  async tagsOf(id: Digest): Promise<string[]> {
    return (await this.all()).filter(([, v]) => v === id).map(([t]) => t);
  }
}

/** Parses a user-given tag reference (defaults to :latest). */
export function parseTag(s: string): Reference {
  return parseReference(s);
}
