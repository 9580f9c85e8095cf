import { defineConfig } from 'vitest/config';

// Two projects: `unit` runs anywhere; `mount` mounts real FUSE and overlay filesystems
// and needs root and /dev/fuse; with CI=true the global setup fails the run when it cannot
// mount (test/helpers/global-setup.ts). Mount tests run one file at a time, in one fork,
// because they share the kernel's mount table and the machine has two cores
// (`fileParallelism` is a root-only option that vitest ignores inside a project;
// `singleFork` is the per-project way).
export default defineConfig({
  test: {
    // With CI=true a skipped test fails the run (test/helpers/no-skips-reporter.ts).
    reporters: ['default', './test/helpers/no-skips-reporter.ts'],
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          testTimeout: 30_000,
        },
      },
      {
        test: {
          name: 'mount',
          include: ['test/mount/**/*.test.ts', 'test/store/**/*.test.ts'],
          testTimeout: 120_000,
          hookTimeout: 120_000,
          poolOptions: { forks: { singleFork: true } },
          globalSetup: ['test/helpers/global-setup.ts'],
          setupFiles: ['test/helpers/mount-guard.ts'],
        },
      },
    ],
  },
});
