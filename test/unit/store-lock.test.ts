import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { acquireLock, tryLock } from '../../src/store/store-lock.js';
import { tempDir } from '../helpers/temp.js';

describe('store lock', () => {
  it('is exclusive, records the pid, and is released', async () => {
    const f = join(await tempDir(), 'lock');
    const a = await tryLock(f);
    expect(a).toBeDefined();
    expect((await readFile(f, 'utf8')).trim()).toBe(String(process.pid));
    expect(await tryLock(f)).toBeUndefined();
    await a!.release();
    expect(existsSync(f)).toBe(false);
  });
  it('takes over a lock whose owner is dead', async () => {
    const f = join(await tempDir(), 'lock');
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout.toString();
    await writeFile(f, `${dead}\n`);
    const l = await tryLock(f);
    expect(l).toBeDefined();
    expect((await readFile(f, 'utf8')).trim()).toBe(String(process.pid));
    await l!.release();
  });
  it('waiters get the lock in turn', async () => {
    const f = join(await tempDir(), 'lock');
    const order: number[] = [];
    const work = async (n: number): Promise<void> => {
      const l = await acquireLock(f);
      order.push(n);
      await new Promise((r) => setTimeout(r, 5));
      order.push(n);
      await l.release();
    };
    await Promise.all([work(1), work(2), work(3)]);
    // Never interleaved: each holder's two entries are adjacent.
    for (let i = 0; i < order.length; i += 2) expect(order[i]).toBe(order[i + 1]);
  });
});
