/**
 * The snapshotter's metadata: one JSON file, `<state>/metadata.json`, holding every
 * snapshot by its key (active and view snapshots) or name (committed ones) — containerd
 * gives both one namespace. Each record names the folder that holds its files by a small
 * numeric id, since keys are arbitrary strings ("default/12/extract-… sha256:…").
 *
 * The whole file is rewritten for every change, temp file + fsync + rename
 * (store/atomic.ts), so a crash leaves the old state or the new one. Changes are
 * serialised by the caller (Snapshotter holds one mutex around read-modify-write).
 */
import { readFile } from 'node:fs/promises';
import { LayerfsError, hasErrnoCode } from '../core/errors.js';
import { writeFileAtomic } from '../store/index.js';

/** containerd's snapshot kinds (snapshots.Kind; the proto enum's names in lower case). */
export type SnapshotKind = 'view' | 'active' | 'committed';

/** One snapshot as stored. */
export interface SnapshotRecord {
  /** Folder id under `<state>/snapshots/`. */
  id: string;
  kind: SnapshotKind;
  /** The parent's name ('' for none); always a committed snapshot. */
  parent: string;
  labels: Record<string, string>;
  /** ISO times, as containerd's Info.CreatedAt / UpdatedAt. */
  created: string;
  updated: string;
  /** Disk usage, measured once at commit (committed layers never change). */
  usage?: { size: number; inodes: number };
}

/** The file's content. */
export interface MetadataFile {
  version: 1;
  /** The next folder id to hand out (never reused, so a stale folder is never mistaken). */
  nextId: number;
  snapshots: Record<string, SnapshotRecord>;
}

const EMPTY: MetadataFile = { version: 1, nextId: 1, snapshots: {} };

/** Reads and writes `metadata.json`. */
export class MetadataStore {
  private cached: MetadataFile | undefined;

  constructor(readonly file: string) {}

  /** The current state (read from disk once, then kept in memory: this process is its only writer). */
  async read(): Promise<MetadataFile> {
    if (this.cached) return this.cached;
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (err) {
      if (hasErrnoCode(err, 'ENOENT')) return (this.cached = structuredClone(EMPTY));
      throw err;
    }
    let parsed: MetadataFile;
    try {
      parsed = JSON.parse(text) as MetadataFile;
    } catch (err) {
      throw new LayerfsError('FAILED_PRECONDITION', `snapshotter metadata ${this.file} is not valid JSON`, { cause: err });
    }
    if (parsed.version !== 1 || typeof parsed.nextId !== 'number' || typeof parsed.snapshots !== 'object' || parsed.snapshots === null) {
      throw new LayerfsError('FAILED_PRECONDITION', `snapshotter metadata ${this.file} has an unknown format`);
    }
    return (this.cached = parsed);
  }

  /** Replaces the state on disk, then in memory (a failed write changes neither). */
  async write(next: MetadataFile): Promise<void> {
    await writeFileAtomic(this.file, JSON.stringify(next, null, 1) + '\n');
    this.cached = next;
  }
}
