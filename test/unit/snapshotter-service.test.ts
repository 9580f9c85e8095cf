/**
 * The snapshots gRPC service as containerd's proxy client sees it, with a real
 * @grpc/grpc-js client on the unix socket and the same .proto: mounts of every kind,
 * parent chains, labels and filters, usage, cleanup, restarts, and the gRPC codes of bad
 * input (each leaving the state as it was). The containerd end-to-end tests are in
 * test/mount/containerd-snapshotter.test.ts.
 */
import * as grpc from '@grpc/grpc-js';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadSnapshotsService, serveSnapshotter } from '../../src/snapshotter/grpc-server.js';
import { Snapshotter } from '../../src/snapshotter/snapshotter.js';
import { MOUNT_PROGRAM_READS_AUFS } from '../../src/overlay/index.js';
import { LowerIndex } from '../../src/union/index.js';
import { tempDir } from '../helpers/temp.js';

type Mount = { type: string; source: string; options: string[] };
type Info = { name: string; parent: string; kind: string; labels: Record<string, string>; created_at: { seconds: number } };
type Call = (req: object) => Promise<Record<string, unknown>>;

interface Client {
  raw: grpc.Client & Record<string, (...a: unknown[]) => unknown>;
  call(method: string, req: object): Promise<Record<string, unknown>>;
  list(filters?: string[]): Promise<Info[]>;
}

function client(address: string): Client {
  const Ctor = grpc.makeClientConstructor(loadSnapshotsService(), 'Snapshots');
  const raw = new Ctor(`unix:${address}`, grpc.credentials.createInsecure()) as Client['raw'];
  return {
    raw,
    call: (method, req) =>
      new Promise((resolve, reject) => {
        (raw[method] as (r: object, cb: (e: grpc.ServiceError | null, v: Record<string, unknown>) => void) => void).call(raw, req, (err, v) => (err ? reject(err) : resolve(v)));
      }),
    list: (filters = []) =>
      new Promise((resolve, reject) => {
        const out: Info[] = [];
        const stream = (raw.List as (r: object) => grpc.ClientReadableStream<{ info: Info[] }>).call(raw, { filters });
        stream.on('data', (m: { info: Info[] }) => out.push(...m.info));
        stream.on('error', reject);
        stream.on('end', () => resolve(out.sort((a, b) => a.name.localeCompare(b.name))));
      }),
  };
}

/** The gRPC status code of a failed call. */
async function codeOf(p: Promise<unknown>): Promise<grpc.status | 'ok'> {
  try {
    await p;
    return 'ok';
  } catch (err) {
    return (err as grpc.ServiceError).code;
  }
}

