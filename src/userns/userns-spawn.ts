/**
 * Starts a program inside a new user namespace with the given id maps, as rootless
 * podman does: `unshare --user` makes the namespace, then the setuid helpers newuidmap
 * and newgidmap (Debian `uidmap`), which check /etc/subuid and /etc/subgid, write its
 * maps from outside. Node cannot unshare itself (it is multi-threaded), hence unshare(1).
 *
 * The order matters. A gate shell runs first in the namespace: it says "ready" on fd 3
 * (so the maps are written only once the namespace exists) and waits for "go". Only then
 * does it exec the program — after the maps, so the program starts as uid 0 of the
 * namespace with its full capability set (an exec before the maps would run it as the
 * unmapped overflow uid and drop every capability).
 */
import type { ChildProcess, StdioOptions } from 'node:child_process';
import type { Duplex } from 'node:stream';
import { promisify } from 'node:util';
import { LayerfsError } from '../core/errors.js';
import * as lazy from '../core/lazy-builtins.js';
import { mapArgs, type UsernsMapping } from './id-map.js';

/** A program's run to its end (child processes load at first use: core/lazy-builtins.ts). */
const run = (file: string, args: string[]) => promisify(lazy.childProcess().execFile)(file, args);

const GATE = 'echo ready >&3 && read -r go <&3 && exec 3>&- && exec "$@"';

export interface UsernsSpawnOptions {
  /** stdin, stdout, stderr of the program (fd 3 is the gate's). */
  stdio?: [StdioOptions[number], StdioOptions[number], StdioOptions[number]];
  env?: NodeJS.ProcessEnv;
}

/** Spawns `argv` as uid 0 of a new user namespace mapped by `mapping`; resolves once it runs. */
export async function spawnInUserns(mapping: UsernsMapping, argv: string[], opts: UsernsSpawnOptions = {}): Promise<ChildProcess> {
  const stdio = [...(opts.stdio ?? ['pipe', 'pipe', 'pipe']), 'pipe'] as StdioOptions;
  const child = lazy.childProcess().spawn('unshare', ['--user', '--', '/bin/sh', '-c', GATE, 'layerfs-userns', ...argv], { stdio, env: opts.env ?? process.env });
  const gate = child.stdio[3] as Duplex;
  try {
    await waitForReady(child, gate);
    await writeMap('newuidmap', child.pid!, mapping.uids);
    await writeMap('newgidmap', child.pid!, mapping.gids);
  } catch (err) {
    child.kill('SIGKILL');
    gate.destroy();
    throw err;
  }
  gate.end('go\n');
  return child;
}

function waitForReady(child: ChildProcess, gate: Duplex): Promise<void> {
  return new Promise((resolve, reject) => {
    let got = '';
    const fail = (why: string): void => reject(new LayerfsError('FAILED_PRECONDITION', `cannot make a user namespace: ${why}`, { hint: 'unprivileged user namespaces must be enabled (sysctl user.max_user_namespaces > 0) and unshare(1) installed (util-linux)' }));
    child.once('error', (e) => fail(e.message));
    child.once('exit', (code) => fail(`unshare exited with ${code}`));
    gate.on('data', (d: Buffer) => {
      got += d.toString();
      if (got.includes('ready\n')) {
        child.removeAllListeners('exit');
        child.removeAllListeners('error');
        gate.removeAllListeners('data');
        resolve();
      }
    });
  });
}

async function writeMap(tool: 'newuidmap' | 'newgidmap', pid: number, lines: UsernsMapping['uids']): Promise<void> {
  try {
    await run(tool, [String(pid), ...mapArgs(lines)]);
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    const detail = e.code === 'ENOENT' ? `${tool} is not installed` : (e.stderr || e.message).trim();
    throw new LayerfsError('FAILED_PRECONDITION', `cannot map ids into the user namespace: ${detail}`, {
      cause: err,
      hint: e.code === 'ENOENT' ? 'install the uidmap package (apt-get install uidmap)' : 'check this user\'s ranges in /etc/subuid and /etc/subgid',
    });
  }
}

/** Runs `argv` in the namespace to completion; rejects with its stderr when it fails. */
export async function runInUserns(mapping: UsernsMapping, argv: string[]): Promise<string> {
  const child = await spawnInUserns(mapping, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let errText = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (errText += d));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  if (code !== 0) throw new LayerfsError('IO', `${argv.join(' ')} in the user namespace failed (exit ${code}): ${errText.trim()}`);
  return out;
}
