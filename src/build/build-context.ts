/**
 * The build context: a host folder COPY and ADD read from, filtered by its
 * `.dockerignore` (Docker's rules, `!` exceptions included, through @balena/dockerignore).
 * Sources are matched like Docker's `filepath.Match` (`*` and `?` never cross `/`) and must
 * stay inside the context: `..` that climbs out, or a symlink whose target is outside, is
 * refused. `digestSources` is the cache's view of the sources: names, types, modes, owners
 * and content — never mtimes — with one hash per file so a miss can name the file.
 */
import { createHash } from 'node:crypto';
import { createReadStream, lstatSync, readdirSync } from 'node:fs';
import type { Stats } from 'node:fs';
import { lstat, readdir, readFile, readlink, realpath } from 'node:fs/promises';
import { join, posix, relative, resolve, sep } from 'node:path';
import * as dockerignoreModule from '@balena/dockerignore';
import type { Ignore } from '@balena/dockerignore';
import { LayerfsError, hasErrnoCode } from '../core/errors.js';
import type { DigestCache } from './digest-cache.js';

/** One matched source: a path in the context and its lstat. */
export interface Source {
  /** Relative to the context root, `/`-separated ('' is the root). */
  rel: string;
  abs: string;
  stat: Stats;
}

/** What the cache records about a step's sources. */
export interface SourcesDigest {
  digest: string;
  /** Per file (relative path) a short hash of its name, type, mode, owner and content. */
  files: Record<string, string>;
}

/** Docker's filepath.Match as a regular expression over a whole `/`-separated path. */
export function globRegExp(pattern: string): RegExp {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '\\' && i + 1 < pattern.length) re += pattern[++i]!.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
    else if (c === '[') {
      const end = pattern.indexOf(']', i + 2);
      if (end < 0) throw new LayerfsError('INVALID_ARGUMENT', `syntax error in pattern ${JSON.stringify(pattern)}`);
      let cls = pattern.slice(i + 1, end);
      if (cls.startsWith('^') || cls.startsWith('!')) cls = '^' + cls.slice(1);
      re += `[${cls.replace(/\\/g, '\\\\')}]`;
      i = end;
    } else re += c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/** sha256 (hex) of a file's content, remembered in `known`. */
async function contentHash(abs: string, st: Stats, known: DigestCache | undefined): Promise<string> {
  const h = createHash('sha256');
  // Small files in one read: a stream per file costs more than the hashing.
  if (st.size <= 1 << 20) h.update(await readFile(abs));
  else for await (const chunk of createReadStream(abs)) h.update(chunk as Buffer);
  const hex = h.digest('hex');
  known?.record(abs, st, hex);
  return hex;
}

/** The package is CommonJS: its factory is the module's default export at run time. */
const dockerignore = dockerignoreModule.default as unknown as (options?: { ignorecase?: boolean }) => Ignore;

