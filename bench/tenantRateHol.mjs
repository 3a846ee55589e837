// Head-of-line behind a tenant's deferred messages (issue 17 §3): messages a tenant's rate
// defers are held unacked, so they count against their partition consumer's max_ack_pending.
// Tenant A floods FLOOD messages (over SESSIONS sessions, all on partition p) through JetStream
// at once, far over its rate (RATE/s, bursts of BURST); then tenant B sends one message to a
// session on the same partition p and one to a session on another partition. Measured: B's
// publish → applied (handler start), for max_ack_pending below and above A's flood, and how
// much of A's flood was applied by then.
// Usage: node bench/tenantRateHol.mjs [out.json]  (after `node ops/build.mjs`). Memory store.
import { writeFileSync } from 'node:fs';
import { jetstream } from '@nats-io/jetstream';
import { connect, headers } from '@nats-io/transport-node';
import { log, quietLogger, waitUntil, wallNow } from './lib.mjs';
import { startNatsServer } from '../dist/ops/natsServer.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const RATE = Number(process.env.BENCH_RATE ?? 50);
const BURST = Number(process.env.BENCH_BURST ?? 10);
const FLOOD = Number(process.env.BENCH_FLOOD ?? 400);
const SESSIONS = 4;
const PARTITIONS = 8;
const PENDING = (process.env.BENCH_MAX_ACK_PENDING ?? '64,1024').split(',').map(Number);

const { createRuntime, defineAgent } = await import('../dist/runtime/index.js');
const { partitionOf } = await import('../dist/runtime/partition.js');

const appliedAt = new Map(); // session → wall time of its first turn
let aApplied = 0;
const agent = defineAgent({
  type: 'hol',
  onMessage: 'queue',
  handle(batch, ctx) {
    if (ctx.sessionId.includes('-a-')) aApplied += batch.length;
    else if (!appliedAt.has(ctx.sessionId)) appliedAt.set(ctx.sessionId, { t: wallNow(), aApplied });
    return undefined;
  },
});

/** `n` ids with `prefix` whose partition is (or, with `not`, is not) `p`. */
function idsOn(prefix, p, n, not = false) {
  const out = [];
  for (let j = 0; out.length < n; j++) if ((partitionOf(`${prefix}${j}`, PARTITIONS) === p) !== not) out.push(`${prefix}${j}`);
  return out;
}

const results = [];
for (const maxAckPending of PENDING) {
  const dir = mkdtempSync(join(tmpdir(), 'agentry-bench-hol-'));
  const srv = await startNatsServer({ storeDir: join(dir, 'js'), partitions: PARTITIONS });
  const rt = await createRuntime({
    agents: [agent], logger: quietLogger(),
    config: { natsUrl: srv.url, partitions: PARTITIONS, store: 'memory', groupCommitLingerMs: 1, tenantRatePerSec: RATE, tenantBurst: BURST, maxAckPendingPerPartition: maxAckPending },
  });
  const run = `m${maxAckPending}`;
  const p = partitionOf(`${run}-a-0`, PARTITIONS);
  const aIds = idsOn(`${run}-a-`, p, SESSIONS);
  const [bSame] = idsOn(`${run}-bs-`, p, 1);
  const [bOther] = idsOn(`${run}-bo-`, p, 1, true);
  for (const id of aIds) await rt.createAgent(id, 'hol', undefined, { tenant: 'A' });
  for (const id of [bSame, bOther]) await rt.createAgent(id, 'hol', undefined, { tenant: 'B' });
  aApplied = 0;
  const nc = await connect({ servers: srv.url });
  const js = jetstream(nc, { timeout: 30_000 });
  const acks = [];
  for (let i = 0; i < FLOOD; i++) acks.push(js.publish(`agentry.in.${aIds[i % SESSIONS]}`, JSON.stringify({ i })));
  await Promise.all(acks);
  const tB = wallNow();
  await Promise.all([bSame, bOther].map((id) => js.publish(`agentry.in.${id}`, JSON.stringify({ b: 1 }), { headers: headers() })));
  await waitUntil(() => appliedAt.has(bSame) && appliedAt.has(bOther), `${run}: B applied`, 600_000, 5);
  const r = {
    maxAckPending, rate: RATE, burst: BURST, flood: FLOOD,
    bSamePartitionMs: Math.round(appliedAt.get(bSame).t - tB), aAppliedBeforeBSame: appliedAt.get(bSame).aApplied,
    bOtherPartitionMs: Math.round(appliedAt.get(bOther).t - tB), aAppliedBeforeBOther: appliedAt.get(bOther).aApplied,
  };
  await waitUntil(() => aApplied >= FLOOD, `${run}: A drained`, 600_000, 20);
  r.deferredA = rt.tenantRate.deferred.get('A') ?? 0;
  log(JSON.stringify(r));
  results.push(r);
  await nc.close();
  await rt.stop();
  await srv.stop();
  rmSync(dir, { recursive: true, force: true });
}
if (process.argv[2]) writeFileSync(process.argv[2], JSON.stringify({ at: new Date().toISOString(), results }, null, 2));
