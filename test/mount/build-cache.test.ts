/**
 * `layerfs build` end to end on the sample image: a cold build whose RUN layers carry the
 * whiteouts and opaque directories the mount recorded, an image that `layerfs run`
 * executes, a fully cached rebuild (same image id), misses that name what changed (a
 * context file by path, a build arg, the instruction), --no-cache, and a failing RUN that
 * leaves no container, mount or cache entry behind.
 */
import { execFile, spawn } from 'node:child_process';
import { lstat, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { cli, cliOk, LAYERFS } from '../helpers/cli.js';
import { unionMounts } from '../helpers/mounts.js';
import { storeWithSampleImage } from '../helpers/sample-image.js';
import * as sys from '../../src/sys/native.js';

const exec = promisify(execFile);

const DOCKERFILE = `FROM sample
ARG GREETING=hi
ENV APPDIR=/srv
WORKDIR $APPDIR
COPY a.txt sub ./
RUN echo "$GREETING" > greeting && rm /etc/motd && rm -rf /app && mkdir /app && echo new > /app/only
LABEL org.example.step=label
CMD ["cat", "/srv/greeting", "/srv/a.txt"]
`;

interface Inspect {
  Id: string;
  Config: Record<string, unknown>;
  Store: { Layers: { Diff: string; DiffID: string }[] };
}

describe.skipIf(!inject('canMount'))('layerfs build: steps, layers and the cache', () => {
  let root: string;
  let ctx: string;

  const build = (args: string[]) => cli(root, ['build', ...args]);
  const stepLines = (stderr: string): string[] => stderr.split('\n').filter((l) => /^#\d+ (CACHED|MISS)/.test(l));
  const inspect = async (ref: string): Promise<Inspect> => (JSON.parse(await cliOk(root, ['inspect', ref])) as Inspect[])[0]!;
  const nothingLeft = async (): Promise<void> => {
    expect(await readdir(join(root, 'containers')).catch(() => [])).toEqual([]);
    expect(unionMounts().filter((m) => m.mountpoint.startsWith(root))).toEqual([]);
    const { stdout } = await exec('runc', ['--root', join(root, 'runtime', 'runc'), 'list', '-q']).catch(() => ({ stdout: '' }));
    expect(stdout.trim()).toBe('');
  };

  beforeAll(async () => {
    const s = await storeWithSampleImage();
    root = s.root;
    ctx = join(s.work, 'ctx');
    await mkdir(join(ctx, 'sub'), { recursive: true });
    await writeFile(join(ctx, 'a.txt'), 'from the context\n');
    await writeFile(join(ctx, 'sub', 's.txt'), 'sub file\n');
    await writeFile(join(ctx, 'Dockerfile'), DOCKERFILE);
  });

  it('builds cold: every step misses and says it was never built; metadata steps add empty-layer history', async () => {
    const r = await build(['-t', 'built:1', ctx]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toMatch(/^sha256:[0-9a-f]{64}$/);
    const lines = stepLines(r.stderr);
    expect(lines[0]).toBe('#3 MISS: not in the cache (never built)');
    expect(lines.slice(1).every((l) => l.includes('its parent changed'))).toBe(true);
    const img = await inspect('built:1');
    expect(img.Config).toMatchObject({ Env: ['PATH=/bin', 'APPDIR=/srv'], WorkingDir: '/srv', Cmd: ['cat', '/srv/greeting', '/srv/a.txt'], Labels: { 'org.example.step': 'label' } });
    const history = JSON.parse(await cliOk(root, ['history', '--json', 'built:1'])) as { CreatedBy: string; Size: number }[];
    expect(history.slice(0, 6).map((h) => h.CreatedBy)).toEqual([
      'CMD ["cat" "/srv/greeting" "/srv/a.txt"]',
      'LABEL org.example.step=label',
      'RUN |1 GREETING=hi /bin/sh -c echo "$GREETING" > greeting && rm /etc/motd && rm -rf /app && mkdir /app && echo new > /app/only # buildkit',
      'COPY a.txt sub ./ # buildkit',
      'WORKDIR /srv',
      'ENV APPDIR=/srv',
    ]);
    await nothingLeft();
  });

  it('the RUN layer holds a whiteout for the deleted file and an opaque directory for the recreated one', async () => {
    const img = await inspect('built:1');
    const runLayer = img.Store.Layers.at(-1)!.Diff;
    const copyLayer = img.Store.Layers.at(-2)!.Diff;
    const motd = await lstat(join(runLayer, 'etc', 'motd'));
    expect(motd.isCharacterDevice() && motd.rdev === 0).toBe(true);
    expect((await sys.lgetxattr(join(runLayer, 'app'), 'trusted.overlay.opaque'))?.toString()).toBe('y');
    expect(await readFile(join(runLayer, 'app', 'only'), 'utf8')).toBe('new\n');
    expect(await readFile(join(runLayer, 'srv', 'greeting'), 'utf8')).toBe('hi\n');
    // The runtime's mount points (/proc, /dev, /sys, /etc/hosts…) are not part of the layer.
    expect((await readdir(runLayer)).sort()).toEqual(['app', 'etc', 'srv']);
    expect(await readdir(join(runLayer, 'etc'))).toEqual(['motd']);
    // COPY of a folder copies its contents; owners become root.
    expect((await readdir(join(copyLayer, 'srv'))).sort()).toEqual(['a.txt', 's.txt']);
    expect((await lstat(join(copyLayer, 'srv', 'a.txt'))).uid).toBe(0);
  });

  it('the built image runs with layerfs run (its Cmd, WORKDIR, files of both layers)', async () => {
    const r = await cli(root, ['run', '--rm', 'built:1']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('hi\nfrom the context\n');
    const gone = await cli(root, ['run', '--rm', 'built:1', 'sh', '-c', 'test -e /etc/motd || echo gone; ls /app']);
    expect(gone.stdout).toBe('gone\nonly\n');
    await nothingLeft();
  });

  it('rebuilds fully from the cache: every step CACHED and the same image id', async () => {
    const first = (await inspect('built:1')).Id;
    const r = await build(['-t', 'built:again', ctx]);
    expect(r.code, r.stderr).toBe(0);
    expect(stepLines(r.stderr)).toEqual(['#3 CACHED', '#4 CACHED', '#5 CACHED', '#6 CACHED', '#7 CACHED', '#8 CACHED']);
    expect(r.stdout.trim()).toBe(first);
  });

  it('mtimes do not count: touching a source keeps the cache', async () => {
    await exec('touch', ['-d', '2001-01-01', join(ctx, 'a.txt')]);
    const r = await build([ctx]);
    expect(stepLines(r.stderr)).toContain('#5 CACHED');
  });

  it('a changed context file misses at the COPY that reads it, names the file, and every later step re-runs', async () => {
    await writeFile(join(ctx, 'sub', 's.txt'), 'sub file, edited\n');
    const r = await build(['-t', 'built:2', ctx]);
    expect(r.code, r.stderr).toBe(0);
    const lines = stepLines(r.stderr);
    expect(lines.slice(0, 2)).toEqual(['#3 CACHED', '#4 CACHED']);
    expect(lines[2]).toBe('#5 MISS: source files differ (changed: sub/s.txt)');
    expect(lines[3]).toBe('#6 MISS: its parent changed (step #5 was rebuilt), so this and every later step run again');
    expect(lines).toHaveLength(6);
    const files = await cliOk(root, ['run', '--rm', 'built:2', 'cat', '/srv/s.txt']);
    expect(files).toBe('sub file, edited\n');
  });

  it('a changed build arg misses at the first RUN and says which arg', async () => {
    const r = await build(['--build-arg', 'GREETING=hello', ctx]);
    expect(r.code, r.stderr).toBe(0);
    expect(stepLines(r.stderr)[3]).toBe('#6 MISS: build arg changed (GREETING: "hi" → "hello")');
  });

  it('a changed instruction says what it was before', async () => {
    await writeFile(join(ctx, 'Dockerfile'), DOCKERFILE.replace('LABEL org.example.step=label', 'LABEL org.example.step=changed'));
    const r = await build([ctx]);
    expect(r.code, r.stderr).toBe(0);
    expect(stepLines(r.stderr)[4]).toBe('#7 MISS: the instruction changed (last built as "LABEL org.example.step=label")');
    await writeFile(join(ctx, 'Dockerfile'), DOCKERFILE);
  });

  it('--no-cache runs every step and says so', async () => {
    const r = await build(['--no-cache', ctx]);
    expect(r.code, r.stderr).toBe(0);
    expect(stepLines(r.stderr).every((l) => l.endsWith('MISS: cache disabled (--no-cache)'))).toBe(true);
  });

  it('a failing RUN shows the step and exit code, caches nothing and leaves nothing behind', async () => {
    const entries = async (): Promise<number> => (await readdir(join(root, 'build-cache', 'entries'))).length;
    const before = await entries();
    await writeFile(join(ctx, 'Dockerfile'), 'FROM sample\nRUN echo partial > /partial && exit 3\n');
    const r = await build([ctx]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('Dockerfile:2: step #2 RUN echo partial > /partial && exit 3');
    expect(r.stderr).toContain('returned a non-zero code: 3');
    expect(await entries()).toBe(before);
    await nothingLeft();
    await writeFile(join(ctx, 'Dockerfile'), DOCKERFILE);
  });

  it('Ctrl-C in the middle of a RUN kills it, caches nothing and leaves nothing behind', async () => {
    const entries = async (): Promise<number> => (await readdir(join(root, 'build-cache', 'entries'))).length;
    const before = await entries();
    await writeFile(join(ctx, 'Dockerfile'), 'FROM sample\nRUN echo started && sleep 60 && echo never > /never\n');
    const p = spawn(process.execPath, [LAYERFS, '--root', root, 'build', ctx], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    const exited = new Promise<number | null>((r) => p.on('close', r));
    await new Promise<void>((resolve) => {
      p.stderr.on('data', (d: Buffer) => {
        stderr += d.toString();
        // The RUN's output is shown when it ends; its MISS line comes just before it starts.
        if (stderr.includes('#2 MISS')) setTimeout(resolve, 3000);
      });
    });
    p.kill('SIGINT');
    expect(await exited).not.toBe(0);
    expect(stderr).toContain('step #2 RUN echo started && sleep 60 && echo never > /never: interrupted');
    expect(await entries()).toBe(before);
    await nothingLeft();
    await writeFile(join(ctx, 'Dockerfile'), DOCKERFILE);
  });
});
