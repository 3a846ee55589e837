// Fair share between tenants (issue 17 §3): does a small tenant keep its latency when a big one
// floods the node? One runtime (memory store: admission is what is measured, not the store),
// handler slots AGENTRY_MAX_ACTIVE_SESSIONS = SLOTS, each turn WORK_MS of (async) work. Two
// publisher processes (bench/publisher.mjs, paced jobs) send for DURATION_MS: the big tenant A
// RATIO messages per TICK_MS (spread over A_SESSIONS sessions), the small tenant B one per
// TICK_MS (over B_SESSIONS sessions); A's rate is above what the slots can do, so A builds a
// backlog. The publishers run in processes of their own, as producers do: publishing from the
// runtime's own event loop (what this bench did first) measured the bench's CPU, not admission.
// Measured: B's publish → handler start (wall clock across processes), p50/p99, in three runs:
//   solo  — only B's load (tenants set);
//   fair  — A and B, both with tenants: slots go round robin across tenants, and with
//           BENCH_MAX_ACTIVE_PER_TENANT (AGENTRY_MAX_ACTIVE_PER_TENANT) A cannot take every slot;
//   fifo  — A and B without tenants: one lane, first come first served (what it was before).
// Usage: node bench/tenantFairness.mjs [out.json]  (after `node ops/build.mjs`).
import { writeFileSync } from 'node:fs';
import { forkPublisher, log, percentiles, quietLogger, sleep, startNats, waitUntil, wallNow } from './lib.mjs';

const SLOTS = Number(process.env.BENCH_SLOTS ?? 4);
const WORK_MS = Number(process.env.BENCH_WORK_MS ?? 2);
const TICK_MS = Number(process.env.BENCH_TICK_MS ?? 25);
const RATIO = Number(process.env.BENCH_RATIO ?? 100);
const DURATION_MS = Number(process.env.BENCH_DURATION_MS ?? 10_000);
const PER_TENANT = Number(process.env.BENCH_MAX_ACTIVE_PER_TENANT ?? 0);
const A_SESSIONS = 1000;
const B_SESSIONS = 10;

const { createRuntime, defineAgent } = await import('../dist/runtime/index.js');
const nats = await startNats();
const latency = new Map(); // run → B latencies (ms)
const slowest = new Map(); // run → B's slowest: { at (ms into the run), ms, session }
const handled = new Map(); // `${run}-${a|b}` → messages handled
const agent = defineAgent({
  type: 'work',
  onMessage: 'queue',
  async handle(batch, ctx) {
    const now = wallNow();
    const [run, who] = ctx.sessionId.split('-');
    for (const m of batch) {
      if (who !== 'b') continue;
      latency.get(run)?.push(now - m.body.t);
      slowest.get(run)?.push({ at: Math.round(m.body.t - (runStart.get(run) ?? 0)), ms: Math.round(now - m.body.t), session: ctx.sessionId });
    }
    handled.set(`${run}-${who}`, (handled.get(`${run}-${who}`) ?? 0) + batch.length);
    await sleep(WORK_MS);
    return undefined;
  },
});
const rt = await createRuntime({
  agents: [agent], logger: quietLogger(),
  config: { natsUrl: nats.url, partitions: Number(process.env.BENCH_PARTITIONS ?? 64), store: 'memory', maxActiveSessions: SLOTS, maxActivePerTenant: PER_TENANT, groupCommitLingerMs: 1 },
});
const pubA = await forkPublisher(nats.url);
const pubB = await forkPublisher(nats.url);

const runStart = new Map();

async function run(name, { withA, tenants }) {
  latency.set(name, []);
  slowest.set(name, []);
  for (let i = 0; i < B_SESSIONS; i++) await rt.createAgent(`${name}-b-${i}`, 'work', undefined, tenants ? { tenant: 'B' } : undefined);
  if (withA) for (let i = 0; i < A_SESSIONS; i++) await rt.createAgent(`${name}-a-${i}`, 'work', undefined, tenants ? { tenant: 'A' } : undefined);
  const t0 = Date.now();
  runStart.set(name, wallNow());
  const probe = setInterval(() => {
    const l = rt.host.tenantLoad();
    log(`${name} t=${Date.now() - t0} running=${rt.host.activeCount()} ${JSON.stringify([...l.active])} queued=${JSON.stringify([...l.queued])} handledA=${handled.get(`${name}-a`) ?? 0} handledB=${handled.get(`${name}-b`) ?? 0}`);
  }, 1000);
  const job = (idPrefix, sessions, rate) => ({ mode: 'paced', subjectPrefix: 'agentry.in.', idPrefix, sessions, rate, durationMs: DURATION_MS });
  const [a, b] = await Promise.all([
    withA ? pubA.start(job(`${name}-a-`, A_SESSIONS, (RATIO * 1000) / TICK_MS)) : Promise.resolve({ count: 0 }),
    pubB.start(job(`${name}-b-`, B_SESSIONS, 1000 / TICK_MS)),
  ]);
  await waitUntil(() => (handled.get(`${name}-b`) ?? 0) >= b.count && (handled.get(`${name}-a`) ?? 0) >= a.count, `${name} drained`, 600_000, 50);
  clearInterval(probe);
  const p = percentiles(latency.get(name));
  log(`${name}: A sent ${a.count}, B sent ${b.count}; B latency ms p50 ${p.p50} p99 ${p.p99} max ${p.max}; load took ${Date.now() - t0} ms`);
  const slow = slowest.get(name).sort((x, y) => y.ms - x.ms).slice(0, 5);
  log(`${name}: B's slowest ${JSON.stringify(slow)}`);
  return { sentA: a.count, sentB: b.count, bLatencyMs: p, bSlowest: slow };
}

// BENCH_FAIR_RUNS picks runs (default all three; fifo takes longest: A's whole backlog drains first-come).
const RUNS = new Set((process.env.BENCH_FAIR_RUNS ?? 'solo,fair,fifo').split(','));
const results = {
  config: { slots: SLOTS, workMs: WORK_MS, tickMs: TICK_MS, ratio: RATIO, durationMs: DURATION_MS, maxActivePerTenant: PER_TENANT, aSessions: A_SESSIONS, bSessions: B_SESSIONS, publishers: 'two processes' },
  solo: RUNS.has('solo') ? await run('solo', { withA: false, tenants: true }) : null,
  fair: RUNS.has('fair') ? await run('fair', { withA: true, tenants: true }) : null,
  fifo: RUNS.has('fifo') ? await run('fifo', { withA: true, tenants: false }) : null,
};
results.fairP99OverSolo = results.fair && results.solo ? Math.round((results.fair.bLatencyMs.p99 / results.solo.bLatencyMs.p99) * 100) / 100 : null;
results.fifoP99OverSolo = results.fifo && results.solo ? Math.round((results.fifo.bLatencyMs.p99 / results.solo.bLatencyMs.p99) * 100) / 100 : null;
log(`fair p99 / solo p99 = ${results.fairP99OverSolo}; fifo p99 / solo p99 = ${results.fifoP99OverSolo}`);
if (process.argv[2]) writeFileSync(process.argv[2], JSON.stringify(results, null, 2));
else console.log(JSON.stringify(results, null, 2));
await pubA.stop();
await pubB.stop();
await rt.stop();
await nats.cleanup();
