/**
 * `layerfs run [options] IMAGE [CMD…]`: a process in a new container, through an OCI
 * runtime (runc by default), like `docker run`. In the foreground the container's exit
 * code is ours; with -d the container id is printed and a monitor process owns it.
 */
import type { Command } from 'commander';
import { checkName, envFlag, launchMonitor, monitorContainer, parseMemory, parseNetwork, parsePidsLimit, parseRuntime, parseVolume, prepareRun, readEnvFile, type RunOptions } from '../../sandbox/index.js';
import { openStore } from './format.js';

interface RunFlags {
  rm?: boolean;
  detach?: boolean;
  interactive?: boolean;
  tty?: boolean;
  name?: string;
  env: string[];
  envFile: string[];
  workdir?: string;
  user?: string;
  volume: string[];
  hostname?: string;
  readOnly?: boolean;
  network?: string;
  memory?: string;
  pidsLimit?: string;
  entrypoint?: string;
  runtime?: string;
}

const collect = (v: string, prev: string[]): string[] => [...prev, v];

/** Turns flags into validated RunOptions (nothing is created yet). */
async function runOptions(image: string, args: string[], f: RunFlags): Promise<RunOptions> {
  const env: string[] = [];
  for (const file of f.envFile) env.push(...(await readEnvFile(file)));
  for (const e of f.env) env.push(...envFlag(e));
  const volumes = [];
  for (const v of f.volume) volumes.push(await parseVolume(v));
  const pids = f.pidsLimit !== undefined ? parsePidsLimit(f.pidsLimit) : undefined;
  return {
    imageRef: image,
    args,
    ...(f.name !== undefined ? { name: checkName(f.name) } : {}),
    ...(f.entrypoint !== undefined ? { entrypoint: f.entrypoint } : {}),
    env,
    ...(f.workdir !== undefined ? { workdir: f.workdir } : {}),
    ...(f.user !== undefined ? { user: f.user } : {}),
    ...(f.hostname !== undefined ? { hostname: f.hostname } : {}),
    volumes,
    readOnly: !!f.readOnly,
    network: parseNetwork(f.network),
    ...(f.memory !== undefined ? { memory: parseMemory(f.memory) } : {}),
    ...(pids !== undefined ? { pidsLimit: pids } : {}),
    runtime: parseRuntime(f.runtime),
    autoRemove: !!f.rm,
    detach: !!f.detach,
    interactive: !!f.interactive,
    tty: !!f.tty,
  };
}

export function register(program: Command): void {
  // Options after IMAGE belong to the contained command (`run img sh -c …`), which needs
  // positional options; as in docker, global options then go before the verb.
  program.enablePositionalOptions();
  program
    .command('run')
    .description('Run a command in a new container (OCI runtime: runc, or crun)')
    .argument('<image>', 'image name, tag or id')
    .argument('[command...]', 'command and arguments (replace the image Cmd)')
    .passThroughOptions()
    .option('--rm', 'remove the container and its writable layer when it exits')
    .option('-d, --detach', 'run in the background and print the container id')
    .option('-i, --interactive', 'keep stdin open and stream it to the process')
    .option('-t, --tty', 'allocate a terminal')
    .option('--name <name>', 'container name')
    .option('-e, --env <KEY=VALUE>', 'set an environment variable (repeatable)', collect, [])
    .option('--env-file <file>', 'read KEY=VALUE lines from a file (repeatable)', collect, [])
    .option('-w, --workdir <dir>', 'working directory inside the container')
    .option('-u, --user <user[:group]>', 'user name or uid (and group), resolved in the image /etc/passwd and /etc/group')
    .option('-v, --volume <host:ctr[:ro]>', 'bind-mount a host path (repeatable)', collect, [])
    .option('--hostname <name>', 'container host name (default: the short container id)')
    .option('--read-only', 'mount the root filesystem read-only')
    .option('--network <mode>', 'none (default: loopback only) or host')
    .option('--memory <bytes>', 'memory limit (e.g. 64m)')
    .option('--pids-limit <n>', 'maximum number of processes')
    .option('--entrypoint <cmd>', 'override the image Entrypoint (also drops its Cmd)')
    .option('--runtime <name>', 'OCI runtime: runc (default) or crun')
    .action(async (image: string, args: string[], flags: RunFlags, cmd: Command) => {
      const options = await runOptions(image, args, flags);
      const store = await openStore(cmd);
      const prepared = await prepareRun(store, options);
      if (options.detach) {
        const failure = await launchMonitor(prepared);
        if (failure) {
          process.stderr.write(`layerfs: ${failure.message}\n`);
          process.exitCode = failure.exitCode;
          return;
        }
        process.stdout.write(`${prepared.record.id}\n`);
        return;
      }
      const result = await monitorContainer({
        supervisor: prepared.supervisor,
        record: prepared.record,
        dir: prepared.dir,
        runtime: prepared.runtime,
        autoRemove: options.autoRemove,
        io: { mode: 'attached', tty: options.tty, interactive: options.interactive },
      });
      if (result.failure) {
        process.stderr.write(`layerfs: ${result.failure.message}\n`);
      } else if (result.reason) {
        process.stderr.write(`layerfs: container ${prepared.record.name} was stopped: ${result.reason}\n`);
      }
      process.exitCode = result.exitCode;
    });
}