const hasGlob = (p: string): boolean => /[*?[]/.test(p);

/** Files kept by name in a cache entry; beyond this a miss names folders, not files. */
export const MAX_FILES_NAMED = 5000;

/**
 * Per-file hashes of a large context are folded into one hash per folder, shallower until
 * few enough remain: a cache entry stays small (and every build loads every entry), and a
 * miss still names where the change is.
 */
function summarize(files: Record<string, string>, maxNamed: number): Record<string, string> {
  const paths = Object.keys(files);
  if (paths.length <= maxNamed) return files;
  const parts = paths.map((p) => p.split('/'));
  const keyAt = (i: number, depth: number): string => parts[i]!.slice(0, depth).join('/') + (parts[i]!.length > depth ? '/' : '');
  // The deepest folding (8 levels at most, 1 at least) that names few enough.
  let depth = 8;
  while (depth > 1 && new Set(paths.map((_, i) => keyAt(i, depth))).size > maxNamed) depth--;
  // Lines grouped first and each group hashed at once: one live hash per folder key would
  // hold native memory for every file of a flat context (100,000 files: ~300 MB).
  const groups = new Map<string, string[]>();
  paths.forEach((path, i) => {
    const key = keyAt(i, depth);
    let g = groups.get(key);
    if (!g) groups.set(key, (g = []));
    g.push(`${path}\0${files[path]}\n`);
  });
  return Object.fromEntries([...groups].map(([k, lines]) => [k, createHash('sha256').update(lines.join('')).digest('hex').slice(0, 16)]));
}

/** Walked entries between two turns of the event loop. */
const YIELD_EVERY = 512;

/** A context folder and its ignore rules. */
export class BuildContext {
  /** Entries walked so far (for YIELD_EVERY). */
  private walked = 0;

  private constructor(
    /** Absolute root; undefined for a build without context (Dockerfile on stdin). */
    readonly root: string | undefined,
    private readonly ignore: Ignore | undefined,
    /** False for an image's root (COPY --from): its symlinks are the image's business. */
    private readonly checkLinks = true,
  ) {}

  /** The root of a mounted image as a source of COPY --from (no .dockerignore). */
  static ofImageRoot(dir: string): BuildContext {
    return new BuildContext(dir, undefined, false);
  }

  /** Opens `dir` (reading its .dockerignore), or a context with no files. */
  static async open(dir: string | undefined): Promise<BuildContext> {
    if (dir === undefined) return new BuildContext(undefined, undefined);
    const root = await realpath(resolve(dir)).catch((err: unknown) => {
      throw new LayerfsError('NOT_FOUND', `build context ${dir} does not exist`, { cause: err });
    });
    if (!(await lstat(root)).isDirectory()) throw new LayerfsError('INVALID_ARGUMENT', `build context ${dir} is not a directory`);
    const text = await readFile(join(root, '.dockerignore'), 'utf8').catch(() => undefined);
    const rules = text
      ?.split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('#'));
    return new BuildContext(root, rules?.length ? dockerignore().add(rules) : undefined);
  }

  /** Whether `rel` is excluded by .dockerignore. */
  ignored(rel: string): boolean {
    return rel !== '' && !!this.ignore?.ignores(rel);
  }

  private rootOrThrow(what: string): string {
    if (!this.root) throw new LayerfsError('INVALID_ARGUMENT', `${what}: this build has no context (Dockerfile from stdin)`);
    return this.root;
  }

  /** The cleaned, context-relative form of a source path; refuses paths that climb out. */
  private clean(src: string, what: string): string {
    const p = posix.normalize(`/${src}`).slice(1).replace(/\/$/, '');
    if (posix.normalize(src).startsWith('../') || posix.normalize(src) === '..') {
      throw new LayerfsError('UNSAFE_PATH', `${what}: source ${JSON.stringify(src)} is outside the build context`);
    }
    return p === '.' ? '' : p;
  }

  /** Checks that a symlink source resolves inside the context. */
  private async checkInside(abs: string, src: string, what: string): Promise<void> {
    if (!this.checkLinks) return;
    const root = this.rootOrThrow(what);
    const real = await realpath(abs).catch(() => undefined);
    if (real !== undefined && real !== root && !real.startsWith(root + sep)) {
      throw new LayerfsError('UNSAFE_PATH', `${what}: source ${JSON.stringify(src)} is a symlink to ${real}, outside the build context`);
    }
  }

  /** The sources matching `patterns`, in order; a pattern that matches nothing is an error. */
  async resolve(patterns: string[], what: string): Promise<Source[]> {
    const root = this.rootOrThrow(what);
    const out: Source[] = [];
    for (const pattern of patterns) {
      const clean = this.clean(pattern, what);
      if (!hasGlob(clean)) {
        const abs = join(root, clean);
        const st = this.ignored(clean) ? undefined : await lstat(abs).catch((err: unknown) => (hasErrnoCode(err, 'ENOENT') || hasErrnoCode(err, 'ENOTDIR') ? undefined : Promise.reject(err)));
        if (!st) throw new LayerfsError('NOT_FOUND', `${what}: ${JSON.stringify(pattern)} not found in the build context (or excluded by .dockerignore)`);
        if (st.isSymbolicLink()) await this.checkInside(abs, pattern, what);
        out.push({ rel: clean, abs, stat: st });
        continue;
      }
      const re = globRegExp(clean);
      const depth = clean.split('/').length;
      const found: Source[] = [];
      await this.walk('', async (s) => {
        if (re.test(s.rel)) found.push(s);
        return s.rel.split('/').length < depth;
      });
      if (found.length === 0) throw new LayerfsError('NOT_FOUND', `${what}: no source files were specified (${JSON.stringify(pattern)} matches nothing in the build context)`);
      for (const s of found) if (s.stat.isSymbolicLink()) await this.checkInside(s.abs, s.rel, what);
      out.push(...found);
    }
    return out;
  }

  /**
   * Walks below `rel` depth first in name order, skipping ignored paths; `visit` returns
   * whether to descend into a directory. Entries are lstat'ed synchronously: a context is
   * thousands of stats, and each asynchronous one is a thread-pool round trip that left
   * the process idle most of a cached build's walk (2,010 files: ~0.1 s). The event loop
   * gets a turn every YIELD_EVERY entries, so Ctrl-C is still handled during a long walk.
   */
  async walk(rel: string, visit: (s: Source) => Promise<boolean>): Promise<void> {
    const root = this.rootOrThrow('walk');
    const names = readdirSync(join(root, rel)).sort();
    for (const name of names) {
      if (++this.walked % YIELD_EVERY === 0) await new Promise((r) => setImmediate(r));
      const r = rel === '' ? name : `${rel}/${name}`;
      const abs = join(root, r);
      const st = lstatSync(abs);
      // An ignored folder may still hold `!` exceptions: look inside it, skip only its entry.
      const isIgnored = this.ignored(r);
      if (isIgnored && !st.isDirectory()) continue;
      const descend = isIgnored ? true : await visit({ rel: r, abs, stat: st });
      if (st.isDirectory() && descend) await this.walk(r, visit);
    }
  }

  /**
   * Digest of everything the sources bring (a directory source: everything below it).
   * `known` remembers content hashes by stat (digest-cache.ts): unchanged files are not read.
   */
  async digestSources(sources: Source[], maxNamed = MAX_FILES_NAMED, known?: DigestCache): Promise<SourcesDigest> {
    const files: Record<string, string> = {};
    const all = createHash('sha256');
    const add = async (s: Source): Promise<void> => {
      const st = s.stat;
      const type = st.isDirectory() ? 'dir' : st.isFile() ? 'file' : st.isSymbolicLink() ? 'symlink' : 'other';
      const h = createHash('sha256').update(`${s.rel}\0${type}\0${(st.mode & 0o7777).toString(8)}\0${st.uid}:${st.gid}\0`);
      if (st.isFile()) h.update(known?.lookup(s.abs, st) ?? (await contentHash(s.abs, st, known)));
      else if (st.isSymbolicLink()) h.update(await readlink(s.abs));
      const d = h.digest('hex');
      files[s.rel || '.'] = d.slice(0, 16);
      all.update(`${d}\n`);
    };
    for (const s of sources) {
      await add(s);
      if (s.stat.isDirectory()) await this.walk(s.rel, async (c) => (await add(c), true));
    }
    return { digest: `sha256:${all.digest('hex')}`, files: summarize(files, maxNamed) };
  }

  /** A context-relative path for messages. */
  relativeName(abs: string): string {
    return this.root ? relative(this.root, abs) : abs;
  }
}
