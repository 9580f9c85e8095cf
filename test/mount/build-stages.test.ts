/**
 * `layerfs build` with stages and file sources: --target builds only the stages it needs
 * (an unneeded stage whose RUN would fail is skipped), COPY --from a stage and from a
 * scratch stage, heredocs in RUN and COPY, --chown with names from the image's passwd,
 * --chmod, COPY --from an image of the store, .dockerignore with a `!` exception, ADD of a
 * local tar, the config fields every
 * metadata instruction writes; and bad input: unknown instruction (file:line:col), a
 * source outside the context, a missing source, an undefined target, a cycle.
 */
import { execFile } from 'node:child_process';
import { mkdir, readdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { cli, cliOk } from '../helpers/cli.js';
import { unionMounts } from '../helpers/mounts.js';
import { storeWithSampleImage } from '../helpers/sample-image.js';

const exec = promisify(execFile);

const DOCKERFILE = `# escape=\\
ARG BASE=sample
FROM \${BASE} AS build
RUN mkdir -p /out && echo built > /out/artifact
RUN <<EOF
echo "from a heredoc" > /out/heredoc.txt
id -u > /out/uid
EOF

FROM sample AS unused
RUN echo this stage is not needed && exit 7

FROM scratch AS tiny
COPY --from=build /out/ /out/
COPY <<NOTE /note.txt
base was \${BASE:-unset}
NOTE

FROM sample AS final
ARG BASE
COPY --from=tiny --chown=app /out/artifact /home/app/
COPY --chmod=700 keep/ /keep/
ADD files.tar /unpacked/
COPY --from=sample /app/hello.txt /from-image.txt
ENV ONE=1 \\
    TWO="two words"
USER app:app
EXPOSE 80 8000-8001/udp
VOLUME ["/data"]
STOPSIGNAL SIGQUIT
HEALTHCHECK --interval=30s --timeout=3s --retries=2 CMD cat /home/app/artifact
SHELL ["/bin/sh", "-e", "-c"]
ENTRYPOINT ["/bin/cat"]
CMD ["/home/app/artifact"]
`;

describe.skipIf(!inject('canMount'))('layerfs build: stages, sources and bad input', () => {
  let root: string;
  let work: string;
  let ctx: string;

  const build = (args: string[]) => cli(root, ['build', ...args]);

  beforeAll(async () => {
    const s = await storeWithSampleImage();
    root = s.root;
    work = s.work;
    ctx = join(work, 'ctx');
    await mkdir(join(ctx, 'keep', 'sub'), { recursive: true });
    await writeFile(join(ctx, 'keep', 'a.txt'), 'kept\n');
    await writeFile(join(ctx, 'keep', 'skip.log'), 'ignored\n');
    await writeFile(join(ctx, 'keep', 'sub', 'important.log'), 'excepted\n');
    await writeFile(join(ctx, '.dockerignore'), '**/*.log\n!keep/sub/important.log\n');
    await mkdir(join(work, 'tarsrc', 'd'), { recursive: true });
    await writeFile(join(work, 'tarsrc', 'd', 'inside.txt'), 'from the tar\n');
    await exec('tar', ['-C', join(work, 'tarsrc'), '--owner=7', '--group=8', '-cf', join(ctx, 'files.tar'), 'd']);
    await writeFile(join(ctx, 'Dockerfile'), DOCKERFILE);
  });

  it('builds the final stage with its dependencies only, and the result runs', async () => {
    const r = await build(['-t', 'multi:1', '--label', 'built.by=layerfs', ctx]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).not.toContain('[unused]');
    const order = r.stderr.split('\n').filter((l) => / FROM /.test(l)).map((l) => l.replace(/^#\d+ /, ''));
    expect(order).toEqual(['[build] FROM sample', '[tiny] FROM scratch', '[final] FROM sample']);
    const run = await cli(root, ['run', '--rm', 'multi:1']);
    expect(run.stdout).toBe('built\n');
    const id = await cli(root, ['run', '--rm', '--entrypoint', '/bin/sh', 'multi:1', '-c', 'id']);
    expect(id.stdout).toBe('uid=1000(app) gid=1000(app)\n');
    // As root: --chmod=700 made /keep/sub unreadable for app.
    const look = await cli(root, ['run', '--rm', '-u', '0', '--entrypoint', '/bin/sh', 'multi:1', '-c', 'stat -c "%u:%g %a %n" /home/app/artifact /keep/a.txt /unpacked/d/inside.txt; find /keep | sort; cat /unpacked/d/inside.txt /from-image.txt']);
    expect(look.stdout).toBe([
      '1000:1000 644 /home/app/artifact',
      '0:0 700 /keep/a.txt',
      '7:8 644 /unpacked/d/inside.txt',
      '/keep',
      '/keep/a.txt',
      '/keep/sub',
      '/keep/sub/important.log',
      'from the tar',
      'hello from the app layer',
      '',
    ].join('\n'));
  });

  it('writes the config fields as docker build does', async () => {
    const [img] = JSON.parse(await cliOk(root, ['inspect', 'multi:1'])) as { Config: Record<string, unknown> }[];
    expect(img!.Config).toEqual({
      Env: ['PATH=/bin', 'ONE=1', 'TWO=two words'],
      Cmd: ['/home/app/artifact'],
      WorkingDir: '/app',
      User: 'app:app',
      ExposedPorts: { '80/tcp': {}, '8000/udp': {}, '8001/udp': {} },
      Volumes: { '/data': {} },
      StopSignal: 'SIGQUIT',
      Healthcheck: { Test: ['CMD-SHELL', 'cat /home/app/artifact'], Interval: 30e9, Timeout: 3e9, Retries: 2 },
      Shell: ['/bin/sh', '-e', '-c'],
      Entrypoint: ['/bin/cat'],
      Labels: { 'built.by': 'layerfs' },
    });
  });

  it('--target builds a scratch stage with a COPY --from and a heredoc file', async () => {
    const r = await build(['-t', 'tiny:1', '--target', 'tiny', ctx]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).not.toContain('[final]');
    const [img] = JSON.parse(await cliOk(root, ['inspect', 'tiny:1'])) as { Store: { Layers: { Diff: string }[] } }[];
    const layers = img!.Store.Layers;
    expect(layers).toHaveLength(2);
    expect((await readdir(join(layers[0]!.Diff, 'out'))).sort()).toEqual(['artifact', 'heredoc.txt', 'uid']);
    const note = await exec('cat', [join(layers[1]!.Diff, 'note.txt')]);
    expect(note.stdout).toBe('base was unset\n');
    const heredoc = await exec('cat', [join(layers[0]!.Diff, 'out', 'heredoc.txt'), join(layers[0]!.Diff, 'out', 'uid')]);
    expect(heredoc.stdout).toBe('from a heredoc\n0\n');
  });

  it('a stage rebuilt into the same files keeps COPY --from cached', async () => {
    await writeFile(join(ctx, 'Dockerfile'), DOCKERFILE.replace('echo built > /out/artifact', 'echo built > /out/artifact && true'));
    const r = await build(['--target', 'tiny', ctx]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/\[build\] RUN mkdir[^\n]*\n#\d+ MISS: the instruction changed/);
    expect(r.stderr).toMatch(/\[tiny\] COPY --from=build \/out\/ \/out\/\n#\d+ CACHED/);
    await writeFile(join(ctx, 'Dockerfile'), DOCKERFILE);
  });

  it('bad input: clear errors with the place, and nothing left behind', async () => {
    const bad = async (dockerfile: string, args: string[] = []): Promise<string> => {
      await writeFile(join(ctx, 'Dockerfile.bad'), dockerfile);
      const r = await build(['-f', join(ctx, 'Dockerfile.bad'), ...args, ctx]);
      expect(r.code).not.toBe(0);
      return r.stderr;
    };
    expect(await bad('FROM sample\n  FROBNICATE x\n')).toContain(':2:3: unknown instruction: FROBNICATE');
    expect(await bad('RUN true\n')).toContain(':1:1: RUN before the first FROM');
    expect(await bad('FROM sample\nCOPY ../outside /x\n')).toContain('is outside the build context');
    await symlink('/etc', join(ctx, 'escape')).catch(() => undefined);
    expect(await bad('FROM sample\nCOPY escape /x\n')).toContain('outside the build context');
    expect(await bad('FROM sample\nCOPY missing.txt /x\n')).toContain('"missing.txt" not found in the build context');
    // An absolute source is relative to the context, as in Docker: the host's /etc is not reachable.
    expect(await bad('FROM sample\nCOPY /etc/passwd /x\n')).toContain('"/etc/passwd" not found in the build context');
    expect(await bad('FROM sample\nCOPY keep/skip.log /x\n')).toContain('excluded by .dockerignore');
    expect(await bad('FROM sample AS a\n', ['--target', 'nope'])).toContain('target stage "nope" could not be found');
    expect(await bad('FROM sample AS a\nCOPY --from=b /x /x\nFROM sample AS b\nCOPY --from=a /y /y\n')).toContain('circular dependency');
    // --pull never: a missing image is not looked for on docker.io (tests reach only 127.0.0.1).
    expect(await bad('FROM nosuchimage\n', ['--pull', 'never'])).toContain('FROM nosuchimage: no such image in the store');
    const other = process.arch === 'x64' ? 'linux/arm64' : 'linux/amd64';
    expect(await bad(`FROM --platform=${other} sample\n`)).toContain(`FROM --platform=${other}: layerfs builds for the host platform only`);
    expect(await readdir(join(root, 'containers')).catch(() => [])).toEqual([]);
    expect(unionMounts().filter((m) => m.mountpoint.startsWith(root))).toEqual([]);
  });
});
