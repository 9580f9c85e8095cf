/**
 * Building real images with real tools (umoci, skopeo, buildah) and hand-made layouts for
 * bad-input cases; snapshotting directory trees to compare them (paths, types, modes,
 * owners, sizes, content hashes, symlink targets, xattrs, hard-link groups).
 * Shared with the mount tests, which use `buildSampleImage` to get a loaded image.
 */
import { LAYERFS } from './cli.js';
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, readFile, readdir, lstat, readlink, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { pack, type Header } from 'tar-stream';
import * as sys from '../../src/sys/native.js';

const execFileP = promisify(execFile);
const REPO = join(import.meta.dirname, '..', '..');

/** Runs a tool; rejects with its stderr on failure. */
export async function run(cmd: string, args: string[], opts: { cwd?: string; input?: Buffer } = {}): Promise<string> {
  if (opts.input) {
    return new Promise((resolve, reject) => {
      const p = spawn(cmd, args, { cwd: opts.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      p.stdout.on('data', (d) => (out += d));
      p.stderr.on('data', (d) => (err += d));
      p.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} ${args.join(' ')}: ${err}`))));
      p.stdin.end(opts.input);
    });
  }
  try {
    const { stdout } = await execFileP(cmd, args, { cwd: opts.cwd, maxBuffer: 64 * 1024 * 1024 });
    return stdout;
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')}: ${err.stderr || err.message}`);
  }
}

/** Result of running the layerfs CLI. */
export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** The built CLI (dist/, kept current by the global setup of the mount project). */
export function storeCli(): Promise<string> {
  return Promise.resolve(LAYERFS);
}

/** Runs `layerfs --root ROOT ARGS…` (the built CLI) against a store root. */
export async function layerfs(root: string, args: string[], input?: Buffer): Promise<CliResult> {
  const cli = await storeCli();
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [cli, '--root', root, ...args], {
      cwd: REPO,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    p.stdin.end(input ?? Buffer.alloc(0));
  });
}

/** Makes an umoci image `layout:tag`, one layer per step (each step edits the rootfs). */
export async function umociImage(layout: string, tag: string, steps: ((rootfs: string) => Promise<void>)[], work: string): Promise<void> {
  await run('umoci', ['init', '--layout', layout]).catch(() => undefined);
  await run('umoci', ['new', '--image', `${layout}:${tag}`]);
  for (const [i, step] of steps.entries()) {
    const bundle = join(work, `bundle-${tag}-${i}`);
    await run('umoci', ['unpack', '--image', `${layout}:${tag}`, bundle]);
    await step(join(bundle, 'rootfs'));
    await run('umoci', ['repack', '--image', `${layout}:${tag}`, bundle]);
    await rm(bundle, { recursive: true, force: true });
  }
}

/** Appends a hand-made (uncompressed) layer tar to an umoci image. */
export async function umociAddRawLayer(layout: string, tag: string, tar: Buffer, work: string): Promise<void> {
  const f = join(work, `raw-${Date.now()}-${Math.random().toString(16).slice(2)}.tar`);
  await writeFile(f, tar);
  await run('umoci', ['raw', 'add-layer', '--image', `${layout}:${tag}`, f]);
  await rm(f);
}

/** `umoci unpack` of an image; returns the rootfs path. */
export async function umociUnpack(layout: string, tag: string, dest: string): Promise<string> {
  await run('umoci', ['unpack', '--image', `${layout}:${tag}`, dest]);
  return join(dest, 'rootfs');
}

/** One entry of a hand-made tar. */
export interface TarSpec {
  name: string;
  type?: Header['type'];
  data?: Buffer | string;
  mode?: number;
  uid?: number;
  gid?: number;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  mtime?: Date;
  pax?: Record<string, string>;
  /** Claimed size (for lying headers); defaults to the data length. */
  size?: number;
}

/** Builds a tar in memory with tar-stream. */
export async function makeTar(entries: TarSpec[]): Promise<Buffer> {
  const p = pack();
  const chunks: Buffer[] = [];
  p.on('data', (c: unknown) => chunks.push(c as Buffer));
  const done = new Promise<void>((r) => p.on('end', () => r()));
  for (const e of entries) {
    const data = e.data === undefined ? undefined : Buffer.from(e.data);
    const h: Partial<Header> & Pick<Header, 'name'> = { name: e.name, type: e.type ?? 'file', mode: e.mode ?? (e.type === 'directory' ? 0o755 : 0o644), uid: e.uid ?? 0, gid: e.gid ?? 0, mtime: e.mtime ?? new Date(1_700_000_000_000) };
    if (e.linkname !== undefined) h.linkname = e.linkname;
    if (e.devmajor !== undefined) h.devmajor = e.devmajor;
    if (e.devminor !== undefined) h.devminor = e.devminor;
    if (e.pax) h.pax = e.pax;
    if (e.size !== undefined) h.size = e.size;
    await new Promise<void>((resolve, reject) => {
      if (data) p.entry(h, data, (err) => (err ? reject(err) : resolve()));
      else p.entry(h, (err) => (err ? reject(err) : resolve())).end(undefined);
    });
  }
  p.finalize();
  await done;
  return Buffer.concat(chunks);
}

const sha = (b: Buffer | string): string => 'sha256:' + createHash('sha256').update(b).digest('hex');

/** A layer for `writeOciLayout`: an uncompressed tar and how to store it. */
export interface RawLayer {
  tar: Buffer;
  compression?: 'gzip' | 'zstd' | 'none';
  /** Replaces the stored blob bytes after digests were computed (for corruption tests). */
  tamper?: (blob: Buffer) => Buffer;
  /** Overrides the descriptor size. */
  size?: number;
  /** Overrides the diff_id in the config. */
  diffId?: string;
  /** Stored blob bytes, used as they are (digest and size computed over them). */
  blob?: Buffer;
}

/** Compresses with the real zstd tool. */
export async function zstdCompress(b: Buffer, extra: string[] = []): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const p = spawn('zstd', ['-q', '-c', ...extra], { stdio: ['pipe', 'pipe', 'inherit'] });
    const out: Buffer[] = [];
    p.stdout.on('data', (d: Buffer) => out.push(d));
    p.on('close', (code) => (code === 0 ? resolve(Buffer.concat(out)) : reject(new Error('zstd failed'))));
    p.stdin.end(b);
  });
}