describe('layerfs snapshotter gRPC service', () => {
  let dir: string;
  let state: string;
  let address: string;
  let server: { shutdown(): Promise<void> } | undefined;
  let c: Client;
  const log: string[] = [];

  const start = async (): Promise<void> => {
    const sn = new Snapshotter({ stateDir: state });
    await sn.open();
    server = await serveSnapshotter(sn, address, (l) => log.push(l));
    c = client(address);
  };
  const stop = async (): Promise<void> => {
    c?.raw.close();
    await server?.shutdown();
    server = undefined;
  };
  const prepare: Call = (r) => c.call('Prepare', r);
  const view: Call = (r) => c.call('View', r);
  const commit: Call = (r) => c.call('Commit', r);
  const folders = async (): Promise<string[]> => (await readdir(join(state, 'snapshots'))).sort();
  const meta = async (): Promise<{ snapshots: Record<string, { id: string }> }> => JSON.parse(await readFile(join(state, 'metadata.json'), 'utf8')) as { snapshots: Record<string, { id: string }> };
  /** Every folder belongs to a snapshot and every snapshot has its folder. */
  const consistent = async (): Promise<void> => {
    const ids = Object.values((await meta().catch(() => ({ snapshots: {} }))).snapshots).map((s) => s.id).sort();
    expect(await folders()).toEqual(ids.sort());
  };

  beforeEach(async () => {
    dir = await tempDir('layerfs-snap-');
    state = join(dir, 'state');
    address = join(dir, 'snap.sock');
    await start();
  });
  afterEach(stop);

  it('mounts: bind for a base, fuse3.layerfs-overlay over a parent chain (nearest first), read-only views', async () => {
    const base = (await prepare({ key: 'base', parent: '' })).mounts as Mount[];
    expect(base).toEqual([{ type: 'bind', source: join(state, 'snapshots', '1', 'fs'), target: '', options: ['rw', 'rbind'] }]);
    await commit({ name: 'c1', key: 'base' });
    // A chain ten layers deep.
    let parent = 'c1';
    for (let i = 2; i <= 10; i++) {
      await prepare({ key: `a${i}`, parent });
      await commit({ name: `c${i}`, key: `a${i}` });
      parent = `c${i}`;
    }
    const top = (await prepare({ key: 'top', parent: 'c10' })).mounts as Mount[];
    const idOf = async (name: string): Promise<string> => (await meta()).snapshots[name]!.id;
    const lowers = await Promise.all(Array.from({ length: 10 }, (_, i) => idOf(`c${10 - i}`)));
    expect(top).toEqual([
      {
        type: 'fuse3.layerfs-overlay',
        source: 'layerfs',
        target: '',
        options: [
          `lowerdir=${lowers.map((id) => join(state, 'snapshots', id, 'fs')).join(':')}`,
          `layerfs_index=${join(state, 'snapshots', lowers[0]!, 'lower-index')}`,
          `upperdir=${join(state, 'snapshots', await idOf('top'), 'fs')}`,
          `workdir=${join(state, 'snapshots', await idOf('top'), 'work')}`,
        ],
      },
    ]);
    // The chain's index was built by the service, once, beside the parent's layer.
    expect(existsSync(join(state, 'snapshots', lowers[0]!, 'lower-index'))).toBe(true);
    // …as layerfs-overlay reads the layers (AUFS whiteouts too), so a mount loads it rather
    // than rebuilding and replacing it (which the next Prepare undid, and so on).
    const asMounted = await LowerIndex.open(lowers.map((id) => join(state, 'snapshots', id, 'fs')), {
      cacheFile: join(state, 'snapshots', lowers[0]!, 'lower-index'),
      aufsWhiteouts: MOUNT_PROGRAM_READS_AUFS,
    });
    expect(asMounted.origin).toEqual({ loaded: true });
    expect(((await c.call('Mounts', { key: 'top' })).mounts as Mount[])).toEqual(top);
    const v2 = (await view({ key: 'v2', parent: 'c2' })).mounts as Mount[];
    expect(v2[0]!.type).toBe('fuse3.layerfs-overlay');
    expect(v2[0]!.options.at(-1)).toBe('ro');
    expect(v2[0]!.options.some((o) => o.startsWith('upperdir='))).toBe(false);
    expect((await view({ key: 'v1', parent: 'c1' })).mounts).toEqual([{ type: 'bind', source: join(state, 'snapshots', '1', 'fs'), target: '', options: ['ro', 'rbind'] }]);
    expect(((await view({ key: 'v0', parent: '' })).mounts as Mount[])[0]!.options).toEqual(['ro', 'rbind']);
    // A committed layer keeps no work folder.
    expect(existsSync(join(state, 'snapshots', '1', 'work'))).toBe(false);
    await consistent();
  });

  it('stat, labels, update masks and List filters as containerd defines them', async () => {
    const before = Date.now() / 1000;
    await prepare({ key: 'b', parent: '', labels: { 'containerd.io/snapshot.ref': 'sha256:aa', team: 'x' } });
    await commit({ name: 'base', key: 'b', labels: { 'containerd.io/snapshot.ref': 'sha256:aa' } });
    await prepare({ key: 'work-1', parent: 'base', labels: { team: 'x', 'a.b': 'dotted' } });
    await view({ key: 'look', parent: 'base' });
    const info = (await c.call('Stat', { key: 'work-1' })).info as Info;
    expect(info).toMatchObject({ name: 'work-1', parent: 'base', kind: 'ACTIVE', labels: { team: 'x', 'a.b': 'dotted' } });
    expect(info.created_at.seconds).toBeGreaterThanOrEqual(Math.floor(before));
    expect(((await c.call('Stat', { key: 'base' })).info as Info).labels).toEqual({ 'containerd.io/snapshot.ref': 'sha256:aa' });

    const upd = (await c.call('Update', { info: { name: 'work-1', labels: { team: 'y' } }, update_mask: { paths: ['labels.team', 'labels.a.b'] } })).info as Info;
    expect(upd.labels).toEqual({ team: 'y' });
    expect(((await c.call('Update', { info: { name: 'work-1', labels: { only: '1' } } })).info as Info).labels).toEqual({ only: '1' });
    expect(await codeOf(c.call('Update', { info: { name: 'work-1', parent: 'x' }, update_mask: { paths: ['parent'] } }))).toBe(grpc.status.INVALID_ARGUMENT);

    const names = async (f: string[]): Promise<string[]> => (await c.list(f)).map((i) => i.name);
    expect(await names([])).toEqual(['base', 'look', 'work-1']);
    expect(await names(['kind==active'])).toEqual(['work-1']);
    expect(await names(['parent==base,kind==view'])).toEqual(['look']);
    expect(await names(['kind==view', 'name~=^ba'])).toEqual(['base', 'look']);
    expect(await names(['labels."containerd.io/snapshot.ref"==sha256:aa'])).toEqual(['base']);
    expect(await names(['labels.only'])).toEqual(['work-1']);
    expect(await names(['name!=base'])).toEqual(['look', 'work-1']);
    expect(await codeOf(c.list(['name=="unterminated']))).toBe(grpc.status.INVALID_ARGUMENT);
  });

  it('bad input gets the gRPC code containerd expects and changes nothing', async () => {
    await prepare({ key: 'b', parent: '' });
    await commit({ name: 'base', key: 'b' });
    await prepare({ key: 'act', parent: 'base' });
    await view({ key: 'v', parent: 'base' });
    const snapshotBefore = await c.list();
    const metaBefore = await readFile(join(state, 'metadata.json'), 'utf8');

    expect(await codeOf(prepare({ key: 'act', parent: 'base' }))).toBe(grpc.status.ALREADY_EXISTS); // key reused
    expect(await codeOf(prepare({ key: 'base', parent: '' }))).toBe(grpc.status.ALREADY_EXISTS); // names and keys share one namespace
    expect(await codeOf(prepare({ key: 'n', parent: 'nope' }))).toBe(grpc.status.NOT_FOUND); // parent does not exist
    expect(await codeOf(prepare({ key: 'n', parent: 'act' }))).toBe(grpc.status.INVALID_ARGUMENT); // parent is active
    expect(await codeOf(view({ key: 'n', parent: 'v' }))).toBe(grpc.status.INVALID_ARGUMENT); // parent is a view
    expect(await codeOf(prepare({ key: '', parent: '' }))).toBe(grpc.status.INVALID_ARGUMENT);
    expect(await codeOf(prepare({ key: 'n', parent: '', labels: { big: 'x'.repeat(5000) } }))).toBe(grpc.status.INVALID_ARGUMENT);
    expect(await codeOf(commit({ name: 'c', key: 'v' }))).toBe(grpc.status.FAILED_PRECONDITION); // commit of a view
    expect(await codeOf(commit({ name: 'c', key: 'base' }))).toBe(grpc.status.FAILED_PRECONDITION); // commit of a committed one
    expect(await codeOf(commit({ name: 'base', key: 'act' }))).toBe(grpc.status.ALREADY_EXISTS);
    expect(await codeOf(commit({ name: 'c', key: 'unknown' }))).toBe(grpc.status.NOT_FOUND);
    expect(await codeOf(c.call('Remove', { key: 'base' }))).toBe(grpc.status.FAILED_PRECONDITION); // has children
    expect(await codeOf(c.call('Remove', { key: 'unknown' }))).toBe(grpc.status.NOT_FOUND);
    expect(await codeOf(c.call('Stat', { key: 'unknown' }))).toBe(grpc.status.NOT_FOUND);
    expect(await codeOf(c.call('Mounts', { key: 'base' }))).toBe(grpc.status.FAILED_PRECONDITION);
    expect(await codeOf(c.call('Usage', { key: 'unknown' }))).toBe(grpc.status.NOT_FOUND);

    expect(await c.list()).toEqual(snapshotBefore);
    expect(await readFile(join(state, 'metadata.json'), 'utf8')).toBe(metaBefore);
    await consistent();
    // Remove in child-first order works.
    for (const k of ['act', 'v', 'base']) await c.call('Remove', { key: k });
    expect(await c.list()).toEqual([]);
    await consistent();
  });

  it('usage: an active layer measured live, a committed one as of its commit', async () => {
    await prepare({ key: 'b', parent: '' });
    const fs = join(state, 'snapshots', '1', 'fs');
    await writeFile(join(fs, 'data'), Buffer.alloc(64 * 1024, 1));
    const u = await c.call('Usage', { key: 'b' });
    expect(u.inodes).toBe(2);
    expect(u.size as number).toBeGreaterThanOrEqual(64 * 1024);
    await commit({ name: 'c', key: 'b' });
    expect(await c.call('Usage', { key: 'c' })).toEqual(u);
  });

  it('Cleanup removes folders no snapshot names (interrupted creates and removes), nothing else', async () => {
    await prepare({ key: 'keep', parent: '' });
    await mkdir(join(state, 'snapshots', '999', 'fs'), { recursive: true });
    await mkdir(join(state, 'snapshots', 'tmp-1-abcdef'), { recursive: true });
    await c.call('Cleanup', {});
    expect(await folders()).toEqual(['1']);
    expect((await c.list()).map((i) => i.name)).toEqual(['keep']);
  });

  it('a restart keeps every snapshot; a socket left by a dead server is replaced, a live one refused', async () => {
    await prepare({ key: 'b', parent: '' });
    await commit({ name: 'base', key: 'b', labels: { l: '1' } });
    await prepare({ key: 'a', parent: 'base' });
    const before = await c.list();
    await stop();
    // A server that died without removing its socket.
    const dead = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(address)}, () => process.kill(process.pid, 'SIGKILL'))`]);
    await new Promise((r) => dead.on('exit', r));
    expect(existsSync(address)).toBe(true);
    await start();
    expect(await c.list()).toEqual(before);
    // A second server on the same socket while the first one lives.
    const other = new Snapshotter({ stateDir: join(dir, 'other') });
    await other.open();
    await expect(serveSnapshotter(other, address, () => undefined)).rejects.toThrow(/already listening/);
    expect(await c.list()).toEqual(before);
  });

  it('a damaged metadata file stops the start with a clear error and is left as it was', async () => {
    await stop();
    await writeFile(join(state, 'metadata.json'), '{"version": 1, "nextId": 2, "snap');
    const sn = new Snapshotter({ stateDir: state });
    await expect(sn.open()).rejects.toThrow(/not valid JSON/);
    expect(await readFile(join(state, 'metadata.json'), 'utf8')).toBe('{"version": 1, "nextId": 2, "snap');
  });

  it('clients that go away in the middle of Prepare leave a consistent state', async () => {
    await prepare({ key: 'b', parent: '' });
    await commit({ name: 'base', key: 'b' });
    const calls = Array.from({ length: 30 }, (_, i) => {
      const call = (c.raw.Prepare as (r: object, cb: () => void) => grpc.ClientUnaryCall).call(c.raw, { key: `k${i}`, parent: 'base' }, () => undefined);
      if (i % 2 === 0) call.cancel();
      return call;
    });
    expect(calls).toHaveLength(30);
    // Wait until the server has answered every call it received (the list settles).
    let last = -1;
    for (;;) {
      await new Promise((r) => setTimeout(r, 200));
      const n = (await c.list()).length;
      if (n === last) break;
      last = n;
    }
    await consistent();
    // Whatever was created is whole: it mounts and can be removed.
    for (const i of await c.list()) {
      if (i.kind !== 'ACTIVE') continue;
      expect(((await c.call('Mounts', { key: i.name })).mounts as Mount[])[0]!.type).toBe('fuse3.layerfs-overlay');
      await c.call('Remove', { key: i.name });
    }
    await consistent();
  });
});
