// Low-load suite (issue 12, "the first ten ms"): how long one message takes on an otherwise idle
// runtime, and where that time goes.
//
// A forked prober (bench/prober.mjs) publishes one message at a time through JetStream, stamped
// with its wall-clock publish time, and waits for the reply on `agentry.out.<id>`; the next
// probe goes GAP_MS after the reply, so every probe meets an idle runtime. The runtime runs in
// this process with a no-op agent that replies `{ i }` (queue policy, tiny state). Phases, per
// store (Postgres in its own schema, then the memory store for comparison):
//   new     — first message to N new sessions (hydration finds nothing, creates, commits);
//   live    — a second message to each of them (live actors);
//   timers  — TIMERS sequential lone timers: a new session's handler returns
//             ctx.sleep({ until: now + 500 ms }); lateness = handler start of the run whose
//             batch[0].kind === 'wake' − the planned wake time (and its parts: the scheduler's
//             firing lateness, wakeDue → handler start);
//   trickle — the shape a tester saw hundreds of ms in: 100 timers set at 50/s (sleep 3 s, so
//             they fall due during the messages) and 20 sessions × 10 messages at 20 msg/s;
//   stored  — the runtime is restarted on the same store and each of the N sessions gets a
//             third message: hydration of a stored session (loadSession + getHistory).
// Baselines in the same run, same prober and pacing: raw JetStream publish → a plain durable pull
// consumer (consume() + ack + a core reply), and raw Postgres round trips (SELECT 1; a 1 KB JSONB
// single-row upsert in autocommit; the same as BEGIN / upsert / COMMIT).
//
// Stage breakdown without touching runtime code: the store passed to createRuntime() is wrapped
// (loadSession / getHistory / commit start and end), `host.dispatch` and `host.wakeDue` are
// wrapped on the instance (the runtime calls them through the host object), every `pg` query is
// timed (pg.Client.prototype.query), and the handler stamps its start and end. Stages of one
// probe: publish → dispatch (NATS: store + pull delivery) → store reads → handler start →
// handler end → commit() call (session chain + group-commit linger + queue) → commit done →
// reply received (outbox publish after commit + core NATS + prober).
import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { connect } from '@nats-io/transport-node';
import { AckPolicy, DeliverPolicy, RetentionPolicy, StorageType, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { createRuntime, defineAgent } from '../dist/runtime/index.js';
import { createMemoryStore, createPgStore } from '../dist/persistence/index.js';
import {
  PARTITIONS, PG_URL, QUICK, cpuDelta, cpuMark, dropSchema, forkProber, instrumentStore, log, percentiles, pgClient,
  quietLogger, round, schemaName, sleep, startNats, tracePgQueries, waitUntil, wallNow,
} from './lib.mjs';

const outPath = process.argv[2];
const N = Number(process.env.BENCH_LOWLOAD_N ?? (QUICK ? 60 : 200));
const TIMERS = Number(process.env.BENCH_LOWLOAD_TIMERS ?? (QUICK ? 15 : 50));
const GAP_MS = Number(process.env.BENCH_LOWLOAD_GAP_MS ?? 20);
const STORES = (process.env.BENCH_LOWLOAD_STORES ?? 'pg,memory').split(',').map((s) => s.trim());
const SLEEP_MS = 500;
const WARMUP = 20;
const TRICKLE = { timers: 100, timerEveryMs: 20, timerSleepMs: 3000, sessions: 20, perSession: 10, messageEveryMs: 50, startMs: 2000 };
const dec = new TextDecoder();

const nats = await startNats();
const prober = await forkProber(nats.url);
const schemas = [];
const results = {
  config: { probes: N, timers: TIMERS, gapMs: GAP_MS, sleepMs: SLEEP_MS, warmup: WARMUP, partitions: PARTITIONS, trickle: TRICKLE, stores: STORES },
  baselines: {}, runs: {},
};

// ---- traces -------------------------------------------------------------------------------------

/** Per probe `<sid>:<i>` (or `<sid>:wake`): wall-clock stamps of each stage. */
let traces = new Map();
/** The trace a session's next store read belongs to (the last message dispatched to it). */
let current = new Map();
/** Every pg query while tracing: [label, t0, t1, connection]. */
let queries = [];
let tracing = false;
const trace = (key) => { let t = traces.get(key); if (!t) { t = {}; traces.set(key, t); } return t; };
const planned = new Map();

tracePgQueries((label, t0, t1, client) => { if (tracing) queries.push([label, t0, t1, client]); });

function onStoreCall(kind, args, t0, t1) {
  if (!tracing) return;
  if (kind === 'commit') {
    for (const r of args[0]) {
      for (const h of r.history) {
        const key = h.kind === 'wake' ? `${r.sessionId}:wake` : `${r.sessionId}:${h.body?.i}`;
        const t = traces.get(key);
        if (!t || t.commitStart !== undefined) continue;
        t.commitStart = t0; t.commitEnd = t1; t.commitRecords = args[0].length;
        if (r.status === 'sleeping') t.sleepCommitEnd = t1;
      }
    }
    return;
  }
  if (kind === 'loadSessions') {
    // Hydration reads batched into one query (session rows and their history together).
    for (const id of args[0]) {
      const t = current.get(id);
      if (t && t.loadStart === undefined) { t.loadStart = t0; t.loadEnd = t1; t.loadBatch = args[0].length; }
    }
    return;
  }
  const t = current.get(args[0]);
  if (!t) return;
  if (kind === 'loadSession' && t.loadStart === undefined) { t.loadStart = t0; t.loadEnd = t1; }
  if (kind === 'getHistory' && t.histStart === undefined) { t.histStart = t0; t.histEnd = t1; }
}

const probeAgent = defineAgent({
  type: 'probe',
  onMessage: 'queue',
  initialState: () => ({ n: 0 }),
  handle(batch, ctx) {
    const tStart = wallNow();
    const first = batch[0];
    ctx.state.n++;
    if (first.kind === 'wake') {
      const p = planned.get(ctx.sessionId);
      planned.delete(ctx.sessionId);
      const t = trace(`${ctx.sessionId}:wake`);
      t.hStart = tStart;
      if (p) { t.until = p.until; t.i = p.i; ctx.reply({ i: p.i }); }
      t.hEnd = wallNow();
      return undefined;
    }
    const body = first.body ?? {};
    const t = trace(`${ctx.sessionId}:${body.i}`);
    t.hStart = tStart;
    if (body.op === 'sleep') {
      const until = Math.ceil(Date.now() + body.ms);
      planned.set(ctx.sessionId, { until, i: body.i });
      t.hEnd = wallNow();
      return ctx.sleep({ until });
    }
    ctx.reply({ i: body.i });
    t.hEnd = wallNow();
    return undefined;
  },
});

/** Background rounds of the lease manager while tracing: [kind, t0, t1]. */
let background = [];

/**
 * Times the lease manager's periodic rounds (every ttl/4: a KV update per owned partition, and
 * a balance round that lists the live nodes), to see whether slow probes coincide with them.
 * They are private methods called through `this`, so wrapping them on the instance works; a
 * missing one (renamed) is skipped.
 */
function instrumentLeases(rt) {
  for (const [name, kind] of [['renew', 'lease renewal'], ['balanceOnce', 'lease balance']]) {
    const orig = rt.leases[name];
    if (typeof orig !== 'function') continue;
    rt.leases[name] = async function timed(...args) {
      const t0 = wallNow();
      try { return await orig.apply(this, args); } finally { if (tracing) background.push([kind, t0, wallNow()]); }
    };
  }
}

/** Whether probes that overlapped a background round were slower than the others. */
function backgroundEffect(list) {
  if (background.length === 0 || list.length === 0) return null;
  const overlaps = (a, b) => background.some(([, t0, t1]) => t0 < b && t1 > a);
  const tagged = list.map((p) => ({ ms: p.ms, hit: overlaps(p.a, p.b) }));
  const slow = [...tagged].sort((x, y) => y.ms - x.ms).slice(0, Math.max(1, Math.ceil(tagged.length / 10)));
  const kinds = {};
  for (const [k, t0, t1] of background) (kinds[k] ??= []).push(t1 - t0);
  return {
    rounds: Object.fromEntries(Object.entries(kinds).map(([k, v]) => [k, percentiles(v)])),
    shareOverlapping: round(tagged.filter((x) => x.hit).length / tagged.length, 2),
    shareOfSlowest10pctOverlapping: round(slow.filter((x) => x.hit).length / slow.length, 2),
    overlappingMs: percentiles(tagged.filter((x) => x.hit).map((x) => x.ms)),
    clearMs: percentiles(tagged.filter((x) => !x.hit).map((x) => x.ms)),
  };
}

/** Wraps the host's entry points on the instance (runtime.ts and wakeups.ts call them through it). */
function instrumentHost(rt) {
  instrumentLeases(rt);
  const dispatch = rt.host.dispatch.bind(rt.host);
  rt.host.dispatch = (p, m) => {
    if (tracing) {
      const tIn = wallNow();
      try {
        const sid = m.subject.split('.').slice(3).join('.');
        const i = JSON.parse(dec.decode(m.data)).i;
        if (i !== undefined) {
          const t = trace(`${sid}:${i}`);
          t.dispatch ??= tIn;
          t.partition = p;
          current.set(sid, t);
        }
      } catch { /* not a probe */ }
    }
    dispatch(p, m);
  };
  const wakeDue = rt.host.wakeDue.bind(rt.host);
  rt.host.wakeDue = (sid, dueAt, onRetry) => {
    if (tracing) { const t = trace(`${sid}:wake`); t.wakeDue ??= wallNow(); t.dueAt = dueAt; }
    return wakeDue(sid, dueAt, onRetry);
  };
}

// ---- analysis -------------------------------------------------------------------------------------

/** Stages of one message probe (ms); undefined where a stamp is missing. */
function stagesOf(t, t0, t1) {
  const s = { natsIn: t.dispatch - t0 };
  let last = t.dispatch;
  if (t.loadStart !== undefined) { s.beforeLoad = t.loadStart - last; s.loadSession = t.loadEnd - t.loadStart; last = t.loadEnd; }
  if (t.histStart !== undefined) { s.betweenReads = t.histStart - last; s.getHistory = t.histEnd - t.histStart; last = t.histEnd; }
  s.toHandler = t.hStart - last;
  s.handler = t.hEnd - t.hStart;
  s.toCommit = t.commitStart - t.hEnd;
  s.commit = t.commitEnd - t.commitStart;
  s.replyOut = t1 - t.commitEnd;
  s.total = t1 - t0;
  for (const k of Object.keys(s)) s[k] = Number.isFinite(s[k]) ? round(s[k], 2) : undefined;
  return s;
}

/**
 * The statements of each commit() window [a, b] (those on the connection that ran its BEGIN, or
 * its `SELECT agentry_commit(…)`: one statement in autocommit since migration 0005), grouped by
 * statement, with what is left over (pool checkout, event loop between statements).
 */
function commitStatements(windows) {
  const by = new Map();
  const rest = [];
  const count = [];
  for (const [a, b] of windows) {
    let sum = 0;
    let n = 0;
    const inside = queries.filter(([, q0, q1]) => q0 >= a - 0.01 && q1 <= b + 0.01);
    const tx = inside.find(([label]) => /^BEGIN|agentry_commit/i.test(label))?.[3];
    for (const [label, q0, q1, client] of inside) {
      if (client !== tx) continue;
      const k = statementName(label);
      if (!by.has(k)) by.set(k, []);
      by.get(k).push(q1 - q0);
      sum += q1 - q0;
      n++;
    }
    rest.push(b - a - sum);
    count.push(n);
  }
  const out = {};
  for (const [k, v] of by) out[k] = percentiles(v);
  out['(outside queries: pool checkout, event loop)'] = percentiles(rest);
  return { statementsPerCommit: percentiles(count), byStatement: out };
}

function statementName(label) {
  if (/^BEGIN/i.test(label)) return 'BEGIN';
  if (/^COMMIT/i.test(label)) return 'COMMIT';
  if (/agentry_commit/.test(label)) return 'SELECT agentry_commit(doc, now)';
  if (/partition_epochs/.test(label)) return 'SELECT partition_epochs … FOR SHARE';
  if (/^WITH input/.test(label)) return 'upsert sessions (WITH input …)';
  const m = /^(INSERT INTO|DELETE FROM|UPDATE|SELECT [^ ]+ FROM) ([a-z_]+)/i.exec(label);
  return m ? `${m[1]} ${m[2]}` : label.slice(0, 32);
}

function summarizeStages(list) {
  const keys = [...new Set(list.flatMap((s) => Object.keys(s)))];
  const out = {};
  for (const k of keys) {
    const v = list.map((s) => s[k]).filter((x) => x !== undefined);
    if (v.length) out[k] = percentiles(v);
  }
  return out;
}

/** Reply latencies, stage breakdown and the slowest probes of one message phase. */
function analyzeMessages(probes) {
  const answered = probes.filter((p) => p.replyMs !== null);
  const stages = [];
  const windows = [];
  for (const p of answered) {
    const t = traces.get(`${p.id}:${p.i}`);
    if (!t) continue;
    const s = stagesOf(t, p.t0, p.t0 + p.replyMs);
    s.id = p.id;
    stages.push(s);
    if (t.commitStart !== undefined) windows.push([t.commitStart, t.commitEnd]);
  }
  const slowest = [...stages].sort((a, b) => b.total - a.total).slice(0, 5);
  const stageStats = summarizeStages(stages.map(({ id: _id, ...s }) => s));
  // Which stage holds the time: the median share of each stage in the total.
  const share = {};
  for (const k of Object.keys(stageStats)) {
    if (k === 'total') continue;
    const xs = stages.filter((s) => s[k] !== undefined && s.total > 0).map((s) => s[k] / s.total);
    share[k] = round(xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length), 3);
  }
  return {
    n: probes.length, timeouts: probes.length - answered.length,
    replyMs: percentiles(answered.map((p) => p.replyMs)),
    background: backgroundEffect(answered.map((p) => ({ ms: p.replyMs, a: p.t0, b: p.t0 + p.replyMs }))),
    pubAckMs: percentiles(probes.filter((p) => p.ackMs !== null).map((p) => p.ackMs)),
    stages: stageStats, meanShareOfTotal: share, slowest,
    commits: windows.length ? commitStatements(windows) : null,
  };
}

