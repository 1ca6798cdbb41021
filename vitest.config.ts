import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Integration tests start real servers and child processes; two cores, so keep the
    // parallelism modest and the timeouts generous but bounded. Most tests run the CLI or the
    // binary a few times: a node start-up each, half a second on an idle machine and up to
    // several seconds with a second suite running beside this one. 20 s per test was missed
    // there (two suites at once on a loaded two-core machine); a hung test still ends.
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 120_000,
    globalSetup: ['test/helpers/global-setup.ts'],
  },
});
