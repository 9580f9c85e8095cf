/**
 * The mount process's umask, read once. Node can only read a umask by setting it
 * (umask(0), then umask(old): two syscalls), and the union needs it for every object it
 * creates; a serving mount process never changes it again, so it is fixed at start.
 */
let fixedUmask: number | undefined;

/** For a process that never changes its umask again (the mount process, once it serves). */
export function fixProcessUmask(): void {
  fixedUmask = process.umask();
}

/** The umask fixed by fixProcessUmask, undefined in a process that may still change it. */
export function fixedProcessUmask(): number | undefined {
  return fixedUmask;
}

/** The process umask (process.umask() without arguments only reads it; no warning on Node 20). */
export function processUmask(): number {
  return fixedUmask ?? process.umask();
}