/** Lateness of timer wakes: planned wake → wake handler start, and its parts. */
function analyzeTimers(keys, rt, lateness0) {
  const late = [];
  const fire = [];
  const toHandler = [];
  const lead = [];
  let missing = 0;
  for (const sid of keys) {
    const w = traces.get(`${sid}:wake`);
    if (!w || w.hStart === undefined || w.until === undefined) { missing++; continue; }
    late.push(w.hStart - w.until);
    if (w.wakeDue !== undefined) { fire.push(w.wakeDue - w.until); toHandler.push(w.hStart - w.wakeDue); }
    const s = [...traces.entries()].find(([k, v]) => k.startsWith(`${sid}:`) && v.sleepCommitEnd !== undefined)?.[1];
    if (s) lead.push(w.until - s.sleepCommitEnd);
  }
  return {
    n: keys.length, missing,
    latenessMs: percentiles(late),
    plannedToWakeDueMs: percentiles(fire),
    wakeDueToHandlerMs: percentiles(toHandler),
    schedulerLatenessMs: percentiles(rt.wakeups.scheduler.lateness.slice(lateness0)),
    sleepCommittedBeforeWakeMs: percentiles(lead),
  };
}

// ---- phases -------------------------------------------------------------------------------------

function startPhase() {
  traces = new Map();
  current = new Map();
  queries = [];
  background = [];
  tracing = true;
  return cpuMark(nats.pid, prober.pid);
}