/** Writes an OCI layout by hand (one image); returns the manifest and config digests. */
export async function writeOciLayout(
  dir: string,
  layers: RawLayer[],
  opts: { tag?: string; config?: (c: Record<string, unknown>) => unknown; configBytes?: Buffer; manifest?: (m: Record<string, unknown>) => unknown; manifestBytes?: Buffer } = {},
): Promise<{ manifest: string; config: string }> {
  await mkdir(join(dir, 'blobs', 'sha256'), { recursive: true });
  const put = async (b: Buffer): Promise<string> => {
    const d = sha(b);
    await writeFile(join(dir, 'blobs', 'sha256', d.slice(7)), b);
    return d;
  };
  const descs: Record<string, unknown>[] = [];
  const diffIds: string[] = [];
  for (const l of layers) {
    const c = l.compression ?? 'gzip';
    let blob = l.blob ?? (c === 'gzip' ? gzipSync(l.tar) : c === 'zstd' ? await zstdCompress(l.tar) : l.tar);
    const digest = sha(blob);
    const size = blob.length;
    if (l.tamper) blob = l.tamper(blob);
    await writeFile(join(dir, 'blobs', 'sha256', digest.slice(7)), blob);
    descs.push({ mediaType: `application/vnd.oci.image.layer.v1.tar${c === 'none' ? '' : '+' + c}`, digest, size: l.size ?? size });
    diffIds.push(l.diffId ?? sha(l.tar));
  }
  const host = process.arch === 'arm64' ? 'arm64' : 'amd64';
  let cfg: Record<string, unknown> = { architecture: host, os: 'linux', created: '2024-01-02T03:04:05Z', config: { Env: ['PATH=/usr/bin'] }, rootfs: { type: 'layers', diff_ids: diffIds }, history: layers.map((_, i) => ({ created: '2024-01-02T03:04:05Z', created_by: `step ${i}` })) };
  if (opts.config) cfg = (opts.config(cfg) ?? cfg) as Record<string, unknown>;
  const configBytes = opts.configBytes ?? Buffer.from(JSON.stringify(cfg));
  const config = await put(configBytes);
  let m: Record<string, unknown> = { schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config, size: configBytes.length }, layers: descs };
  if (opts.manifest) m = (opts.manifest(m) ?? m) as Record<string, unknown>;
  const manifestBytes = opts.manifestBytes ?? Buffer.from(JSON.stringify(m));
  const manifest = await put(manifestBytes);
  await writeFile(join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  await writeFile(join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: manifest, size: manifestBytes.length, annotations: { 'org.opencontainers.image.ref.name': opts.tag ?? 'latest' } }] }));
  return { manifest, config };
}

