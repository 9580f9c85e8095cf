/** `layerfs snapshotter [--address SOCKET] [--root DIR]`: containerd's snapshots API on layerfs. */
import type { Command } from 'commander';
import { join } from 'node:path';
import { DEFAULT_MOUNT_PROGRAM } from '../../snapshotter/index.js';
import { resolveRoot } from '../../store/index.js';

/** Where containerd finds us unless told otherwise (README, contrib/ unit and config). */
export const DEFAULT_SNAPSHOTTER_ADDRESS = '/run/layerfs/snapshotter.sock';

const HELP = `
Serves containerd's snapshots API (containerd.services.snapshots.v1.Snapshots) on a unix
socket, so containerd, ctr, nerdctl and Kubernetes (CRI) run containers on layerfs mounts.
State lives in <root>/snapshotter/ (metadata.json, snapshots/<id>/{fs,work}) and survives
restarts of this service and of containerd. Mounts are "fuse3.layerfs-overlay": containerd
runs mount.fuse3, which runs layerfs-overlay from PATH, so layerfs-overlay must be on
containerd's PATH (npm install -g puts it in /usr/local/bin).

containerd's /etc/containerd/config.toml (version 2):

  [proxy_plugins]
    [proxy_plugins.layerfs]
      type = "snapshot"
      address = "${DEFAULT_SNAPSHOTTER_ADDRESS}"

  # for Kubernetes (CRI):
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "layerfs"

Then: ctr images pull --snapshotter layerfs IMAGE; ctr run --snapshotter layerfs IMAGE ID.

systemd: contrib/layerfs-snapshotter.service runs this command before containerd
(Before=containerd.service): systemctl enable --now layerfs-snapshotter.
`;

/** Registers `snapshotter` on the program. */
export function register(program: Command): void {
  program
    .command('snapshotter')
    .description("Serve containerd's snapshots API on a unix socket: containerd runs containers on layerfs (a proxy_plugins snapshotter)")
    .option('--address <socket>', 'unix socket to listen on', DEFAULT_SNAPSHOTTER_ADDRESS)
    .option('--root <dir>', 'layerfs store root; snapshots are kept in <root>/snapshotter (default: $LAYERFS_ROOT or /var/lib/layerfs)')
    .option('--mount-program <name>', 'program mount.fuse3 runs for a union mount (fuse3.<name>); fuse-overlayfs works too', DEFAULT_MOUNT_PROGRAM)
    .addHelpText('after', HELP)
    .action(async (flags: { address: string; root?: string; mountProgram: string }, cmd: Command) => {
      const root = resolveRoot((cmd.optsWithGlobals() as { root?: string }).root);
      const log = (line: string): void => void process.stderr.write(`${new Date().toISOString()} layerfs-snapshotter[${process.pid}]: ${line}\n`);
      // Loaded here, not at the top: grpc-js and protobufjs cost every other verb ~0.2 s of start-up.
      const { serveSnapshotter } = await import('../../snapshotter/index.js');
      const { Snapshotter } = await import('../../snapshotter/index.js');
      const snapshotter = new Snapshotter({ stateDir: join(root, 'snapshotter'), mountProgram: flags.mountProgram });
      await snapshotter.open();
      const server = await serveSnapshotter(snapshotter, flags.address, log);
      log(`serving containerd snapshots on ${flags.address} (state ${join(root, 'snapshotter')}, mounts fuse3.${flags.mountProgram})`);
      await new Promise<void>((resolve) => {
        const stop = (signal: string): void => {
          log(`${signal}: stopping`);
          void server.shutdown().then(resolve);
        };
        process.once('SIGINT', () => stop('SIGINT'));
        process.once('SIGTERM', () => stop('SIGTERM'));
      });
    });
}
