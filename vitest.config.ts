import { defineConfig } from 'vitest/config';

// Two projects: `unit` runs anywhere; `mount` mounts real FUSE and overlay filesystems
// and needs root and /dev/fuse. CI always runs both. Mount tests run one file at a time
// because they share the kernel's mount table and the machine has two cores.
export default defineConfig({
  test: {
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
          fileParallelism: false,
          globalSetup: ['test/helpers/global-setup.ts'],
          setupFiles: ['test/helpers/mount-guard.ts'],
        },
      },
    ],
  },
});
