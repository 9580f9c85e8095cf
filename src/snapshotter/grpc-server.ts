/**
 * containerd.services.snapshots.v1.Snapshots over gRPC (@grpc/grpc-js) on a unix socket:
 * the protocol containerd speaks to a `proxy_plugins` snapshotter. Each call is handed to
 * Snapshotter; LayerfsError codes become the gRPC codes containerd's errdefs turns back
 * into ErrNotFound, ErrAlreadyExists, ErrFailedPrecondition, ErrInvalidArgument.
 *
 * The socket: a file left by a dead server (connect refused) is replaced; a live server
 * on it is an IN_USE error, never silently displaced.
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { existsSync } from 'node:fs';
import { mkdir, unlink } from 'node:fs/promises';
import { connect } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LayerfsError, hasErrnoCode, type ErrorCode } from '../core/errors.js';
import type { MountSpec } from './mounts.js';
import type { SnapshotInfo, Snapshotter } from './snapshotter.js';

/** The folder with snapshots.proto (src/, also when running from dist/). */
function protoDir(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  for (const d of [join(here, 'proto'), join(here, '..', '..', 'src', 'snapshotter', 'proto')]) {
    if (existsSync(join(d, 'snapshots.proto'))) return d;
  }
  throw new LayerfsError('FAILED_PRECONDITION', 'snapshots.proto not found beside the snapshotter module');
}

/** The service definition, loaded from our .proto. */
export function loadSnapshotsService(): grpc.ServiceDefinition {
  const dir = protoDir();
  const def = protoLoader.loadSync(join(dir, 'snapshots.proto'), { keepCase: true, longs: Number, enums: String, defaults: true, includeDirs: [dir] });
  const pkg = grpc.loadPackageDefinition(def) as unknown as { containerd: { services: { snapshots: { v1: { Snapshots: { service: grpc.ServiceDefinition } } } } } };
  return pkg.containerd.services.snapshots.v1.Snapshots.service;
}

const CODES: Partial<Record<ErrorCode, grpc.status>> = {
  NOT_FOUND: grpc.status.NOT_FOUND,
  ALREADY_EXISTS: grpc.status.ALREADY_EXISTS,
  FAILED_PRECONDITION: grpc.status.FAILED_PRECONDITION,
  IN_USE: grpc.status.FAILED_PRECONDITION,
  INVALID_ARGUMENT: grpc.status.INVALID_ARGUMENT,
};

/** A thrown error as a gRPC status. */
export function toStatus(err: unknown): Partial<grpc.StatusObject> {
  if (err instanceof LayerfsError) return { code: CODES[err.code] ?? grpc.status.UNKNOWN, details: err.message };
  return { code: grpc.status.UNKNOWN, details: (err as Error)?.message ?? String(err) };
}

function timestamp(iso: string): { seconds: number; nanos: number } {
  const ms = Date.parse(iso);
  return { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1e6 };
}

const KIND = { view: 'VIEW', active: 'ACTIVE', committed: 'COMMITTED' } as const;

function wireInfo(i: SnapshotInfo): object {
  return { name: i.name, parent: i.parent, kind: KIND[i.kind], created_at: timestamp(i.created), updated_at: timestamp(i.updated), labels: i.labels };
}

function wireMounts(mounts: MountSpec[]): object {
  return { mounts };
}

type Req = Record<string, unknown> & { key?: string; parent?: string; name?: string; labels?: Record<string, string> };

/** Wraps an async handler: its result or its error becomes the reply. */
/** Calls that change state: logged one line each (with their outcome), as containerd logs them at debug. */
const LOGGED = new Set(['Prepare', 'View', 'Commit', 'Remove', 'Update', 'Cleanup']);

