// Fair share between tenants (issue 17 §3): does a small tenant keep its latency when a big one
// floods the node? One runtime (memory store: admission is what is measured, not the store),
// handler slots AGENTRY_MAX_ACTIVE_SESSIONS = SLOTS, each turn WORK_MS of (async) work. Every
// TICK_MS the big tenant A sends RATIO messages (spread over A_SESSIONS sessions) and the small
// tenant B one (over B_SESSIONS sessions), for DURATION_MS; A's rate is above what the slots can
// do, so A builds a backlog. Measured: B's publish → handler start, p50/p99, in three runs:
//   solo  — only B's load (tenants set);
//   fair  — A and B, both with tenants: slots go round robin across tenants;
//   fifo  — A and B without tenants: one lane, first come first served (what it was before).
// Usage: node bench/tenantFairness.mjs [out.json]  (after `node ops/build.mjs`).
import { writeFileSync } from 'node:fs';
import { log, percentiles, quietLogger, sleep, startNats, waitUntil, wallNow } from './lib.mjs';

const SLOTS = Number(process.env.BENCH_SLOTS ?? 4);
const WORK_MS = Number(process.env.BENCH_WORK_MS ?? 2);
const TICK_MS = Number(process.env.BENCH_TICK_MS ?? 25);
const RATIO = Number(process.env.BENCH_RATIO ?? 100);
const DURATION_MS = Number(process.env.BENCH_DURATION_MS ?? 5000);
const A_SESSIONS = 1000;
const B_SESSIONS = 10;

const { createRuntime, defineAgent } = await import('../dist/runtime/index.js');
const nats = await startNats();
const latency = new Map(); // run → B latencies (ms)
let handledA = 0;
let handledB = 0;
const agent = defineAgent({
  type: 'work',
  onMessage: 'queue',
  async handle(batch, ctx) {
    const now = wallNow();
    for (const m of batch) {
      const b = m.body;
      if (b?.tenant === 'B') { latency.get(b.run)?.push(now - b.t); handledB++; } else handledA++;
    }
    await sleep(WORK_MS);
    return undefined;
  },
});
const rt = await createRuntime({
  agents: [agent], logger: quietLogger(),
  config: { natsUrl: nats.url, partitions: Number(process.env.BENCH_PARTITIONS ?? 64), store: 'memory', maxActiveSessions: SLOTS, groupCommitLingerMs: 1 },
});

async function run(name, { withA, tenants }) {
  latency.set(name, []);
  const a = Array.from({ length: A_SESSIONS }, (_, i) => `${name}-a-${i}`);
  const b = Array.from({ length: B_SESSIONS }, (_, i) => `${name}-b-${i}`);
  for (const id of b) await rt.createAgent(id, 'work', undefined, tenants ? { tenant: 'B' } : undefined);
  if (withA) for (const id of a) await rt.createAgent(id, 'work', undefined, tenants ? { tenant: 'A' } : undefined);
  handledA = 0; handledB = 0;
  let sentA = 0; let sentB = 0;
  const t0 = Date.now();
  let tick = 0;
  const probe = setInterval(() => {
    const l = rt.host.tenantLoad();
    log(`${name} t=${Date.now() - t0} running=${rt.host.activeCount()} ${JSON.stringify([...l.active])} queued=${JSON.stringify([...l.queued])} handledA=${handledA} handledB=${handledB}`);
  }, 1000);
  while (Date.now() - t0 < DURATION_MS) {
    const sends = [];
    if (withA) for (let k = 0; k < RATIO; k++) { sends.push(rt.sendMessage(a[(sentA++) % A_SESSIONS], { tenant: 'A', run: name, t: wallNow() })); }
    sends.push(rt.sendMessage(b[tick % B_SESSIONS], { tenant: 'B', run: name, t: wallNow() }));
    sentB++;
    tick++;
    await Promise.all(sends);
    await sleep(Math.max(0, t0 + tick * TICK_MS - Date.now()));
  }
  await waitUntil(() => handledB >= sentB && handledA >= sentA, `${name} drained`, 300_000, 50);
  clearInterval(probe);
  const p = percentiles(latency.get(name));
  log(`${name}: A sent ${sentA}, B sent ${sentB}; B latency ms p50 ${p.p50} p99 ${p.p99} max ${p.max}; load took ${Date.now() - t0} ms`);
  return { sentA, sentB, bLatencyMs: p };
}

const results = {
  config: { slots: SLOTS, workMs: WORK_MS, tickMs: TICK_MS, ratio: RATIO, durationMs: DURATION_MS, aSessions: A_SESSIONS, bSessions: B_SESSIONS },
  solo: await run('solo', { withA: false, tenants: true }),
  fair: await run('fair', { withA: true, tenants: true }),
  fifo: await run('fifo', { withA: true, tenants: false }),
};
results.fairP99OverSolo = Math.round((results.fair.bLatencyMs.p99 / results.solo.bLatencyMs.p99) * 100) / 100;
results.fifoP99OverSolo = Math.round((results.fifo.bLatencyMs.p99 / results.solo.bLatencyMs.p99) * 100) / 100;
log(`fair p99 / solo p99 = ${results.fairP99OverSolo}; fifo p99 / solo p99 = ${results.fifoP99OverSolo}`);
if (process.argv[2]) writeFileSync(process.argv[2], JSON.stringify(results, null, 2));
else console.log(JSON.stringify(results, null, 2));
await rt.stop();
await nats.cleanup();