function endPhase(c0) {
  tracing = false;
  return cpuDelta(c0, cpuMark(nats.pid, prober.pid), cpus().length);
}

const ids = (prefix, n) => Array.from({ length: n }, (_, k) => ({ id: `${prefix}${k}` }));

async function sequentialPhase(items, firstIndex) {
  const c0 = startPhase();
  const { probes } = await prober.run({ mode: 'sequential', subjectPrefix: 'agentry.in.', replyPrefix: 'agentry.out.', items, gapMs: GAP_MS, firstIndex, timeoutMs: 10_000 });
  await sleep(50); // late commits land in the traces
  const cpu = endPhase(c0);
  return { ...analyzeMessages(probes), cpu };
}

async function startRuntime(store) {
  const rt = await createRuntime({
    agents: [probeAgent], store, logger: quietLogger(),
    config: { natsUrl: nats.url, partitions: PARTITIONS, defaultAgentType: 'probe', logLevel: 'error' },
  });
  instrumentHost(rt);
  await waitUntil(() => rt.leases.owned().length === PARTITIONS, 'every partition lease', 60_000, 20);
  await sleep(1000); // start-up work (scheduler reads, consumer creation) is over
  return rt;
}

async function runStore(kind) {
  let schema;
  const store = kind === 'pg' ? createPgStore({ connectionString: PG_URL, schema: (schema = schemaName('low')) }) : createMemoryStore();
  if (schema) schemas.push(schema);
  instrumentStore(store, onStoreCall);
  const out = { phases: {} };
  let rt = await startRuntime(store);
  try {
    let next = 0;
    await sequentialPhase(ids('w-', WARMUP), next); // JIT, pools, connections
    next += WARMUP;
    out.phases.new = await sequentialPhase(ids('n-', N), next);
    next += N;
    log(`lowload ${kind}: new session → reply p50 ${out.phases.new.replyMs.p50} p99 ${out.phases.new.replyMs.p99} max ${out.phases.new.replyMs.max} ms`);
    out.phases.live = await sequentialPhase(ids('n-', N), next);
    next += N;
    log(`lowload ${kind}: live session → reply p50 ${out.phases.live.replyMs.p50} p99 ${out.phases.live.replyMs.p99} max ${out.phases.live.replyMs.max} ms`);

    // Lone timers, one after the other: the wake's reply ends each probe.
    {
      const lat0 = rt.wakeups.scheduler.lateness.length;
      const c0 = startPhase();
      const items = Array.from({ length: TIMERS }, (_, k) => ({ id: `t-${k}`, extra: { op: 'sleep', ms: SLEEP_MS } }));
      const { probes } = await prober.run({ mode: 'sequential', subjectPrefix: 'agentry.in.', replyPrefix: 'agentry.out.', items, gapMs: GAP_MS, firstIndex: next, timeoutMs: 10_000 + SLEEP_MS });
      next += TIMERS;
      await sleep(50);
      const cpu = endPhase(c0);
      out.phases.timers = { ...analyzeTimers(items.map((x) => x.id), rt, lat0), timeouts: probes.filter((p) => p.replyMs === null).length, cpu };
      log(`lowload ${kind}: lone timer lateness p50 ${out.phases.timers.latenessMs.p50} p99 ${out.phases.timers.latenessMs.p99} max ${out.phases.timers.latenessMs.max} ms`);
    }

    // The trickle: timers set at 50/s that fall due while 20 sessions get 10 messages each at 20/s.
    {
      const lat0 = rt.wakeups.scheduler.lateness.length;
      const c0 = startPhase();
      const items = [];
      for (let k = 0; k < TRICKLE.timers; k++) items.push({ atMs: k * TRICKLE.timerEveryMs, id: `tt-${k}`, extra: { op: 'sleep', ms: TRICKLE.timerSleepMs } });
      for (let k = 0; k < TRICKLE.sessions * TRICKLE.perSession; k++) items.push({ atMs: TRICKLE.startMs + k * TRICKLE.messageEveryMs, id: `tr-${k % TRICKLE.sessions}` });
      items.sort((a, b) => a.atMs - b.atMs);
      const { probes } = await prober.run({ mode: 'schedule', subjectPrefix: 'agentry.in.', replyPrefix: 'agentry.out.', items, firstIndex: next, timeoutMs: 15_000 });
      next += items.length;
      await sleep(50);
      const cpu = endPhase(c0);
      const msgs = probes.filter((p) => p.id.startsWith('tr-'));
      const timerIds = items.filter((x) => x.id.startsWith('tt-')).map((x) => x.id);
      out.phases.trickle = { messages: analyzeMessages(msgs), timers: analyzeTimers(timerIds, rt, lat0), cpu };
      log(`lowload ${kind}: trickle reply p50 ${out.phases.trickle.messages.replyMs.p50} p99 ${out.phases.trickle.messages.replyMs.p99} max ${out.phases.trickle.messages.replyMs.max} ms; its timers p99 ${out.phases.trickle.timers.latenessMs.p99} ms`);
    }

    // A restart on the same store: every session is stored, none is live.
    await rt.stop();
    rt = await startRuntime(store);
    out.phases.stored = await sequentialPhase(ids('n-', N), next);
    next += N;
    log(`lowload ${kind}: stored session → reply p50 ${out.phases.stored.replyMs.p50} p99 ${out.phases.stored.replyMs.p99} max ${out.phases.stored.replyMs.max} ms`);
    out.hostStats = { ...rt.host.stats };
  } finally {
    tracing = false;
    await rt.stop();
    await store.close();
  }
  return out;
}

