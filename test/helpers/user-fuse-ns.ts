/**
 * A private mount namespace in which ordinary users may mount FUSE, for the rootless
 * mount tests. fusermount3 opens /dev/fuse with the user's rights, and this machine's
 * node is 0600 (a container's device node; distributions ship 0666): the namespace gets
 * a 0666 node of the same device bound over it, as engine-device.test.ts does; nothing
 * outside it changes. Commands run inside with nsenter, as a test user (setpriv, no
 * supplementary groups); their mounts show in the namespace's mountinfo.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseMountinfo, type MountEntry } from '../../src/sys/mount-table.js';
import type { CliResult } from './cli.js';
import type { TestUser } from './rootless.js';

export class UserFuseNamespace {
  private constructor(private readonly holder: ChildProcess) {}

  /** Starts the namespace; `dir` holds the 0666 device node. */
  static async start(dir: string): Promise<UserFuseNamespace> {
    const node = join(dir, 'fuse');
    const holder = spawn('unshare', ['-m', '--propagation', 'private', 'sh', '-c', `mknod -m 666 ${node} c 10 229 && mount --bind ${node} /dev/fuse && echo ready && exec sleep 100000`], { stdio: ['ignore', 'pipe', 'inherit'] });
    const [first] = (await once(holder.stdout!, 'data')) as [Buffer];
    if (!first.toString().includes('ready')) throw new Error('the FUSE namespace did not start');
    return new UserFuseNamespace(holder);
  }

  get pid(): number {
    return this.holder.pid!;
  }

  /** Runs `argv` in the namespace as `user` with exactly `env`. */
  run(user: TestUser, env: NodeJS.ProcessEnv, argv: string[], input?: Buffer): Promise<CliResult> {
    return new Promise((resolve) => {
      const p = spawn('nsenter', ['-t', String(this.pid), '-m', '--', 'setpriv', `--reuid=${user.uid}`, `--regid=${user.gid}`, '--clear-groups', ...argv], { env, cwd: '/', stdio: ['pipe', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      p.stdout.on('data', (d) => (stdout += d));
      p.stderr.on('data', (d) => (stderr += d));
      p.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
      p.stdin.on('error', () => undefined); // EPIPE: the command did not read its input
      p.stdin.end(input ?? Buffer.alloc(0));
    });
  }

  /** Like run(), rejecting with the output when the exit code is not 0. */
  async runOk(user: TestUser, env: NodeJS.ProcessEnv, argv: string[]): Promise<string> {
    const r = await this.run(user, env, argv);
    if (r.code !== 0) throw new Error(`${argv.join(' ')} as ${user.name} exited ${r.code}:\n${r.stderr}${r.stdout}`);
    return r.stdout;
  }

  /** The namespace's mount table. */
  async mounts(): Promise<MountEntry[]> {
    return parseMountinfo(await readFile(`/proc/${this.pid}/mountinfo`, 'utf8'));
  }

  /** Ends the holder; the namespace goes when its last process (a mount server) does. */
  async stop(): Promise<void> {
    if (this.holder.exitCode === null && this.holder.signalCode === null) {
      this.holder.kill('SIGKILL');
      await once(this.holder, 'exit');
    }
  }
}
