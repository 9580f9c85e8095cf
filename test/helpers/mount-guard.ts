/**
 * setupFiles of the `mount` project: after each test file, every mount process it
 * started is stopped, and any FUSE or overlay mount that appeared during the file and
 * is still there fails the file (after being cleaned up, so later files start clean).
 */
import { afterAll, beforeAll, inject } from 'vitest';
import { stopAllMountProcesses } from './mount-process.js';
import { forceUnmount, unionMounts } from './mounts.js';

let before = new Set<string>();
// Only this run's mounts: every test directory lives under the run root.
const ofThisRun = () => unionMounts().filter((m) => m.mountpoint.startsWith(inject('runRoot') + '/'));

beforeAll(() => {
  before = new Set(ofThisRun().map((m) => m.mountpoint));
});

afterAll(async () => {
  await stopAllMountProcesses();
  const left = ofThisRun().filter((m) => !before.has(m.mountpoint));
  for (const m of left) await forceUnmount(m.mountpoint);
  if (left.length > 0) {
    throw new Error(`this test file left mounts behind: ${left.map((m) => `${m.mountpoint} (${m.fstype})`).join(', ')}`);
  }
});
