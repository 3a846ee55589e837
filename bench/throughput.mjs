// Throughput suite (issue 2 "Foundation" and issue 3 "Durable", Postgres part).
//
// In one process and against one nats-server and one Postgres, alternating per round:
//   raw-jetstream : the forked publisher pipelines N 100-byte JetStream publishes to one stream;
//                   this process consumes them with one durable pull consumer (consume + ack).
//   raw-jetstream-partitioned (diagnostic): the same through the runtime's layout (nats.conf
//                   mapping, one filtered durable consumer per partition), without the runtime.
//   runtime-memory: the same publisher feeds 1,000 sessions × 100 messages to a runtime with the
//                   memory store and a no-op handler ('queue' policy: one handler run per message;
//                   ~500 bytes of user state so the snapshot is ~1 KB).
//   raw-pg        : a batched upsert loop: 500-row multi-row INSERT … ON CONFLICT DO UPDATE of a
//                   JSONB snapshot row (the runtime's real snapshot) + a 500-row history INSERT,
//                   one transaction per batch, one connection.
//   store-commit  : (diagnostic) the Postgres store's own commit() called directly with 500
//                   records per call, each shaped like the runtime's (session row + 1 history row,
//                   ~0.4 transition rows): the store's SQL cost without NATS or actors.
//   runtime-pg    : runtime-memory again with the Postgres store: publish → commit → ack.
// Every rate is messages (or rows) per second from the first publish (first statement) to the
// last handler completion / last commit; the ratios are computed by run.mjs within the run.
import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { connect } from '@nats-io/transport-node';
import { AckPolicy, DeliverPolicy, DiscardPolicy, RetentionPolicy, StorageType, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { createRuntime, defineAgent } from '../dist/runtime/index.js';
import { createPgStore } from '../dist/persistence/index.js';
import {
  PARTITIONS, PG_URL, QUICK, cpuDelta, cpuMark, dropSchema, forkPublisher, log, makeBody, percentiles,
  pgClient, quietLogger, round, schemaName, startNats, waitUntil, wallNow, withTimeout,
} from './lib.mjs';

const outPath = process.argv[2];
const SESSIONS = Number(process.env.BENCH_SESSIONS ?? 1000);
const PER_SESSION = Number(process.env.BENCH_PER_SESSION ?? (QUICK ? 30 : 100));
const TOTAL = SESSIONS * PER_SESSION;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? (QUICK ? 1 : 2));
const WINDOW = Number(process.env.BENCH_PUB_WINDOW ?? 1000);
const POLICY = process.env.BENCH_POLICY ?? 'queue';
// User state carried by every session, so the persisted snapshot is ~1 KB as in the baseline.
const STATE_BYTES = Number(process.env.BENCH_STATE_BYTES ?? 500);
const PG_BATCH = 500;
// Scenarios to run (for profiling one of them): rawJetStream,rawJetStreamPartitioned,runtimeMemory,rawPg,storeCommit,runtimePg.
const SCENARIOS = (process.env.BENCH_TP_SCENARIOS ?? 'rawJetStream,rawJetStreamPartitioned,runtimeMemory,rawPg,storeCommit,runtimePg').split(',');
const want = (name) => SCENARIOS.includes(name);
const CORES = cpus().length;

const nats = await startNats();
const pub = await forkPublisher(nats.url);
const schemas = [];
const results = { sessions: SESSIONS, perSession: PER_SESSION, total: TOTAL, window: WINDOW, policy: POLICY, partitions: PARTITIONS, rounds: [] };

// ---- raw JetStream baseline --------------------------------------------------------------------

/**
 * Raw JetStream consume+ack. `partitioned` (a diagnostic) uses the runtime's layout instead of one
 * consumer: the publisher sends to agentry.in.<id>, nats.conf maps it to agentry.part.<p>.<id>, and
 * this process consumes PARTITIONS filtered durable consumers with the runtime's buffer size.
 */
// Diagnostics of the server's cost (issue 12, A1): the raw consumers' max_ack_pending (-1: none) and
// acks delayed by a random 0..N ms (out of delivery order, as the runtime's acks after commits are).
const RAW_MAX_ACK_PENDING = Number(process.env.BENCH_RAW_MAX_ACK_PENDING ?? -1);
const RAW_ACK_DELAY_MS = Number(process.env.BENCH_RAW_ACK_DELAY_MS ?? 0);
// BENCH_RAW_PREFILL=1: publish everything first, then consume (a deep stream, as behind a slower consumer);
// the rate and CPU are then the consumers' alone, from the first pull to the last message.
const RAW_PREFILL = process.env.BENCH_RAW_PREFILL === '1';

