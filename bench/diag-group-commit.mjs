// Diagnostic, not part of `npm run bench`: where the durable path waits. Runs the Postgres
// throughput scenario once with the store wrapped (the runtime accepts a `store` option), and
// prints the group-commit transactions (records per call, duration), how long each session's
// hydration query took, and how many NATS messages the runtime's connection sent per message.
//   node bench/diag-group-commit.mjs            (after npm run build)
//   PER=100 RTCONF='{"groupCommitMaxBatch":1000}' node bench/diag-group-commit.mjs
import { createRuntime, defineAgent } from '../dist/runtime/index.js';
import { createPgStore } from '../dist/persistence/index.js';
import { PARTITIONS, PG_URL, cpuDelta, cpuMark, dropSchema, forkPublisher, percentiles, quietLogger, schemaName, startNats, waitUntil, wallNow } from './lib.mjs';

const PER = Number(process.env.PER ?? 30);
const SESSIONS = 1000;
const total = SESSIONS * PER;
const nats = await startNats();
const pub = await forkPublisher(nats.url);
const schema = schemaName('diag');
const store = createPgStore({ connectionString: PG_URL, schema });
const T0 = wallNow();
const txs = [];
const loads = [];
const commit = store.commit.bind(store);
store.commit = async (records) => {
  const t = wallNow();
  await commit(records);
  txs.push({ records: records.length, ms: wallNow() - t, at: t - T0 });
};
const loadSession = store.loadSession.bind(store);
store.loadSession = async (id) => {
  const t = wallNow();
  const r = await loadSession(id);
  loads.push({ at: t - T0, ms: wallNow() - t });
  return r;
};
let committed = 0;
try {
  const noop = defineAgent({ type: 'noop', onMessage: 'queue', initialState: () => ({ notes: 'n'.repeat(500) }), handle: () => undefined });
  const rt = await createRuntime({
    agents: [noop], store, logger: quietLogger(),
    config: { natsUrl: nats.url, partitions: PARTITIONS, defaultAgentType: 'noop', ...JSON.parse(process.env.RTCONF ?? '{}') },
  });
  rt.host.listen({ onCommitted(r) { committed += r.history.length; } });
  const c0 = cpuMark(nats.pid, pub.pid);
  const s0 = { ...rt.transport.nc.stats() };
  const rep = await pub.start({ mode: 'burst', subjectPrefix: 'agentry.in.', idPrefix: 'd', sessions: SESSIONS, perSession: PER, window: 1000 });
  await waitUntil(() => committed >= total, 'commits', 300_000);
  const ms = wallNow() - rep.t0;
  const c1 = cpuMark(nats.pid, pub.pid);
  const s1 = rt.transport.nc.stats();
  const busy = txs.reduce((a, t) => a + t.ms, 0);
  console.log(`${total} messages: ${Math.round(total / (ms / 1000))} msg/s committed; store.commit() busy ${Math.round(busy)} of ${Math.round(ms)} ms in ${txs.length} calls`);
  console.log('records per commit()', JSON.stringify(percentiles(txs.map((t) => t.records))));
  console.log('commit() ms', JSON.stringify(percentiles(txs.map((t) => t.ms))));
  console.log('first commit() calls [records, ms, started at ms]', JSON.stringify(txs.slice(0, 4).map((t) => [t.records, Math.round(t.ms), Math.round(t.at - (rep.t0 - T0))])));
  const run = loads.filter((l) => l.at >= rep.t0 - T0);
  console.log(`hydration loadSession() ×${run.length}: ms`, JSON.stringify(percentiles(run.map((l) => l.ms))), 'last one done at', Math.round(Math.max(...run.map((l) => l.at + l.ms)) - (rep.t0 - T0)), 'ms');
  console.log('runtime NATS connection, per message:', JSON.stringify(Object.fromEntries(Object.keys(s1).map((k) => [k, +((s1[k] - s0[k]) / total).toFixed(2)]))));
  console.log('CPU', JSON.stringify(cpuDelta(c0, c1, 2)));
  console.log('host stats', JSON.stringify(rt.host.stats));
  await rt.stop();
} finally {
  await store.close();
  await dropSchema(schema).catch(() => undefined);
  await pub.stop();
  await nats.cleanup();
}
process.exit(0); // see throughput.mjs
