import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Integration tests start real servers, engines and builds: generous limits, no retries.
    testTimeout: 120_000,
    hookTimeout: 1_800_000,
    pool: 'forks',
    // 2 cores here: integration suites that build images or run ComfyUI must not overlap.
    fileParallelism: process.env.VITEST_SERIAL !== '1',
    maxWorkers: 2,
    setupFiles: ['test/helpers/setup.ts'],
  },
});