async function rawJetStream({ partitioned = false } = {}) {
  const nc = await connect({ servers: nats.url, name: 'bench-raw-consumer' });
  const jsm = await jetstreamManager(nc);
  const js = jetstream(nc);
  const stream = partitioned ? 'BENCH_PART' : 'BENCH_RAW';
  // The runtime's inbox stream owns agentry.part.> while it exists: remove it (the runtime re-creates it).
  for (const name of [stream, ...(partitioned ? ['AGENTRY_INBOX'] : [])]) {
    try { await jsm.streams.delete(name); } catch { /* absent */ }
  }
  // The same stream settings as the runtime's inbox: file storage, work-queue retention.
  await jsm.streams.add({ name: stream, subjects: [partitioned ? 'agentry.part.>' : 'bench.raw.>'], retention: RetentionPolicy.Workqueue, storage: StorageType.File, discard: DiscardPolicy.New });
  const consumers = partitioned
    ? Array.from({ length: PARTITIONS }, (_, p) => ({ name: `part-${p}`, filter_subject: `agentry.part.${p}.>` }))
    : [{ name: 'raw' }];
  const buffer = partitioned ? Math.max(64, Math.ceil(8192 / PARTITIONS)) : 1000;
  let count = 0;
  let tEnd = 0;
  let done;
  const finished = new Promise((r) => { done = r; });
  const iters = [];
  const job = { mode: 'burst', subjectPrefix: partitioned ? 'agentry.in.' : 'bench.raw.', idPrefix: 's', sessions: SESSIONS, perSession: PER_SESSION, window: WINDOW };
  for (const c of consumers) {
    await jsm.consumers.add(stream, {
      durable_name: c.name, ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All, max_ack_pending: RAW_MAX_ACK_PENDING, ack_wait: 30_000_000_000,
      ...(c.filter_subject ? { filter_subject: c.filter_subject } : {}),
    });
  }
  let report;
  let c0;
  let t0 = 0;
  if (RAW_PREFILL) { report = await pub.start(job); c0 = cpuMark(nats.pid, pub.pid); t0 = wallNow(); }
  for (const c of consumers) {
    const consumer = await js.consumers.get(stream, c.name);
    iters.push(await consumer.consume({
      max_messages: buffer,
      callback: (m) => {
        if (RAW_ACK_DELAY_MS > 0) setTimeout(() => { m.ack(); }, Math.random() * RAW_ACK_DELAY_MS); else m.ack();
        if (++count === TOTAL) { tEnd = wallNow(); done(); }
      },
    }));
  }
  if (!RAW_PREFILL) { c0 = cpuMark(nats.pid, pub.pid); report = await pub.start(job); } else report = { ...report, t0 };
  await withTimeout(finished, 120_000, `the raw consumer (got ${count}/${TOTAL})`);
  const c1 = cpuMark(nats.pid, pub.pid);
  await nc.flush();
  await waitUntil(async () => (await jsm.streams.info(stream)).state.messages === 0, 'raw acks to land', 60_000, 50);
  const tAcked = wallNow();
  const c2 = cpuMark(nats.pid, pub.pid);
  for (const it of iters) await it.close();
  await jsm.streams.delete(stream);
  await nc.close();
  const ms = tEnd - report.t0;
  return {
    consumers: consumers.length, rate: round(TOTAL / (ms / 1000)), ackedRate: round(TOTAL / ((tAcked - report.t0) / 1000)), ms: round(ms),
    publishRate: round(report.publishRate), cpu: cpuDelta(c0, c1, CORES),
    // Up to the last ack processed (the server removes each acked message; behind a deep stream that lags delivery).
    cpuAcked: cpuDelta(c0, c2, CORES),
  };
}

// ---- the runtime ---------------------------------------------------------------------------------

