import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Integration and e2e tests start servers and processes and measure timing
    // (RTT, failover): one file at a time, so they never compete for the 2 cores.
    pool: 'forks',
    maxWorkers: 1,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    teardownTimeout: 20_000,
    // Servers log JSON lines; keep test output to warnings unless asked.
    env: { ZONAL_LOG_LEVEL: process.env['ZONAL_LOG_LEVEL'] ?? 'warn' },
  },
});
