import { defineConfig } from 'vitest/config';

// Integration suites start real nats-server processes and use real Postgres; they run in
// separate forks, two at a time (CI machines have 2 cores).
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    reporters: ['default'],
  },
});
