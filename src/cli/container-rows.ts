/**
 * Containers as `ps`, `ps --format` and `--filter` see them: one row per container with
 * docker's field names (ID, Image, Command, CreatedAt, RunningFor, Status, State, Names)
 * plus layerfs's Mountpoint, built from the supervisor's record and, for containers made
 * by `run`, run.json.
 *
 * State: a run container is created, running or exited (as docker's); a container made by
 * `mount` is mounted (live: listed by `ps` without -a, as a running one is), or created /
 * unmounted (listed with -a only).
 */
import { LayerfsError } from '../core/errors.js';
import { describeRun, readRunState, type RunState } from '../sandbox/index.js';
import { type DamageRecord, readDamage, type Store } from '../store/index.js';
import { type ContainerPaths, type ContainerRecord, Supervisor } from '../supervisor/index.js';
import { timeAgo } from './verbs/format.js';

export type ContainerStatus = 'created' | 'running' | 'exited' | 'mounted' | 'unmounted';

/** One row: the docker-named fields first, the sources after (not printed by `{{json .}}`). */
export interface ContainerRow {
  ID: string;
  Image: string;
  Command: string;
  CreatedAt: string;
  RunningFor: string;
  Status: string;
  State: ContainerStatus;
  Names: string;
  Mountpoint: string;
  Labels: string;
  Ports: string;
}

export interface ContainerEntry {
  row: ContainerRow;
  record: ContainerRecord;
  paths: ContainerPaths;
  run: RunState | undefined;
  /** A layer file this container's mount found disagreeing with the index (damage.json). */
  damage: DamageRecord | undefined;
}

/** Docker's CreatedAt form: "2026-12-05 07:14:06 +0000 UTC". */
function dockerTime(iso: string): string {
  return `${iso.replace('T', ' ').replace(/\.\d+Z$|Z$/, '')} +0000 UTC`;
}

function stateOf(c: ContainerRecord, run: RunState | undefined): ContainerStatus {
  if (run) return run.status;
  return c.state === 'mounted' ? 'mounted' : c.state === 'created' ? 'created' : 'unmounted';
}

/** Whether `ps` without -a lists it: a process runs in it, or it is mounted. */
export function isLive(e: ContainerEntry): boolean {
  return e.row.State === 'running' || e.row.State === 'mounted';
}

/** Every container, oldest first, with its row (`full`: ids not truncated). */
export async function listContainerEntries(store: Store, full = false): Promise<ContainerEntry[]> {
  const sup = new Supervisor(store);
  const records = await sup.list();
  return Promise.all(
    records.map(async (c) => {
      const { paths } = sup.handle(c);
      const dir = paths.dir;
      const run = await readRunState(dir).catch(() => undefined);
      const damage = await readDamage(dir);
      const state = stateOf(c, run);
      const command = run ? run.command.join(' ') : '';
      const row: ContainerRow = {
        ID: full ? c.id : c.id.slice(0, 12),
        Image: damage ? `${c.imageRef} (image damaged)` : c.imageRef,
        Command: full || command.length <= 20 ? JSON.stringify(command) : JSON.stringify(`${command.slice(0, 19)}…`),
        CreatedAt: dockerTime(c.created),
        RunningFor: timeAgo(c.created),
        Status: run ? describeRun(run, (t) => timeAgo(t)) : state === 'mounted' ? `Mounted${c.readOnly ? ' (read-only)' : ''}` : state === 'created' ? 'Created' : 'Unmounted',
        State: state,
        Names: c.name,
        Mountpoint: c.state === 'mounted' && c.mountpoint ? c.mountpoint : '',
        Labels: '',
        Ports: '',
      };
      return { row, record: c, paths, run, damage };
    }),
  );
}

/** `--filter KEY=VALUE` of `ps`, docker's keys that apply here. */
export function containerFilter(filters: string[], imageIdOf: (ref: string) => Promise<string | undefined>): (e: ContainerEntry) => Promise<boolean> {
  const parsed = filters.map((f) => {
    const eq = f.indexOf('=');
    if (eq <= 0) throw new LayerfsError('INVALID_ARGUMENT', `invalid --filter ${JSON.stringify(f)}: expected KEY=VALUE`);
    const key = f.slice(0, eq);
    if (!['id', 'name', 'status', 'ancestor', 'exited'].includes(key)) {
      throw new LayerfsError('INVALID_ARGUMENT', `invalid --filter ${JSON.stringify(f)}: the filters are id, name, status, ancestor and exited`);
    }
    const value = f.slice(eq + 1);
    if (key === 'status' && !['created', 'running', 'exited', 'mounted', 'unmounted'].includes(value)) {
      throw new LayerfsError('INVALID_ARGUMENT', `invalid --filter status=${value}: expected created, running, exited, mounted or unmounted`);
    }
    if (key === 'exited' && !/^-?\d+$/.test(value)) throw new LayerfsError('INVALID_ARGUMENT', `invalid --filter exited=${value}: expected an exit code`);
    return { key, value };
  });
  // Docker: values of one key are alternatives (OR), different keys must all match (AND).
  const byKey = new Map<string, string[]>();
  for (const { key, value } of parsed) byKey.set(key, [...(byKey.get(key) ?? []), value]);
  return async (e) => {
    for (const [key, values] of byKey) {
      let ok = false;
      for (const v of values) {
        if (key === 'id') ok ||= e.record.id.startsWith(v);
        else if (key === 'name') ok ||= e.record.name.includes(v);
        else if (key === 'status') ok ||= e.row.State === v;
        else if (key === 'exited') ok ||= e.run?.status === 'exited' && e.run.exitCode === Number(v);
        else if (key === 'ancestor') ok ||= e.record.imageRef === v || e.record.image === (await imageIdOf(v));
      }
      if (!ok) return false;
    }
    return true;
  };
}
