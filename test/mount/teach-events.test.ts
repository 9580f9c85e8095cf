/**
 * `layerfs events`: a live stream of a running container's copy-on-write events, read
 * from its writable layer while the test writes through the real mount: copy-up (with
 * the source layer and bytes), create, rename (file, and a lower directory via redirect),
 * whiteout, opaque directory, remove — and the stream ends when the container is removed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFile, mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { cliOk, LAYERFS, REPO } from '../helpers/cli.js';
import { run } from '../helpers/images.js';
import { storeWithSampleImage } from '../helpers/sample-image.js';
import { tempDir } from '../helpers/temp.js';

interface Ev {
  event: string;
  path: string;
  from?: string;
  bytes?: number;
  layer?: { position: number; createdBy: string };
}

describe.skipIf(!inject('canMount'))('layerfs events', () => {
  let root: string;
  let work: string;
  let child: ChildProcess | undefined;

  beforeAll(async () => {
    ({ work, root } = await storeWithSampleImage());
  });

  afterAll(() => {
    if (child?.exitCode === null && child.pid) process.kill(child.pid, 'SIGKILL');
  });

  it('streams copy-up, create, rename, whiteout, opaque and remove as they happen, and ends when the container goes', async () => {
    const mnt = join(work, 'm');
    await mkdir(mnt);
    await cliOk(root, ['mount', '--name', 'ev', 'sample', mnt]);
    const events: Ev[] = [];
    let stderr = '';
    let exited: Promise<number | null> = Promise.resolve(null);
    try {
      child = spawn(process.execPath, [LAYERFS, '--root', root, 'events', '--json', mnt], { stdio: ['ignore', 'pipe', 'pipe'] });
      exited = new Promise((resolve) => child!.on('exit', (code) => resolve(code)));
      let buf = '';
      child.stdout!.on('data', (d: Buffer) => {
        buf += d.toString();
        const lines = buf.split('\n');
        buf = lines.pop()!;
        for (const l of lines) events.push(JSON.parse(l) as Ev);
      });
      child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
      const waitFor = async (what: string, ok: () => boolean): Promise<void> => {
        for (let i = 0; i < 600 && !ok(); i++) await new Promise((r) => setTimeout(r, 25));
        if (!ok()) throw new Error(`no ${what}; events ${JSON.stringify(events)}; stderr ${stderr}`);
      };
      const until = async (what: string, pred: (e: Ev) => boolean): Promise<Ev> => {
        await waitFor(`${what} event`, () => events.some(pred));
        return events.find(pred)!;
      };
      await waitFor('ready line', () => /watching container ev/.test(stderr));

      await appendFile(join(mnt, 'etc', 'motd'), 'appended\n');
      const copy = await until('copy-up', (e) => e.event === 'copy-up' && e.path === '/etc/motd');
      expect(copy.layer).toMatchObject({ position: 1 });
      expect(copy.bytes).toBeGreaterThanOrEqual(65);
      expect(events).toContainEqual(expect.objectContaining({ event: 'copy-up', path: '/etc', layer: expect.objectContaining({ position: 1 }) }));

      await writeFile(join(mnt, 'root', 'new.txt'), 'new\n');
      await until('create', (e) => e.event === 'create' && e.path === '/root/new.txt');
      await rename(join(mnt, 'root', 'new.txt'), join(mnt, 'root', 'renamed.txt'));
      await until('rename', (e) => e.event === 'rename' && e.path === '/root/renamed.txt' && e.from === '/root/new.txt');

      await rm(join(mnt, 'etc', 'passwd'));
      const wh = await until('whiteout', (e) => e.event === 'whiteout' && e.path === '/etc/passwd');
      expect(wh.layer).toMatchObject({ position: 0 });

      await rm(join(mnt, 'app'), { recursive: true });
      await mkdir(join(mnt, 'app'));
      await until('opaque', (e) => e.event === 'opaque' && e.path === '/app');

      await rename(join(mnt, 'bin'), join(mnt, 'tools'));
      await until('dir rename', (e) => e.event === 'rename' && e.path === '/tools' && e.from === '/bin');
      await until('whiteout of the old name', (e) => e.event === 'whiteout' && e.path === '/bin');

      await rm(join(mnt, 'root', 'renamed.txt'));
      await until('remove', (e) => e.event === 'remove' && e.path === '/root/renamed.txt');
      // Nothing was reported as created or removed that was really renamed.
      expect(events.filter((e) => e.event === 'remove').map((e) => e.path)).toEqual(['/root/renamed.txt']);
      expect(events.some((e) => e.event === 'create' && e.path.startsWith('/tools'))).toBe(false);
    } finally {
      await cliOk(root, ['rm', '-f', 'ev']);
    }
    expect(await exited).toBe(0);
    expect(stderr).toMatch(/container ev was removed/);
  });
});
