/**
 * Content hashes of build-context files, remembered by their stat so a rebuild does not
 * read unchanged files again (what git's index does for `git status`). A file is known by
 * its path, inode, size, mtime and ctime (µs): an edit changes mtime and ctime, and even
 * `touch -d` with an old date or a `cp -p` over it changes ctime. A file modified less than
 * two seconds before it was hashed is not remembered: a write landing in the same clock
 * tick as the hash could otherwise leave a stale hash with a matching stat (git's "racy"
 * case). Kept per context folder in `<root>/build-cache/file-digests/`; only the hash of
 * the content is kept, names, modes and owners are hashed from the stat every time.
 */
import { createHash } from 'node:crypto';
import type { Stats } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { writeFileAtomic } from '../store/index.js';

/** A remembered file: stat identity → content sha256 (hex). */
type Entries = Record<string, [string, string]>;

const RACY_MS = 2000;
/** Beyond this many remembered files, only those the last build used are kept. */
const MAX_ENTRIES = 200_000;

const identity = (st: Stats): string => `${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;

/** The remembered hashes of one context folder. */
export class DigestCache {
  private readonly used: Entries = {};
  private changed = false;

  private constructor(
    private readonly file: string,
    private readonly known: Entries,
  ) {}

  /** Opens the cache of context folder `root` kept under `dir`. */
  static async open(dir: string, root: string): Promise<DigestCache> {
    const file = `${dir}/${createHash('sha256').update(root).digest('hex').slice(0, 32)}.json`;
    let known: Entries = {};
    try {
      const parsed = JSON.parse(await readFile(file, 'utf8')) as { root?: string; files?: Entries };
      if (parsed.root === root && parsed.files && typeof parsed.files === 'object') known = parsed.files;
    } catch {
      // Missing or unreadable: every file is hashed once more.
    }
    return new DigestCache(file, known);
  }

  /** The content hash of `abs` if its stat is the one remembered. */
  lookup(abs: string, st: Stats): string | undefined {
    const e = this.known[abs];
    if (!e || e[0] !== identity(st)) return undefined;
    this.used[abs] = e;
    return e[1];
  }

  /** Remembers a hash just computed (unless the file is too fresh to trust its stat). */
  record(abs: string, st: Stats, hex: string, now = Date.now()): void {
    if (now - st.mtimeMs < RACY_MS || now - st.ctimeMs < RACY_MS) return;
    this.used[abs] = [identity(st), hex];
    this.changed = true;
  }

  /** Writes the cache when this build learned something (atomically; a lost write costs only time). */
  async save(root: string): Promise<void> {
    if (!this.changed) return;
    const files = Object.keys(this.known).length + Object.keys(this.used).length > MAX_ENTRIES ? this.used : { ...this.known, ...this.used };
    await writeFileAtomic(this.file, JSON.stringify({ root, files }));
  }
}