function unary(log: (line: string) => void, op: string, fn: (req: Req) => Promise<object>): grpc.handleUnaryCall<Req, object> {
  return (call, callback) => {
    const r = call.request;
    const what = `${op} ${[r.name, r.key, r.parent].filter((x) => x).map((x) => JSON.stringify(x)).join(' ')}`;
    fn(r).then(
      (reply) => {
        if (LOGGED.has(op)) log(`${what}: ok`);
        callback(null, reply);
      },
      (err: unknown) => {
        const status = toStatus(err);
        log(`${what}: ${status.code === grpc.status.UNKNOWN ? ((err as Error)?.stack ?? String(err)) : status.details}`);
        callback(status as grpc.ServiceError, null);
      },
    );
  };
}

/** The handlers of the Snapshots service. */
export function snapshotsHandlers(sn: Snapshotter, log: (line: string) => void): grpc.UntypedServiceImplementation {
  return {
    Prepare: unary(log, 'Prepare', async (r) => wireMounts(await sn.create('active', r.key ?? '', r.parent ?? '', r.labels ?? {}))),
    View: unary(log, 'View', async (r) => wireMounts(await sn.create('view', r.key ?? '', r.parent ?? '', r.labels ?? {}))),
    Mounts: unary(log, 'Mounts', async (r) => wireMounts(await sn.mounts(r.key ?? ''))),
    Commit: unary(log, 'Commit', async (r) => (await sn.commit(r.name ?? '', r.key ?? '', r.labels ?? {}), {})),
    Remove: unary(log, 'Remove', async (r) => (await sn.remove(r.key ?? ''), {})),
    Stat: unary(log, 'Stat', async (r) => ({ info: wireInfo(await sn.stat(r.key ?? '')) })),
    Update: unary(log, 'Update', async (r) => {
      const info = (r.info ?? {}) as { name?: string; labels?: Record<string, string> };
      const mask = (r.update_mask ?? {}) as { paths?: string[] };
      return { info: wireInfo(await sn.update(info.name ?? '', info.labels ?? {}, mask.paths ?? [])) };
    }),
    List: (call: grpc.ServerWritableStream<{ filters?: string[] }, object>) => {
      sn.list(call.request.filters ?? []).then(
        (infos) => {
          // containerd batches List replies; 100 infos a message stays far below gRPC's 4 MiB.
          for (let i = 0; i < infos.length; i += 100) call.write({ info: infos.slice(i, i + 100).map(wireInfo) });
          call.end();
        },
        (err: unknown) => {
          log(`List: ${toStatus(err).details}`);
          // grpc-js sends a server stream's status from its 'error' event.
          call.emit('error', toStatus(err));
        },
      );
    },
    Usage: unary(log, 'Usage', async (r) => sn.usage(r.key ?? '')),
    Cleanup: unary(log, 'Cleanup', async () => (await sn.cleanup(), {})),
  };
}

/** Replaces a socket file left by a dead process; refuses one a live server answers on. */
async function claimSocket(path: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  if (!existsSync(path)) return;
  const alive = await new Promise<boolean>((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
  if (alive) throw new LayerfsError('IN_USE', `a server is already listening on ${path}`, { hint: 'stop it first, or choose another --address' });
  await unlink(path).catch((err: unknown) => {
    if (!hasErrnoCode(err, 'ENOENT')) throw err;
  });
}

/** Serves `sn` on the unix socket `address` until `shutdown()`. */
export async function serveSnapshotter(sn: Snapshotter, address: string, log: (line: string) => void): Promise<{ shutdown(): Promise<void> }> {
  await claimSocket(address);
  const server = new grpc.Server();
  server.addService(loadSnapshotsService(), snapshotsHandlers(sn, log));
  await new Promise<void>((resolve, reject) =>
    server.bindAsync(`unix:${address}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(new LayerfsError('IO', `cannot listen on ${address}: ${err.message}`, { cause: err })) : resolve())),
  );
  return {
    shutdown: () =>
      new Promise<void>((resolve) => {
        // Calls in flight get a few seconds to finish; then the connections are cut.
        const force = setTimeout(() => server.forceShutdown(), 5000);
        server.tryShutdown(() => {
          clearTimeout(force);
          void unlink(address).catch(() => undefined).then(() => resolve());
        });
      }),
  };
}
