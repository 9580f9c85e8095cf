/**
 * `layerfs ui`: a local web page (bound to 127.0.0.1 only) that draws an image's layer
 * stack as stacked sheets, the merged file tree colored by the layer serving each path,
 * each layer's added / modified / removed files, and — for a container — its writable
 * layer on top, updated live from its copy-on-write events (server-sent events).
 *
 * And the recent builds: each step, CACHED or why it missed, and the layer it produced.
 *
 * JSON API (all read-only): /api/subjects, /api/view?image=REF or ?container=NAME,
 * /api/events?container=NAME (text/event-stream), /api/builds.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { LayerfsError } from '../core/errors.js';
import type { Digest } from '../core/digest.js';
import type { Store } from '../store/index.js';
import { joinPath } from '../overlay/index.js';
import { analyzeImage, containerDiff, type CowEvent, type ImageStack, layerOfIndex, loadImageStack, openContainerView, UpperWatcher } from '../inspect/index.js';
import { UI_PAGE } from './ui-page.js';

/** A container as the page needs it (the CLI supplies these from the supervisor). */
export interface UiContainer {
  name: string;
  image: Digest;
  imageRef: string;
  state: string;
  mountpoint: string | null;
  upperDir: string;
}

/** What the server needs. */
export interface UiOptions {
  store: Store;
  containers: () => Promise<UiContainer[]>;
  port: number;
  /** Recent builds, newest first (the CLI supplies them from src/build/build-log.ts). */
  builds?: () => Promise<unknown[]>;
  /** Most tree entries sent per view (a huge image still draws). */
  maxTreeEntries?: number;
}

const show = (p: string): string => Buffer.from(p, 'latin1').toString('utf8');

/** Starts the server on 127.0.0.1; resolves when it listens. */
export async function startUiServer(opts: UiOptions): Promise<{ server: Server; url: string }> {
  const server = createServer((req, res) => {
    handle(opts, req, res).catch((err: unknown) => {
      if (!res.headersSent) {
        const code = err instanceof LayerfsError && err.code === 'NOT_FOUND' ? 404 : 500;
        res.writeHead(code, { 'content-type': 'application/json' });
      }
      res.end(JSON.stringify({ error: (err as Error).message }));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return { server, url: `http://127.0.0.1:${port}/` };
}

async function handle(opts: UiOptions, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://127.0.0.1');
  const json = (v: unknown): void => {
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    res.end(JSON.stringify(v));
  };
  if (url.pathname === '/') {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(UI_PAGE);
    return;
  }
  if (url.pathname === '/api/subjects') {
    const images = [];
    for (const id of await opts.store.images.list()) images.push({ id, tags: await opts.store.tags.tagsOf(id) });
    const containers = (await opts.containers()).map(({ upperDir: _u, ...c }) => c);
    return json({ images, containers });
  }
  if (url.pathname === '/api/builds') return json(opts.builds ? await opts.builds() : []);
  if (url.pathname === '/api/view') return json(await view(opts, url.searchParams));
  if (url.pathname === '/api/events') return events(opts, url.searchParams.get('container') ?? '', req, res);
  res.writeHead(404, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ error: 'not found' }));
}

async function container(opts: UiOptions, name: string): Promise<UiContainer> {
  const c = (await opts.containers()).find((x) => x.name === name);
  if (!c) throw new LayerfsError('NOT_FOUND', `no such container: ${name}`);
  return c;
}

/** Layers with their file changes, and the merged tree with the layer serving each path. */
async function view(opts: UiOptions, q: URLSearchParams): Promise<unknown> {
  const max = opts.maxTreeEntries ?? 20000;
  const name = q.get('container');
  let stack: ImageStack;
  const tree: { path: string; dir: boolean; layer: number | 'upper' }[] = [];
  let upperChanges: { kind: string; path: string }[] | undefined;
  if (name) {
    const c = await container(opts, name);
    const cv = await openContainerView(opts.store, c.image, c.upperDir);
    stack = cv.stack;
    // The writable layer's sheet lists these, as `layerfs diff` prints them.
    upperChanges = (await containerDiff(cv)).map((ch) => ({ kind: ch.kind, path: show(ch.path) }));
    const walk = async (dir: string): Promise<void> => {
      const names = (await cv.view.readdir(cv.view.resolve(dir))).map((e) => e.name).sort();
      for (const n of names) {
        if (tree.length >= max) return;
        const path = joinPath(dir, n);
        const r = cv.view.resolve(path);
        // In the writable layer (copied up or created) or served by an image layer.
        tree.push({ path: show(path), dir: r.isDir, layer: r.upper !== undefined ? 'upper' : layerOfIndex(stack, r.lower!.layer).position });
        if (r.isDir) await walk(path);
      }
    };
    await walk('/');
  } else {
    const ref = q.get('image');
    if (!ref) throw new LayerfsError('INVALID_ARGUMENT', 'give ?image=REF or ?container=NAME');
    stack = await loadImageStack(opts.store, await opts.store.resolveImage(ref));
    const walk = (dir: string): void => {
      for (const name of [...(stack.index.get(dir)?.children ?? [])].sort()) {
        if (tree.length >= max) return;
        const path = joinPath(dir, name);
        const e = stack.index.get(path)!;
        const isDir = e.children !== undefined;
        tree.push({ path: show(path), dir: isDir, layer: layerOfIndex(stack, e.layer).position });
        if (isDir) walk(path);
      }
    };
    walk('/');
  }
  const analysis = await analyzeImage(stack);
  return {
    subject: name ? { container: name } : { image: q.get('image') },
    layers: analysis.layers.map((r) => ({
      position: r.layer.position,
      chainId: r.layer.chainId,
      createdBy: r.layer.createdBy,
      size: r.layer.size,
      bytesWasted: r.bytesWasted,
      added: r.added.map(show),
      modified: r.modified.map(show),
      removed: r.removed.map(show),
    })),
    wastedBytes: analysis.wastedBytes,
    efficiency: analysis.efficiency,
    ...(upperChanges ? { upperChanges } : {}),
    tree,
    truncated: tree.length >= max,
  };
}

/** Server-sent events: the container's copy-on-write events as they happen. */
async function events(opts: UiOptions, name: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const c = await container(opts, name);
  const stack = await loadImageStack(opts.store, c.image);
  const watcher = new UpperWatcher(c.upperDir, stack);
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
  const send = (e: CowEvent): void => {
    const out: Record<string, unknown> = { time: e.time, event: e.event, path: show(e.path) };
    if (e.from !== undefined) out.from = show(e.from);
    if (e.layer) out.layer = e.layer.position;
    if (e.bytes !== undefined) out.bytes = e.bytes;
    res.write(`data: ${JSON.stringify(out)}\n\n`);
  };
  watcher.on('event', send);
  watcher.on('error', () => res.end());
  watcher.on('end', () => res.end());
  req.on('close', () => watcher.close());
  await watcher.start();
  // The page waits for this before it says "live".
  res.write('event: ready\ndata: {}\n\n');
}