// ---- baselines ------------------------------------------------------------------------------------

/** Raw JetStream: publish → one durable pull consumer (consume + ack) → core reply, same prober and pacing. */
async function rawJetStream() {
  const nc = await connect({ servers: nats.url, name: 'agentry-bench-raw' });
  const jsm = await jetstreamManager(nc);
  const js = jetstream(nc);
  await jsm.streams.add({ name: 'BENCHRAW', subjects: ['benchraw.in.>'], retention: RetentionPolicy.Workqueue, storage: StorageType.File });
  await jsm.consumers.add('BENCHRAW', { durable_name: 'raw', ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All, max_ack_pending: -1 });
  const consumer = await js.consumers.get('BENCHRAW', 'raw');
  const received = new Map();
  const messages = await consumer.consume({
    max_messages: 128, expires: 5000,
    callback: (m) => {
      const t = wallNow();
      const id = m.subject.slice('benchraw.in.'.length);
      try { received.set(`${id}:${JSON.parse(dec.decode(m.data)).i}`, t); } catch { /* ignore */ }
      m.ack();
      nc.publish(`benchraw.out.${id}`, m.data);
    },
  });
  try {
    const job = { mode: 'sequential', subjectPrefix: 'benchraw.in.', replyPrefix: 'benchraw.out.', gapMs: GAP_MS, timeoutMs: 10_000 };
    await prober.run({ ...job, items: ids('w-', WARMUP), firstIndex: 0 });
    const c0 = cpuMark(nats.pid, prober.pid);
    const { probes } = await prober.run({ ...job, items: ids('r-', N), firstIndex: WARMUP });
    const cpu = cpuDelta(c0, cpuMark(nats.pid, prober.pid), cpus().length);
    const oneWay = probes.map((p) => (received.has(`${p.id}:${p.i}`) ? received.get(`${p.id}:${p.i}`) - p.t0 : null)).filter((x) => x !== null);
    return {
      roundTripMs: percentiles(probes.filter((p) => p.replyMs !== null).map((p) => p.replyMs)),
      publishToConsumerMs: percentiles(oneWay),
      pubAckMs: percentiles(probes.filter((p) => p.ackMs !== null).map((p) => p.ackMs)),
      timeouts: probes.filter((p) => p.replyMs === null).length, cpu,
    };
  } finally {
    await messages.close();
    await nc.close();
  }
}

