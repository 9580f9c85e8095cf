/**
 * The mount process's inline backing calls (src/union/backing-calls.ts): once switched on,
 * the cheap calls have done their work and settled before they return, errors included;
 * big copies and recursive removals (but of a small flat directory) stay on the pool; off again, every call is a pool hop.
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import * as calls from '../../src/union/backing-calls.js';
import * as sys from '../../src/sys/native.js';

const PENDING = Symbol('pending');

/** What `p` has settled to by now: its value, its error's code, or PENDING. */
async function now(p: Promise<unknown>): Promise<unknown> {
  const seen = p.then(
    (v) => v,
    (err: NodeJS.ErrnoException) => `rejected ${err.code}`,
  );
  // A settled call gets through in a few microtask turns (an async wrapper adds two); a
  // pool call cannot settle before the event loop turns, which microtasks never let it.
  let later: Promise<unknown> = Promise.resolve();
  for (let i = 0; i < 10; i++) later = later.then(() => undefined);
  return Promise.race([seen, later.then(() => PENDING)]);
}

afterEach(() => calls.runBackingCallsInline(false));

describe('backing calls', () => {
  it('inline: metadata calls are done, and settled, when they return; failures reject the same way', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'lf-inline-'));
    try {
      calls.runBackingCallsInline();
      const made = calls.mkdir(join(dir, 'd'));
      expect(existsSync(join(dir, 'd'))).toBe(true);
      expect(await now(made)).toBeUndefined();
      expect(await now(calls.lstat(join(dir, 'nothing')))).toBe('rejected ENOENT');
      const fd = await calls.openFd(Buffer.from(join(dir, 'f')), 0o101 /* O_WRONLY|O_CREAT */, 0o644);
      expect(await now(calls.closeFd(fd))).toBeUndefined();
      expect(await now(sys.lsetxattr(join(dir, 'f'), 'user.k', Buffer.from('v')))).toBeUndefined();
      expect(await now(sys.lgetxattr(join(dir, 'f'), 'user.k'))).toEqual(Buffer.from('v'));
      expect(await now(sys.lremovexattr(join(dir, 'f'), 'user.nothing'))).toBe('rejected ENODATA');
      // A recursive removal grows with the tree: the pool, but for a small flat directory
      // (a removed merged directory's whiteouts in the work dir).
      await writeFile(join(dir, 'd', 'w1'), '');
      await writeFile(join(dir, 'd', 'w2'), '');
      expect(await now(calls.rm(join(dir, 'd'), { recursive: true, force: true }))).toBeUndefined();
      expect(existsSync(join(dir, 'd'))).toBe(false);
      await mkdir(join(dir, 'nested', 'sub'), { recursive: true });
      const nested = calls.rm(join(dir, 'nested'), { recursive: true, force: true });
      expect(await now(nested)).toBe(PENDING);
      await nested;
      await mkdir(join(dir, 'many'));
      for (let i = 0; i < 65; i++) await writeFile(join(dir, 'many', `f${i}`), '');
      const many = calls.rm(join(dir, 'many'), { recursive: true, force: true });
      expect(await now(many)).toBe(PENDING);
      await many;
      expect(existsSync(join(dir, 'nested')) || existsSync(join(dir, 'many'))).toBe(false);
      expect(await now(calls.rm(join(dir, 'gone'), { recursive: true, force: true }))).toBe(PENDING); // missing: node's rm says so
    } finally {
      calls.runBackingCallsInline(false);
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('inline: a copy of up to 64 KiB runs inline, a bigger one on the pool', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'lf-inline-'));
    try {
      await writeFile(join(dir, 'src'), Buffer.alloc(256 * 1024, 7));
      const src = await calls.openFd(Buffer.from(join(dir, 'src')), 0);
      const dst = await calls.openFd(Buffer.from(join(dir, 'dst')), 0o102 /* O_RDWR|O_CREAT */, 0o644);
      calls.runBackingCallsInline();
      expect(await now(sys.copyFileRange(src, 0, dst, 0, 64 * 1024))).toBe(64 * 1024);
      const big = sys.copyFileRange(src, 0, dst, 0, 256 * 1024);
      expect(await now(big)).toBe(PENDING);
      expect(await big).toBe(256 * 1024);
      calls.runBackingCallsInline(false);
      await calls.closeFd(src);
      await calls.closeFd(dst);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('off (the default, and every process but a serving mount): each call is a pool hop', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'lf-inline-'));
    try {
      expect(calls.backingCallsInline()).toBe(false);
      expect(await now(calls.lstat(dir))).toBe(PENDING);
      expect(await now(sys.llistxattr(dir))).toBe(PENDING);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
