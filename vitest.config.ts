import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { defineConfig } from 'vitest/config';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/**
 * Seconds each test file took in a measured full run (test/durations.json, written by
 * `node ops/test-durations.mjs <vitest json report>`). Vitest orders files longest first only
 * from its own cache of the last run, which a clean clone (CI) does not have: it then orders by
 * file size, and a short file that runs a minute of load can start last while the other worker
 * idles. With the measured durations the longest files start first and the short ones fill in
 * at the end, so both workers finish together.
 */
const durations = JSON.parse(readFileSync(new URL('./test/durations.json', import.meta.url), 'utf8')) as { files: Record<string, number> };

/** Longest measured file first; files not measured yet (new ones) before all of them, as Vitest does. */
class LongestFirstSequencer extends BaseSequencer {
  override sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const key = (f: TestSpecification): string => relative(this.ctx.config.root, f.moduleId).split('\\').join('/');
    const weight = (f: TestSpecification): number => durations.files[key(f)] ?? Infinity;
    return Promise.resolve([...files].sort((a, b) => weight(b) - weight(a) || (key(a) < key(b) ? -1 : 1)));
  }
}

// Integration suites start real nats-server processes and use real Postgres; they run in
// separate forks, three at a time. CI machines have 2 cores, but a test file keeps about a third
// of one core busy: the rest of its time it waits on servers, timers, child processes and paced
// load (the chaos suites run a fixed rate for their length). Four forks were ~25 s faster on a
// quiet machine; on a loaded one the PGlite children of the crash suites missed their 30 s start
// deadline (docs/testing.md). `npx vitest run --maxWorkers 2` runs fewer.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    maxWorkers: 3,
    testTimeout: 60_000,
    // Suites start their own nats-server, Postgres schema and runtimes in hooks: slow on a loaded box.
    hookTimeout: 120_000,
    reporters: ['default'],
    sequence: { sequencer: LongestFirstSequencer },
  },
});