/** Feeds SESSIONS × PER_SESSION messages to a fresh runtime and times handler completion and commit. */
async function runtimeRun(kind, { sessions = SESSIONS, perSession = PER_SESSION, idPrefix } = {}) {
  const total = sessions * perSession;
  const st = { handled: 0, committed: 0, tHandled: 0, tCommitted: 0, lat: [] };
  const noop = defineAgent({
    type: 'noop',
    onMessage: POLICY,
    initialState: () => ({ notes: 'n'.repeat(STATE_BYTES) }),
    handle(batch) {
      const now = wallNow();
      for (const m of batch) {
        if (st.handled % 10 === 0) st.lat.push(now - m.body.t);
        st.handled++;
      }
      if (st.handled >= total && st.tHandled === 0) st.tHandled = now;
      return undefined;
    },
  });
  let schema;
  const config = { natsUrl: nats.url, partitions: PARTITIONS, defaultAgentType: 'noop', logLevel: 'error' };
  if (kind === 'memory') config.store = 'memory';
  else {
    schema = schemaName('tp');
    schemas.push(schema);
    Object.assign(config, { store: 'auto', databaseUrl: PG_URL, databaseSchema: schema });
  }
  const rt = await createRuntime({ agents: [noop], config, logger: quietLogger() });
  // Before 2.10 the server's cost per ack grows with the inbox backlog (runtime/natsVersion.ts): say which one ran.
  results.natsServerVersion ??= rt.transport.nc.info?.version ?? null;
  rt.host.listen({
    onCommitted(rec) {
      st.committed += rec.history.length;
      if (st.committed >= total && st.tCommitted === 0) st.tCommitted = wallNow();
    },
  });
  const c0 = cpuMark(nats.pid, pub.pid);
  const report = await pub.start({ mode: 'burst', subjectPrefix: 'agentry.in.', idPrefix, sessions, perSession, window: WINDOW });
  await waitUntil(() => st.tCommitted > 0 && st.tHandled > 0, `${kind} runtime: handled ${st.handled}, committed ${st.committed} of ${total}`, 180_000);
  const c1 = cpuMark(nats.pid, pub.pid);
  // Acks are sent right after each commit; the work-queue stream empties once they all land.
  await rt.transport.nc.flush();
  await waitUntil(async () => (await rt.transport.jsm.streams.info(rt.transport.inboxStream)).state.messages === 0, 'runtime acks to land', 60_000, 50);
  const tAcked = wallNow();
  const c2 = cpuMark(nats.pid, pub.pid);
  const stats = { ...rt.host.stats };
  await rt.stop();
  const handledMs = st.tHandled - report.t0;
  const committedMs = st.tCommitted - report.t0;
  return {
    schema,
    handledRate: round(total / (handledMs / 1000)),
    committedRate: round(total / (committedMs / 1000)),
    ackedRate: round(total / ((tAcked - report.t0) / 1000)),
    handledMs: round(handledMs), committedMs: round(committedMs),
    publishRate: round(report.publishRate),
    latencyUnderLoadMs: percentiles(st.lat),
    runs: stats.runs, commits: stats.commits, merges: stats.merges,
    cpu: cpuDelta(c0, c1, CORES),
    cpuAcked: cpuDelta(c0, c2, CORES),
  };
}

// ---- raw Postgres baseline -----------------------------------------------------------------------

