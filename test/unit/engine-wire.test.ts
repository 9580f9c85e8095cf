/**
 * wire.ts against the kernel's own header: a C program compiled against it prints the
 * sizeof and offsetof of every struct and field wire.ts uses, and each must match LAYOUT.
 * The header is engine-c's fuse-kernel.h (7.40 additions on top of <linux/fuse.h>) when
 * present, else <linux/fuse.h>, whose older fields (`since` > its minor) are skipped.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LAYOUT, attrOut, direntSize, entryOut, openOut, writeDirent } from '../../src/engine/wire.js';
import { tempDir } from '../helpers/temp.js';

const root = join(import.meta.dirname, '..', '..');
const engineHeader = join(root, 'src', 'engine', 'native', 'fuse-kernel.h');

async function kernelLayout(): Promise<Map<string, number>> {
  const dir = await tempDir('layerfs-wire-');
  const lines: string[] = [];
  for (const [struct, { fields }] of Object.entries(LAYOUT)) {
    lines.push(`  printf("${struct} %zu\\n", sizeof(struct ${struct}));`);
    for (const [field, f] of Object.entries(fields)) {
      const since = typeof f === 'number' ? 0 : f.since;
      const print = `  printf("${struct}.${field} %zu\\n", offsetof(struct ${struct}, ${field}));`;
      lines.push(since ? `#if FUSE_KERNEL_MINOR_VERSION >= ${since}\n${print}\n#endif` : print);
    }
  }
  const include = existsSync(engineHeader) ? `#include "${engineHeader}"` : '#include <linux/fuse.h>';
  const src = join(dir, 'layout.c');
  writeFileSync(src, `#include <stddef.h>\n#include <stdio.h>\n${include}\nint main(void) {\n${lines.join('\n')}\n  printf("minor %d\\n", FUSE_KERNEL_MINOR_VERSION);\n  return 0;\n}\n`);
  const exe = join(dir, 'layout');
  execFileSync('cc', ['-std=gnu11', '-Wall', '-Werror', '-o', exe, src]);
  const out = execFileSync(exe, { encoding: 'utf8' });
  return new Map(out.trim().split('\n').map((l) => [l.split(' ')[0]!, Number(l.split(' ')[1])]));
}

describe('wire layout', () => {
  it('matches the kernel header, struct by struct and field by field', async () => {
    const k = await kernelLayout();
    const minor = k.get('minor')!;
    expect(minor).toBeGreaterThanOrEqual(38);
    let compared = 0;
    for (const [struct, { size, fields }] of Object.entries(LAYOUT)) {
      expect(`${struct} ${k.get(struct)}`).toBe(`${struct} ${size}`);
      for (const [field, f] of Object.entries(fields)) {
        const offset = typeof f === 'number' ? f : f.at;
        const since = typeof f === 'number' ? 0 : f.since;
        if (since > minor) continue;
        expect(`${struct}.${field} ${k.get(`${struct}.${field}`)}`).toBe(`${struct}.${field} ${offset}`);
        compared++;
      }
    }
    expect(compared).toBeGreaterThan(120);
  });

  it('encodes replies at the header offsets', () => {
    const st = {
      ino: 2 ** 40 + 7, mode: 0o100644, nlink: 3, uid: 1000, gid: 1001, rdev: 0, size: 5n, blksize: 4096, blocks: 8,
      atime: { sec: 1, nsec: 2 }, mtime: { sec: 3, nsec: 4 }, ctime: { sec: 5, nsec: 6 },
    };
    const e = entryOut(9n, st, { entry: 3600, attr: 60 });
    expect(e.readBigUInt64LE(0)).toBe(9n);
    expect(e.readBigUInt64LE(16)).toBe(3600n);
    expect(e.readBigUInt64LE(24)).toBe(60n);
    expect(e.readBigUInt64LE(40)).toBe(BigInt(2 ** 40 + 7));
    expect(e.readUInt32LE(40 + 60)).toBe(0o100644);
    expect(e.readUInt32LE(40 + 64)).toBe(3);
    const a = attrOut(st, 7);
    expect(a.readBigUInt64LE(0)).toBe(7n);
    expect(a.readUInt32LE(16 + 68)).toBe(1000);
    expect(a.readUInt32LE(16 + 52)).toBe(4);
    const o = openOut(12, 0x80, 5);
    expect([o.readBigUInt64LE(0), o.readUInt32LE(8), o.readInt32LE(12)]).toEqual([12n, 0x80, 5]);
    const d = Buffer.alloc(64);
    expect(writeDirent(d, 0, 42n, 3, 8, Buffer.from('abc'))).toBe(direntSize(3, false));
    expect(direntSize(3, false)).toBe(32);
    expect(d.toString('latin1', 24, 27)).toBe('abc');
  });
});
