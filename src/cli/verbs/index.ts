/** Every subcommand, in the order `layerfs --help` lists them. */
import type { Command } from 'commander';
import * as build from './build.js';
import * as builder from './builder.js';
import * as check from './check.js';
import * as commit from './commit.js';
import * as diff from './diff.js';
import * as events from './events.js';
import * as explain from './explain.js';
import * as history from './history.js';
import * as images from './images.js';
import * as inspect from './inspect.js';
import * as layers from './layers.js';
import * as load from './load.js';
import * as pull from './pull.js';
import * as push from './push.js';
import * as login from './login.js';
import * as mount from './mount.js';
import * as prune from './prune.js';
import * as ps from './ps.js';
import * as rm from './rm.js';
import * as cp from './cp.js';
import * as system from './system.js';
import * as exportVerb from './export.js';
import * as importVerb from './import.js';
import * as start from './start.js';
import * as restart from './restart.js';
import * as kill from './kill.js';
import * as wait from './wait.js';
import * as top from './top.js';
import * as rename from './rename.js';
import * as rmi from './rmi.js';
import * as run from './run.js';
import * as stop from './stop.js';
import * as exec from './exec.js';
import * as logs from './logs.js';
import * as save from './save.js';
import * as snapshotter from './snapshotter.js';
import * as tag from './tag.js';
import * as ui from './ui.js';
import * as umount from './umount.js';

const verbs: Array<{ register(program: Command): void }> = [
  load, importVerb, pull, push, login, images, inspect, history, tag, rmi, save, prune, system, check,
  mount, umount, ps, rm,
  run, start, stop, restart, kill, wait, exec, logs, top, rename, cp, exportVerb,
  build, builder, diff, commit, layers, explain, events, ui,
  snapshotter,
];

export function registerVerbs(program: Command): void {
  for (const verb of verbs) verb.register(program);
}