/** Raw Postgres round trips, one at a time with the same gap: SELECT 1, a 1 KB JSONB upsert, the same in BEGIN/COMMIT. */
async function rawPostgres() {
  const schema = schemaName('low_raw');
  schemas.push(schema);
  const admin = await pgClient();
  await admin.query(`CREATE SCHEMA ${schema}`);
  await admin.end();
  const c = await pgClient(schema);
  try {
    await c.query('CREATE TABLE t (id text PRIMARY KEY, doc jsonb NOT NULL, v bigint NOT NULL)');
    const doc = JSON.stringify({ notes: 'n'.repeat(1000) });
    const upsert = 'INSERT INTO t (id, doc, v) VALUES ($1, $2::jsonb, 1) ON CONFLICT (id) DO UPDATE SET doc = EXCLUDED.doc, v = t.v + 1';
    const timeEach = async (fn) => {
      const xs = [];
      for (let k = 0; k < WARMUP + N; k++) {
        const t0 = wallNow();
        await fn(k);
        if (k >= WARMUP) xs.push(wallNow() - t0);
        await sleep(GAP_MS);
      }
      return percentiles(xs);
    };
    const c0 = cpuMark(nats.pid, prober.pid);
    const selectOneMs = await timeEach(() => c.query('SELECT 1'));
    const upsertAutocommitMs = await timeEach((k) => c.query(upsert, [`a${k % 50}`, doc]));
    const upsertTxMs = await timeEach(async (k) => { await c.query('BEGIN'); await c.query(upsert, [`b${k % 50}`, doc]); await c.query('COMMIT'); });
    const cpu = cpuDelta(c0, cpuMark(nats.pid, prober.pid), cpus().length);
    return { selectOneMs, upsertAutocommitMs, upsertTxMs, docBytes: doc.length, cpu };
  } finally {
    await c.end();
  }
}

try {
  results.baselines.jetstream = await rawJetStream();
  log(`lowload baseline: raw JetStream publish → consumer → reply p50 ${results.baselines.jetstream.roundTripMs.p50} p99 ${results.baselines.jetstream.roundTripMs.p99} ms`);
  results.baselines.pg = await rawPostgres();
  log(`lowload baseline: Postgres 1 KB upsert + COMMIT p50 ${results.baselines.pg.upsertTxMs.p50} p99 ${results.baselines.pg.upsertTxMs.p99} ms; autocommit p50 ${results.baselines.pg.upsertAutocommitMs.p50} ms; SELECT 1 p50 ${results.baselines.pg.selectOneMs.p50} ms`);
  for (const kind of STORES) results.runs[kind] = await runStore(kind);
} finally {
  await prober.exit();
  for (const s of schemas) await dropSchema(s).catch(() => undefined);
  await nats.cleanup();
}
writeFileSync(outPath, JSON.stringify(results, null, 2));
process.exit(0); // see latency.mjs
