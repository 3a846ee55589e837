// PGlite off the main thread (issue 12): `store.commit()` of 500 records per call on PGlite in
// this thread (createPgliteStore) and in a worker thread (createPgliteWorkerStore), each on a
// fresh data directory. Per mode: rows/s, and how busy the main thread was per record, measured
// with performance.eventLoopUtilization() (process.cpuUsage() counts every thread, so it is
// reported separately as the whole process's CPU per record).
//   depth 1: one commit in flight at a time (what one group-commit lane does);
//   depth 2: two in flight (the main thread prepares the next batch while the worker commits).
// Records look like the runtime's: a ~1 KB JSON snapshot, one history row, one transition.
//   npm run build && node bench/pglite-worker.mjs        BENCH_ROWS=20000, BENCH_ROUNDS=3 by default
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createPgliteStore } from '../dist/persistence/pgliteStore.js';
import { createPgliteWorkerStore, pgliteWorkerOf } from '../dist/persistence/pgliteWorkerStore.js';
import { median, round, tempDir } from './lib.mjs';

const ROWS = Number(process.env.BENCH_ROWS ?? 20_000);
const BATCH = 500;
const SESSIONS = 5_000; // rows cycle over these, so most commits update existing sessions
const STATE = 'n'.repeat(500);

function record(i, versions) {
  const sessionId = `s-${i % SESSIONS}`;
  const version = (versions.get(sessionId) ?? 0) + 1;
  versions.set(sessionId, version);
  const at = 1_700_000_000_000 + i;
  return {
    sessionId, type: 'noop', status: 'idle', lastSeq: i + 1, version, partition: i % 64, ownerEpoch: 0,
    snapshot: { status: 'active', value: 'idle', historyValue: {}, children: {}, context: { sessionId, type: 'noop', userState: { notes: STATE }, pending: [], batch: [], completed: null, attempt: 0, lastError: null, seq: i + 1 } },
    wakeAt: null, wakeEvents: [], wakePriority: null,
    history: [{ sessionId, seq: i + 1, kind: 'message', body: { i, t: at, p: 'x'.repeat(60) }, priority: 'normal', from: null, batchId: `${sessionId}:${i + 1}`, outcome: 'ok', at }],
    transitions: [{ sessionId, at, event: 'MESSAGE', from: 'idle', to: 'idle' }],
    outbox: [],
  };
}

async function run(mode, depth, make) {
  const tmp = tempDir(`agentry-bench-pglite-worker-${mode}-`);
  const store = make(join(tmp.dir, 'db'));
  try {
    await store.migrate();
    const versions = new Map();
    // Warm-up (JIT, PGlite caches), not measured.
    for (let k = 0; k < 4; k++) await store.commit(Array.from({ length: BATCH }, (_, j) => record(k * BATCH + j, versions)));
    let next = 4 * BATCH;
    const end = next + ROWS;
    const worker = pgliteWorkerOf(store);
    const welu0 = worker?.performance.eventLoopUtilization();
    const elu0 = performance.eventLoopUtilization();
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const lane = async () => {
      while (next < end) {
        const from = next;
        next += BATCH;
        await store.commit(Array.from({ length: BATCH }, (_, j) => record(from + j, versions)));
      }
    };
    await Promise.all(Array.from({ length: depth }, lane));
    const ms = performance.now() - t0;
    const elu = performance.eventLoopUtilization(elu0);
    const cpu = process.cpuUsage(cpu0);
    const welu = worker?.performance.eventLoopUtilization(welu0);
    return {
      mode, depth, rows: ROWS, rowsPerSec: round(ROWS / (ms / 1000)),
      mainThreadBusy: round(elu.utilization, 3),
      mainThreadUsPerRow: round((elu.active * 1000) / ROWS, 2),
      processCpuUsPerRow: round((cpu.user + cpu.system) / ROWS, 2),
      workerThreadBusy: welu ? round(welu.utilization, 3) : null,
    };
  } finally {
    await store.close();
    tmp.cleanup();
  }
}

// Rounds alternate the order of the modes, and the table shows each metric's median: on a
// shared 2-core box one run of each is mostly noise.
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const modes = { 'in-thread': (dataDir) => createPgliteStore({ dataDir }), worker: (dataDir) => createPgliteWorkerStore({ dataDir }) };
const runs = [];
for (let r = 0; r < ROUNDS; r++) {
  for (const depth of [1, 2]) {
    const order = r % 2 === 0 ? ['in-thread', 'worker'] : ['worker', 'in-thread'];
    for (const mode of order) runs.push(await run(mode, depth, modes[mode]));
  }
}
const table = [];
for (const depth of [1, 2]) {
  for (const mode of Object.keys(modes)) {
    const mine = runs.filter((x) => x.mode === mode && x.depth === depth);
    const row = { mode, depth, rows: ROWS, rounds: mine.length };
    for (const k of ['rowsPerSec', 'mainThreadBusy', 'mainThreadUsPerRow', 'processCpuUsPerRow', 'workerThreadBusy']) {
      row[k] = mine[0][k] === null ? null : median(mine.map((x) => x[k]));
    }
    table.push(row);
  }
}
console.table(table);
console.log(JSON.stringify({ runs }, null, 0));
