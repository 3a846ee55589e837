// Latency suite (issue 2): publish-to-handler-start latency at a paced 1,000 msg/s.
//
// The forked publisher stamps each body with its wall-clock publish time (performance.timeOrigin
// + performance.now(): processes on one machine share the clock); the no-op handler subtracts it
// from the time it starts. 1,000 sessions round-robin (one message per session per second).
// A 2 s warm-up at the same rate creates every session first, so the measured window sees live
// sessions; the warm-up's own numbers (which include creating the sessions) are reported too.
// Run once with the memory store and once with Postgres (which adds publish-to-commit latency).
import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { createRuntime, defineAgent } from '../dist/runtime/index.js';
import {
  PARTITIONS, PG_URL, QUICK, cpuDelta, cpuMark, dropSchema, forkPublisher, log, percentiles, quietLogger, schemaName,
  startNats, waitUntil, wallNow,
} from './lib.mjs';

const outPath = process.argv[2];
const RATE = Number(process.env.BENCH_LATENCY_RATE ?? 1000);
const DURATION_MS = Number(process.env.BENCH_LATENCY_MS ?? (QUICK ? 5000 : 10_000));
const WARMUP_MS = 2000;
const SESSIONS = 1000;

const nats = await startNats();
const pub = await forkPublisher(nats.url);
const results = { rate: RATE, durationMs: DURATION_MS, warmupMs: WARMUP_MS, sessions: SESSIONS, partitions: PARTITIONS, runs: {} };
const schemas = [];

async function measure(kind) {
  let phase = 'warmup';
  const lat = { warmup: [], measured: [] };
  const commitLat = { warmup: [], measured: [] };
  let committed = 0;
  const noop = defineAgent({
    type: 'noop',
    onMessage: 'queue',
    handle(batch) {
      const now = wallNow();
      for (const m of batch) lat[phase].push(now - m.body.t);
      return undefined;
    },
  });
  const config = { natsUrl: nats.url, partitions: PARTITIONS, defaultAgentType: 'noop', logLevel: 'error' };
  if (kind === 'memory') config.store = 'memory';
  else {
    const schema = schemaName('lat');
    schemas.push(schema);
    Object.assign(config, { store: 'auto', databaseUrl: PG_URL, databaseSchema: schema });
  }
  const rt = await createRuntime({ agents: [noop], config, logger: quietLogger() });
  rt.host.listen({
    onCommitted(rec) {
      const now = wallNow();
      for (const h of rec.history) commitLat[phase].push(now - h.body.t);
      committed += rec.history.length;
    },
  });
  const job = { mode: 'paced', rate: RATE, subjectPrefix: 'agentry.in.', idPrefix: `${kind}-`, sessions: SESSIONS };
  const warm = await pub.start({ ...job, durationMs: WARMUP_MS });
  await waitUntil(() => committed >= warm.count, 'warm-up to finish', 60_000);
  phase = 'measured';
  committed = 0;
  const c0 = cpuMark(nats.pid, pub.pid);
  const rep = await pub.start({ ...job, durationMs: DURATION_MS });
  await waitUntil(() => committed >= rep.count, 'measured messages to commit', 60_000);
  const c1 = cpuMark(nats.pid, pub.pid);
  await rt.stop();
  return {
    handlerStartMs: percentiles(lat.measured),
    publishToCommitMs: percentiles(commitLat.measured),
    warmupHandlerStartMs: percentiles(lat.warmup),
    pubAckMs: rep.pubAckMs,
    achievedRate: Math.round(rep.publishRate),
    cpu: cpuDelta(c0, c1, cpus().length),
  };
}

try {
  for (const kind of ['memory', 'pg']) {
    results.runs[kind] = await measure(kind);
    const h = results.runs[kind].handlerStartMs;
    log(`latency ${kind}: handler start p50 ${h.p50} ms p99 ${h.p99} ms (n=${h.n}); commit p99 ${results.runs[kind].publishToCommitMs.p99} ms`);
  }
} finally {
  await pub.stop();
  for (const s of schemas) await dropSchema(s).catch(() => undefined);
  await nats.cleanup();
}
writeFileSync(outPath, JSON.stringify(results, null, 2));
// Exit explicitly: a ref'd timer left in a stopped runtime (the scheduler left one until 0c1de4c)
// must not stretch the run.
process.exit(0);