/** Tars a directory (an OCI layout) into an oci-archive. */
export async function tarDir(dir: string, file: string): Promise<void> {
  await run('tar', ['-C', dir, '-cf', file, '.']);
}

/** One path of a snapshot. */
export interface SnapEntry {
  type: 'file' | 'dir' | 'symlink' | 'fifo' | 'char' | 'block' | 'socket';
  mode: number;
  uid: number;
  gid: number;
  size: number;
  hash?: string;
  target?: string;
  rdev?: string;
  xattrs: Record<string, string>;
  /** Identity of the inode within the snapshot (for hard-link groups). */
  inode: string;
  mtimeNs?: bigint;
}

/** A tree, by byte-string path relative to its root ('' is the root). */
export type Snapshot = Map<string, SnapEntry>;

const IGNORED_XATTRS = new Set(['security.selinux']);

/** Snapshots a directory tree without following symlinks. */
export async function snapshot(root: string, layerTag = ''): Promise<Snapshot> {
  const out: Snapshot = new Map();
  const walk = async (rel: string): Promise<void> => {
    const p = Buffer.from(rel === '' ? root : `${Buffer.from(root).toString('latin1')}/${rel}`, rel === '' ? 'utf8' : 'latin1');
    const st = await lstat(p, { bigint: true });
    const m = Number(st.mode);
    const type = st.isDirectory() ? 'dir' : st.isFile() ? 'file' : st.isSymbolicLink() ? 'symlink' : st.isFIFO() ? 'fifo' : st.isCharacterDevice() ? 'char' : st.isBlockDevice() ? 'block' : 'socket';
    const xattrs: Record<string, string> = {};
    for (const n of await sys.llistxattr(p)) {
      if (IGNORED_XATTRS.has(n)) continue;
      const v = await sys.lgetxattr(p, n);
      if (v) xattrs[n] = v.toString('hex');
    }
    const e: SnapEntry = { type, mode: m & 0o7777, uid: Number(st.uid), gid: Number(st.gid), size: type === 'file' ? Number(st.size) : 0, xattrs, inode: `${layerTag}:${st.ino}`, mtimeNs: st.mtimeNs };
    if (type === 'file') e.hash = createHash('sha256').update(await readFile(p)).digest('hex');
    if (type === 'symlink') e.target = (await readlink(p, { encoding: 'buffer' })).toString('latin1');
    if (type === 'char' || type === 'block') e.rdev = `${sys.major(Number(st.rdev))},${sys.minor(Number(st.rdev))}`;
    out.set(rel, e);
    if (type === 'dir') {
      for (const name of await readdir(p, { encoding: 'buffer' })) {
        const n = name.toString('latin1');
        await walk(rel === '' ? n : `${rel}/${n}`);
      }
    }
  };
  await walk('');
  return out;
}

