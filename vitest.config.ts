import { defineConfig } from 'vitest/config';

// Integration suites start real nats-server processes and use real Postgres; they run in
// separate forks, two at a time (CI machines have 2 cores).
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 60_000,
    // Suites start their own nats-server, Postgres schema and runtimes in hooks: slow on a loaded box.
    hookTimeout: 120_000,
    reporters: ['default'],
  },
});
