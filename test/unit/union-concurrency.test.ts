import * as fsp from 'node:fs/promises';
import { constants as C } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { UnionFilesystem } from '../../src/union/union-fs.js';
import { makeLayers, ROOT, type TestLayers } from '../helpers/layers.js';

let layers: TestLayers | undefined;
afterEach(async () => {
  await layers?.cleanup();
  layers = undefined;
});

describe('union under concurrent requests', () => {
  it('copies a file up once when two writers open it at the same time', async () => {
    layers = await makeLayers([{ 'd/f': '0000000000' }]);
    const u = await UnionFilesystem.open({ lowerDirs: layers.lowers, upperDir: layers.upper, workDir: layers.work });
    const [a, b] = await Promise.all([u.open('/d/f', C.O_WRONLY, ROOT), u.open('/d/f', C.O_RDWR, ROOT)]);
    await Promise.all([u.write('/d/f', a, Buffer.from('A'), 1, 1), u.write('/d/f', b, Buffer.from('B'), 1, 8)]);
    await Promise.all([u.release('/d/f', a), u.release('/d/f', b)]);
    expect(await fsp.readFile(`${layers.upper}/d/f`, 'utf8')).toBe('0A000000B0');
    expect(await fsp.readdir(`${layers.work}/layerfs`)).toEqual([]);
  });

  it('keeps the namespace exact under many interleaved creates, renames and unlinks', async () => {
    const spec: Record<string, string> = {};
    for (let i = 0; i < 40; i++) spec[`d/l${i}`] = `lower ${i}`;
    layers = await makeLayers([spec]);
    const u = await UnionFilesystem.open({ lowerDirs: layers.lowers, upperDir: layers.upper, workDir: layers.work });
    const jobs: Promise<unknown>[] = [];
    for (let i = 0; i < 40; i++) {
      jobs.push(u.create(`/d/n${i}`, 0o644, C.O_WRONLY, ROOT).then((fh) => u.release(`/d/n${i}`, fh)));
      if (i % 2 === 0) jobs.push(u.unlink(`/d/l${i}`, ROOT));
      else jobs.push(u.rename(`/d/l${i}`, `/d/r${i}`, 0, ROOT));
    }
    await Promise.all(jobs);
    const names = (await u.readdir('/d')).map((e) => e.name).sort();
    const expected = [...Array(40).keys()].flatMap((i) => (i % 2 === 0 ? [`n${i}`] : [`n${i}`, `r${i}`])).sort();
    expect(names).toEqual(expected);
    // A fresh union over the same upper agrees (state on disk == state in memory).
    const again = await UnionFilesystem.open({ lowerDirs: layers.lowers, upperDir: layers.upper, workDir: layers.work });
    expect((await again.readdir('/d')).map((e) => e.name).sort()).toEqual(expected);
    expect((await again.readdir('/d')).every((e) => e.stat !== undefined)).toBe(true);
  });
});