/**
 * Applies overlay-format layer snapshots bottom to top, as the kernel's overlayfs would show
 * them: a 0/0 char device hides the path below, `trusted.overlay.opaque=y` hides everything
 * below a directory, a non-directory replaces a whole lower subtree.
 */
export function flatten(layers: Snapshot[]): Snapshot {
  const merged: Snapshot = new Map();
  const dropUnder = (p: string, self: boolean): void => {
    for (const k of [...merged.keys()]) if ((self && k === p) || (p === '' ? k !== '' : k.startsWith(p + '/'))) merged.delete(k);
  };
  for (const layer of layers) {
    const paths = [...layer.keys()].sort();
    for (const p of paths) {
      const e = layer.get(p)!;
      if (e.type === 'dir' && e.xattrs['trusted.overlay.opaque'] === '79') dropUnder(p, false);
    }
    for (const p of paths) {
      const e = layer.get(p)!;
      const lower = merged.get(p);
      if (e.type === 'char' && e.rdev === '0,0') {
        dropUnder(p, true);
        continue;
      }
      if (e.type !== 'dir' || (lower && lower.type !== 'dir')) dropUnder(p, true);
      const { ['trusted.overlay.opaque']: _o, ...xattrs } = e.xattrs;
      merged.set(p, { ...e, xattrs });
    }
  }
  return merged;
}

/** Comparable form: hard-link groups by sibling paths instead of inode numbers. */
export function canonical(s: Snapshot, opts: { rootMeta?: boolean } = {}): Record<string, Omit<SnapEntry, 'inode' | 'mtimeNs'> & { links?: string[] }> {
  const groups = new Map<string, string[]>();
  for (const [p, e] of s) if (e.type !== 'dir') groups.set(e.inode, [...(groups.get(e.inode) ?? []), p]);
  const out: Record<string, Omit<SnapEntry, 'inode' | 'mtimeNs'> & { links?: string[] }> = {};
  for (const [p, e] of [...s].sort(([a], [b]) => (a < b ? -1 : 1))) {
    if (p === '' && !opts.rootMeta) continue;
    const { inode, mtimeNs: _m, ...rest } = e;
    const g = groups.get(inode);
    out[p] = g && g.length > 1 ? { ...rest, links: [...g].sort() } : rest;
  }
  return out;
}

/** The diff directories of an image in a store, via `layerfs inspect`. */
export async function storeLayerDirs(root: string, image: string): Promise<string[]> {
  const r = await layerfs(root, ['inspect', image]);
  if (r.code !== 0) throw new Error(`inspect failed: ${r.stderr}`);
  const info = JSON.parse(r.stdout) as { Store: { Layers: { Diff: string }[] } }[];
  return info[0]!.Store.Layers.map((l) => l.Diff);
}

/** Snapshot of what an image in the store looks like flattened. */
export async function flattenedStoreImage(root: string, image: string): Promise<Snapshot> {
  const dirs = await storeLayerDirs(root, image);
  return flatten(await Promise.all(dirs.map((d, i) => snapshot(d, `L${i}`))));
}

/** A small sample image as an oci-archive (for the mount tests and the README). */
export async function buildSampleImage(work: string, file = join(work, 'sample.tar')): Promise<string> {
  const layout = join(work, 'sample-oci');
  await umociImage(layout, 'latest', [
    async (r) => {
      await mkdir(join(r, 'etc'), { recursive: true });
      await writeFile(join(r, 'etc', 'hostname'), 'sample\n');
      await mkdir(join(r, 'data', 'old'), { recursive: true });
      await writeFile(join(r, 'data', 'old', 'a.txt'), 'old a\n');
      await writeFile(join(r, 'data', 'keep.txt'), 'keep\n');
    },
    async (r) => {
      await rm(join(r, 'data', 'old'), { recursive: true });
      await writeFile(join(r, 'data', 'new.txt'), 'new\n');
    },
  ], work);
  await tarDir(layout, file);
  return file;
}
