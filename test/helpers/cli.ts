/** Runs the built `layerfs` CLI (dist/, kept current by the global setup) as a user would. */
import { spawn } from 'node:child_process';
import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export const REPO = join(import.meta.dirname, '..', '..');
export const LAYERFS = join(REPO, 'dist', 'cli', 'main.js');
/** The `layerfs-overlay` program: a sh front end (src/cli/layerfs-overlay.sh) that starts node itself. */
export const LAYERFS_OVERLAY = join(REPO, 'dist', 'cli', 'layerfs-overlay');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunNodeOptions {
  cwd?: string;
  input?: Buffer;
  env?: NodeJS.ProcessEnv;
  /** Run as this uid/gid (supplementary groups dropped), e.g. a rootless test user. */
  uid?: number;
  gid?: number;
}

export function runNode(script: string, args: string[], opts: RunNodeOptions = {}): Promise<CliResult> {
  return runProgram(process.execPath, [script, ...args], opts);
}

/**
 * `layerfs-overlay ARGS` from this checkout's dist/, with this node (LAYERFS_NODE); resolves
 * when the front end exits (the mount process it started serves on, detached).
 */
export function runOverlay(args: string[], opts: RunNodeOptions = {}): Promise<CliResult> {
  return runProgram(LAYERFS_OVERLAY, args, { ...opts, env: { ...(opts.env ?? process.env), LAYERFS_NODE: process.execPath } });
}

/**
 * Writes `path`, a `layerfs-overlay` for programs that exec it by name (containers-storage's
 * mount_program, mount.fuse3 on PATH): this checkout's front end with this node, as
 * scripts/install-bin installs it.
 */
export async function writeOverlayWrapper(path: string): Promise<void> {
  await writeFile(path, `#!/bin/sh\nLAYERFS_NODE="${process.execPath}" exec "${LAYERFS_OVERLAY}" "$@"\n`);
  await chmod(path, 0o755);
}

export function runProgram(program: string, args: string[], opts: RunNodeOptions = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    const ids = opts.uid !== undefined ? { uid: opts.uid, gid: opts.gid ?? opts.uid } : {};
    const p = spawn(program, args, { cwd: opts.cwd ?? REPO, stdio: ['pipe', 'pipe', 'pipe'], env: opts.env ?? process.env, ...ids });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    p.stdin.end(opts.input ?? Buffer.alloc(0));
  });
}

/** `layerfs --root ROOT ARGS…` */
export function cli(root: string, args: string[], input?: Buffer): Promise<CliResult> {
  return runNode(LAYERFS, ['--root', root, ...args], input ? { input } : {});
}

/** Like cli(), but rejects with the output when the exit code is not 0. */
export async function cliOk(root: string, args: string[]): Promise<string> {
  const r = await cli(root, args);
  if (r.code !== 0) throw new Error(`layerfs ${args.join(' ')} exited ${r.code}:\n${r.stderr}${r.stdout}`);
  return r.stdout;
}