/** Batched raw upsert loop: per message one snapshot-row upsert and one history row; 500 per transaction. */
async function rawPg(schema, template) {
  const c = await pgClient(schema);
  await c.query('DROP TABLE IF EXISTS raw_sessions, raw_history');
  await c.query('CREATE TABLE raw_sessions (id text PRIMARY KEY, snapshot jsonb NOT NULL, last_seq bigint NOT NULL, version bigint NOT NULL, updated_at bigint NOT NULL)');
  await c.query('CREATE TABLE raw_history (session_id text NOT NULL, seq bigint NOT NULL, body jsonb, at bigint NOT NULL, PRIMARY KEY (session_id, seq))');
  const sessValues = [];
  const histValues = [];
  for (let r = 0; r < PG_BATCH; r++) {
    const b = r * 4;
    sessValues.push(`($${b + 1}, $${b + 2}::jsonb, $${b + 3}, 1, $${b + 4})`);
    histValues.push(`($${b + 1}, $${b + 2}, $${b + 3}::jsonb, $${b + 4})`);
  }
  const upsert = `INSERT INTO raw_sessions (id, snapshot, last_seq, version, updated_at) VALUES ${sessValues.join(', ')}
    ON CONFLICT (id) DO UPDATE SET snapshot = excluded.snapshot, last_seq = excluded.last_seq, version = raw_sessions.version + 1, updated_at = excluded.updated_at`;
  const history = `INSERT INTO raw_history (session_id, seq, body, at) VALUES ${histValues.join(', ')}`;
  const snap = JSON.parse(template);
  const c0 = cpuMark(nats.pid, null);
  const t0 = wallNow();
  for (let k0 = 0; k0 < TOTAL; k0 += PG_BATCH) {
    const sp = [];
    const hp = [];
    const now = Date.now();
    for (let k = k0; k < k0 + PG_BATCH; k++) {
      const sid = `s${k % SESSIONS}`;
      snap.context.lastSeq = k;
      snap.context.version = Math.floor(k / SESSIONS) + 1;
      sp.push(sid, JSON.stringify(snap), k, now);
      hp.push(sid, k, makeBody(k, now), now);
    }
    await c.query('BEGIN');
    await c.query(upsert, sp);
    await c.query(history, hp);
    await c.query('COMMIT');
  }
  const ms = wallNow() - t0;
  const cpu = cpuDelta(c0, cpuMark(nats.pid, null), CORES);
  const size = await c.query(`SELECT pg_total_relation_size('raw_sessions') AS s, pg_total_relation_size('raw_history') AS h`);
  await c.query('DROP TABLE raw_sessions, raw_history');
  await c.end();
  return { rate: round(TOTAL / (ms / 1000)), ms: round(ms), cpu, batch: PG_BATCH, snapshotBytes: template.length, tableBytes: { sessions: Number(size.rows[0].s), history: Number(size.rows[0].h) } };
}

/** The store's commit() with runtime-shaped records, 500 per call, on a fresh schema. */
async function storeCommit(template) {
  const schema = schemaName('sc');
  schemas.push(schema);
  const store = createPgStore({ connectionString: PG_URL, schema });
  await store.migrate();
  const snap = JSON.parse(template);
  const versions = new Map();
  const c0 = cpuMark(nats.pid, null);
  const t0 = wallNow();
  for (let k0 = 0; k0 < TOTAL; k0 += PG_BATCH) {
    const records = [];
    const now = Date.now();
    for (let k = k0; k < k0 + PG_BATCH; k++) {
      const sid = `s${k % SESSIONS}`;
      const version = (versions.get(sid) ?? 0) + 1;
      versions.set(sid, version);
      snap.context.sessionId = sid;
      snap.context.lastSeq = k;
      snap.context.version = version;
      records.push({
        sessionId: sid, type: 'noop', status: 'idle', snapshot: structuredClone(snap), lastSeq: k, version, partition: 0, ownerEpoch: 0,
        wakeAt: null, wakeEvents: [], wakePriority: null,
        history: [{ sessionId: sid, seq: k, kind: 'message', body: JSON.parse(makeBody(k, now)), priority: 'normal', from: null, batchId: String(version), outcome: 'ok', at: now }],
        // The runtime records a transition only when the state path changed between two
        // snapshots; under this load it wrote ~0.4 per message: 2 on every 5th record.
        transitions: k % 5 === 0 ? [
          { sessionId: sid, at: now, event: 'MESSAGE', from: 'idle', to: 'active.running' },
          { sessionId: sid, at: now, event: 'xstate.done.actor.handler', from: 'active.running', to: 'idle' },
        ] : [],
        outbox: [],
      });
    }
    await store.commit(records);
  }
  const ms = wallNow() - t0;
  const cpu = cpuDelta(c0, cpuMark(nats.pid, null), CORES);
  await store.close();
  await dropSchema(schema);
  return { rate: round(TOTAL / (ms / 1000)), ms: round(ms), cpu, batch: PG_BATCH };
}

