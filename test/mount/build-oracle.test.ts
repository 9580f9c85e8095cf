/**
 * `layerfs build` against the oracle, `buildah bud --layers` (chroot isolation, its own
 * vfs storage under the test's temp folder), on the same Dockerfile and context from the
 * sample image: the same number of layers, the same file tree after every layer (paths,
 * types, modes, owners, content; whiteouts and opaque directories compared by what they
 * hide, as buildah writes per-file whiteouts where the mount records an opaque folder),
 * and the same config fields. The Dockerfile writes, deletes and recreates files and
 * folders across RUN steps, copies from another stage, uses a user name from the image's
 * passwd, and a .dockerignore with a `!` exception.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createGunzip } from 'node:zlib';
import { extract } from 'tar-stream';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { cliOk } from '../helpers/cli.js';
import { storeWithSampleImage } from '../helpers/sample-image.js';

const exec = promisify(execFile);
const haveBuildah = await exec('buildah', ['--version']).then(() => true, () => false);

const DOCKERFILE = `FROM sample AS tools
RUN mkdir -p /opt/tool && echo tool > /opt/tool/bin && echo junk > /opt/junk

FROM sample
ENV APPDIR=/srv
WORKDIR /srv
COPY . ./
RUN echo x > /srv/new && rm /etc/motd && rm -rf /app && mkdir /app && echo y > /app/only
RUN rm /srv/new && mkdir /srv/new && echo dir > /srv/new/inside && echo back > /etc/motd
COPY --from=tools /opt/tool /opt/tool
USER app
RUN mkdir -p /tmp/t && echo z > /tmp/t/f && id -un > /tmp/t/who
LABEL org.example.a=1
EXPOSE 8080
VOLUME /data
STOPSIGNAL SIGTERM
ENTRYPOINT ["/bin/cat"]
CMD ["/srv/a.txt"]
`;

/** Tar entries of a layer: path → one line describing it (mtimes left out). */
type Tree = Map<string, string>;

