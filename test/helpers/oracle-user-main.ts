/**
 * The oracle's other user: started by FsSubject under `setpriv --reuid/--regid`, it reads
 * one {root, op} JSON line at a time from stdin, runs the op with an FsSubject on that
 * mount point (through node:fs, so the kernel checks this process's credentials), and
 * writes the OpResult as one JSON line. Exits when stdin closes.
 */
import { createInterface } from 'node:readline';
import { FsSubject } from './oracle-fs-subject.js';
import type { Op } from './oracle.js';

const subjects = new Map<string, FsSubject>();
const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  const { root, op } = JSON.parse(line) as { root: string; op: Op };
  if (!subjects.has(root)) subjects.set(root, new FsSubject(`uid ${process.getuid?.()}`, root));
  const result = await subjects.get(root)!.apply(op);
  process.stdout.write(JSON.stringify(result) + '\n');
}
for (const s of subjects.values()) await s.closeAll();