/** Sizes of what the runtime left in Postgres: bytes per (passivated) session and per history row. */
async function storeSizes(schema) {
  const c = await pgClient(schema);
  await c.query('VACUUM ANALYZE sessions, history, transitions');
  const { rows: [r] } = await c.query(`SELECT
      (SELECT count(*) FROM sessions)::int AS sessions, (SELECT count(*) FROM history)::int AS history, (SELECT count(*) FROM transitions)::int AS transitions,
      pg_total_relation_size('sessions') AS s_bytes, pg_total_relation_size('history') AS h_bytes, pg_total_relation_size('transitions') AS t_bytes,
      (SELECT avg(pg_column_size(snapshot)) FROM sessions)::int AS snap_stored, (SELECT avg(length(snapshot::text)) FROM sessions)::int AS snap_text`);
  await c.end();
  return {
    sessions: r.sessions, historyRows: r.history, transitionRows: r.transitions,
    sessionsBytes: Number(r.s_bytes), historyBytes: Number(r.h_bytes), transitionsBytes: Number(r.t_bytes),
    bytesPerSession: Math.round(Number(r.s_bytes) / r.sessions),
    bytesPerSessionWithHistory: Math.round((Number(r.s_bytes) + Number(r.h_bytes) + Number(r.t_bytes)) / r.sessions),
    bytesPerHistoryRow: Math.round(Number(r.h_bytes) / r.history),
    snapshotTextBytes: r.snap_text, snapshotStoredBytes: r.snap_stored,
  };
}

// ---- main ------------------------------------------------------------------------------------------

try {
  log(`throughput: ${SESSIONS} sessions × ${PER_SESSION} messages, ${ROUNDS} round(s), ${PARTITIONS} partitions, policy ${POLICY}`);
  // Warm-up (JIT, connections, schema creation); also yields the runtime's real snapshot for the raw baseline.
  await runtimeRun('memory', { sessions: 200, perSession: 5, idPrefix: 'warm-m-' });
  const warm = await runtimeRun('pg', { sessions: 200, perSession: 5, idPrefix: 'warm-p-' });
  const tc = await pgClient(warm.schema);
  const { rows: [tpl] } = await tc.query('SELECT snapshot::text AS s FROM sessions ORDER BY length(snapshot::text) DESC LIMIT 1');
  await tc.end();
  results.snapshotTemplateBytes = tpl.s.length;
  for (let i = 1; i <= ROUNDS; i++) {
    const r = { round: i };
    // Marks for a profiler sampling one scenario (BENCH_NATS_MONITOR_PORT): the line comes before its set-up.
    const starting = (name) => { if (process.env.BENCH_NATS_MONITOR_PORT) log(`round ${i} ${name} starting`); };
    if (want('rawJetStream')) {
      starting('raw-jetstream');
      r.rawJetStream = await rawJetStream();
      log(`round ${i} raw-jetstream ${r.rawJetStream.rate} msg/s (publisher ${r.rawJetStream.publishRate}/s)`);
    }
    if (want('rawJetStreamPartitioned')) {
      starting('raw-jetstream-partitioned');
      r.rawJetStreamPartitioned = await rawJetStream({ partitioned: true });
      log(`round ${i} raw-jetstream, ${PARTITIONS} partitions ${r.rawJetStreamPartitioned.rate} msg/s, acks processed ${r.rawJetStreamPartitioned.ackedRate}/s`);
    }
    if (want('runtimeMemory')) {
      starting('runtime-memory');
      r.runtimeMemory = await runtimeRun('memory', { idPrefix: `r${i}-m-` });
      log(`round ${i} runtime-memory ${r.runtimeMemory.handledRate} msg/s handled, ${r.runtimeMemory.committedRate} committed`);
    }
    if (want('rawPg')) {
      r.rawPg = await rawPg(warm.schema, tpl.s);
      log(`round ${i} raw-pg ${r.rawPg.rate} rows/s`);
    }
    if (want('storeCommit')) {
      r.storeCommit = await storeCommit(tpl.s);
      log(`round ${i} store-commit ${r.storeCommit.rate} records/s`);
    }
    if (want('runtimePg')) {
      starting('runtime-pg');
      r.runtimePg = await runtimeRun('pg', { idPrefix: `r${i}-p-` });
      log(`round ${i} runtime-pg ${r.runtimePg.committedRate} msg/s committed (handled ${r.runtimePg.handledRate}), ${r.runtimePg.ackedRate} acks processed`);
      if (i === ROUNDS) results.pgSizes = await storeSizes(r.runtimePg.schema);
    }
    results.rounds.push(r);
  }
} finally {
  await pub.stop();
  for (const s of schemas) await dropSchema(s).catch(() => undefined);
  await nats.cleanup();
}
writeFileSync(outPath, JSON.stringify(results, null, 2));
log('throughput: done');
// Exit explicitly: a ref'd timer left in a stopped runtime (the scheduler left one until 0c1de4c)
// must not stretch the run.
process.exit(0);
