/**
 * How each verb uses the store, decided in one table so that opening the store is never
 * a side effect of a typo: only verbs that put something into the store may create one
 * (`layerfs --root /var/lib/layerf images` says there is no store there instead of
 * making an empty one). The default root may always be created: nobody mistypes it, and
 * a first `layerfs images` on a new machine lists nothing rather than failing.
 *
 *   create   — the verb adds images or snapshots, so a missing store is made
 *   existing — the verb reads or changes what a store holds; a missing store is an error
 *   none     — the verb never touches the store (credentials only)
 */
import type { Command } from 'commander';
import { LayerfsError } from '../core/errors.js';
import { defaultStoreRoot } from '../core/user-dirs.js';
import { resolveRoot } from '../store/store-paths.js';
import type { Store } from '../store/store.js';

export type StoreUse = 'create' | 'existing' | 'none';

/** Every verb by its full name (`system df` for nested ones). A test checks that each registered verb is here. */
export const STORE_USE: Readonly<Record<string, StoreUse>> = {
  load: 'create',
  pull: 'create',
  import: 'create',
  build: 'create',
  snapshotter: 'create',
  push: 'existing',
  images: 'existing',
  inspect: 'existing',
  history: 'existing',
  tag: 'existing',
  rmi: 'existing',
  save: 'existing',
  prune: 'existing',
  'system df': 'existing',
  check: 'existing',
  'builder prune': 'existing',
  'builder du': 'existing',
  mount: 'existing',
  umount: 'existing',
  ps: 'existing',
  rm: 'existing',
  run: 'existing',
  start: 'existing',
  restart: 'existing',
  stop: 'existing',
  kill: 'existing',
  wait: 'existing',
  top: 'existing',
  rename: 'existing',
  exec: 'existing',
  logs: 'existing',
  cp: 'existing',
  export: 'existing',
  diff: 'existing',
  commit: 'existing',
  layers: 'existing',
  explain: 'existing',
  events: 'existing',
  ui: 'existing',
  login: 'none',
  logout: 'none',
};

/** `system df` for a nested command, `images` for a top-level one. */
export function verbName(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c?.parent; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

/** How `cmd` uses the store; a verb missing from the table is treated as 'existing' (never creates by accident). */
export function storeUseOf(cmd: Command): StoreUse {
  return STORE_USE[verbName(cmd)] ?? 'existing';
}

const opened = new Map<string, Promise<Store>>();

/**
 * Opens the store named by `--root` (on this command or any parent) or LAYERFS_ROOT, as
 * the verb's class allows. Opened once per process: the pre-verb recovery and the verb
 * share it.
 */
export function openStore(cmd: Command): Promise<Store> {
  const use = storeUseOf(cmd);
  if (use === 'none') throw new LayerfsError('FAILED_PRECONDITION', `internal: ${verbName(cmd)} does not use the store`);
  const root = resolveRoot((cmd.optsWithGlobals() as { root?: string }).root);
  const create = use === 'create' || root === defaultStoreRoot();
  let p = opened.get(root);
  if (!p) {
    // Imported when a verb opens the store, not at start-up: --help and --version never do.
    p = import('../store/store.js').then(({ Store }) => Store.open(root, { create }));
    opened.set(root, p);
    p.catch(() => opened.delete(root));
  }
  return p;
}