async function layerEntries(file: string, gzip: boolean): Promise<Array<[string, string]>> {
  const ex = extract();
  const out: Array<[string, string]> = [];
  ex.on('entry', (h, stream, next) => {
    const hash = createHash('sha256');
    stream.on('data', (d: unknown) => hash.update(d as Buffer));
    stream.on('end', () => {
      const name = h.name.replace(/^\.\//, '').replace(/\/$/, '');
      out.push([name, `${h.type} ${(h.mode ?? 0) & 0o7777} ${h.uid}:${h.gid} ${h.type === 'file' ? hash.digest('hex').slice(0, 12) : (h.linkname ?? '')}`]);
      next();
    });
    stream.resume();
  });
  const src = createReadStream(file);
  (gzip ? src.pipe(createGunzip()) : src).pipe(ex);
  await new Promise<void>((r) => ex.on('finish', () => r()));
  return out;
}

/** Applies a layer to a tree as overlay does: opaque markers, then whiteouts, then entries. */
function apply(tree: Tree, entries: Array<[string, string]>): void {
  const drop = (prefix: string): void => {
    for (const k of [...tree.keys()]) if (k === prefix || k.startsWith(`${prefix}/`)) tree.delete(k);
  };
  for (const [name] of entries) {
    if (name.endsWith('/.wh..wh..opq')) {
      const dir = name.slice(0, -'/.wh..wh..opq'.length);
      for (const k of [...tree.keys()]) if (k.startsWith(`${dir}/`)) tree.delete(k);
    }
  }
  for (const [name] of entries) {
    const base = name.split('/').at(-1)!;
    if (base.startsWith('.wh.') && base !== '.wh..wh..opq') drop(name.replace(/\.wh\.([^/]*)$/, '$1'));
  }
  for (const [name, line] of entries) if (!name.split('/').at(-1)!.startsWith('.wh.')) tree.set(name, line);
}

/** The runtime's mount points: buildah 1.28 leaves them in its layers, BuildKit and layerfs do not. */
const STUB = /^(dev|proc|sys|run)(\/|$)|^etc\/(hosts|hostname|resolv\.conf)$/;

/** The tree after each layer above the first `skip`, and the image config, of an OCI layout. */
async function layoutTrees(layout: string, skip: number): Promise<{ trees: Tree[]; config: Record<string, unknown> }> {
  const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
  const blob = (d: string): string => join(layout, 'blobs', 'sha256', d.slice(7));
  const manifest = JSON.parse(await readFile(blob(index.manifests[0]!.digest), 'utf8')) as { config: { digest: string }; layers: { digest: string; mediaType: string }[] };
  const tree: Tree = new Map();
  const trees: Tree[] = [];
  for (const [i, l] of manifest.layers.entries()) {
    apply(tree, await layerEntries(blob(l.digest), /gzip/.test(l.mediaType)));
    if (i >= skip) trees.push(new Map([...tree].filter(([k]) => !STUB.test(k)).sort(([a], [b]) => a.localeCompare(b))));
  }
  const config = JSON.parse(await readFile(blob(manifest.config.digest), 'utf8')) as { config: Record<string, unknown> };
  return { trees, config: config.config };
}

describe.skipIf(!inject('canMount') || !haveBuildah)('layerfs build vs buildah bud', () => {
  let root: string;
  let work: string;
  let ctx: string;

  beforeAll(async () => {
    const s = await storeWithSampleImage();
    root = s.root;
    work = s.work;
    ctx = join(work, 'ctx');
    await mkdir(join(ctx, 'logs'), { recursive: true });
    await writeFile(join(ctx, 'a.txt'), 'from the context\n');
    await writeFile(join(ctx, 'logs', 'debug.log'), 'ignored\n');
    await writeFile(join(ctx, 'logs', 'keep.log'), 'kept by the ! exception\n');
    await writeFile(join(ctx, '.dockerignore'), 'logs/*.log\n!logs/keep.log\nDockerfile\n.dockerignore\n');
    await writeFile(join(ctx, 'Dockerfile'), DOCKERFILE);
  });

  it('makes the same layers, the same tree after each, and the same config', async () => {
    const [sroot, srun] = [join(work, 'buildah', 'root'), join(work, 'buildah', 'run')];
    const storage = ['--root', sroot, '--runroot', srun, '--storage-driver', 'vfs'];
    // The sample image into buildah's own storage, named so that `FROM sample` finds it.
    await exec('skopeo', ['copy', '-q', `oci:${join(work, 'oci')}:latest`, `containers-storage:[vfs@${sroot}+${srun}]localhost/sample:latest`]);
    await exec('buildah', [...storage, 'bud', '--layers', '--format', 'docker', '--isolation', 'chroot', '-q', '-t', 'oracle', ctx], { maxBuffer: 16 << 20 });
    await exec('buildah', [...storage, 'push', 'oracle', `oci:${join(work, 'oracle')}:latest`]);

    await cliOk(root, ['build', '-t', 'ours', ctx]);
    await cliOk(root, ['save', '-o', join(work, 'ours.tar'), 'ours']);
    await mkdir(join(work, 'ours'));
    await exec('tar', ['-xf', join(work, 'ours.tar'), '-C', join(work, 'ours')]);

    const theirs = await layoutTrees(join(work, 'oracle'), 3);
    const ours = await layoutTrees(join(work, 'ours'), 3);
    expect(ours.trees.length).toBe(theirs.trees.length);
    for (const [i, t] of theirs.trees.entries()) expect(Object.fromEntries(ours.trees[i]!), `tree after layer ${i + 4}`).toEqual(Object.fromEntries(t));
    // The tree itself, to be sure the comparison saw what the Dockerfile did.
    const last = ours.trees.at(-1)!;
    for (const p of ['etc/motd', 'srv/new/inside', 'srv/a.txt', 'srv/logs/keep.log', 'opt/tool/bin', 'app/only']) expect(last.has(p), p).toBe(true);
    for (const p of ['srv/logs/debug.log', 'app/numbers.txt', 'opt/junk', 'srv/Dockerfile']) expect(last.has(p), p).toBe(false);
    expect(last.get('tmp/t/who')).toMatch(/^file 420 1000:1000 /);

    const fields = ['Env', 'Cmd', 'Entrypoint', 'WorkingDir', 'User', 'ExposedPorts', 'Volumes', 'StopSignal', 'Healthcheck'];
    for (const f of fields) expect(ours.config[f], f).toEqual(theirs.config[f]);
    const labels = { ...(theirs.config.Labels as Record<string, string>) };
    delete labels['io.buildah.version'];
    expect(ours.config.Labels).toEqual(labels);
  });
});
