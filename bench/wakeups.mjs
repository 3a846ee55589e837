// Wake-ups suite (issue 4, "Benchmark"): on Postgres,
//
// 1. Wake lateness with 10k and 100k sleepers. Sleeping sessions are written straight through
//    the store's commit() (WAKE_BATCH records per call, version 1) as clones of one real session
//    that the runtime put to sleep with sleepAgent(); wake times are spread over a WINDOW_MS
//    window that starts once the rows and the runtime are in place. A runtime then starts; the
//    agent records, on the wake record (batch[0].kind === 'wake'), Date.now() − planned wake time
//    (agent-observed lateness: timer + hydration + admission + handler start). Also reported:
//    the scheduler's own firing lateness (`scheduler.lateness`).
// 2. Start-up with 1M stored timers: 1,000,000 sleeping sessions with wake_at spread over 30
//    days (INSERT … SELECT unnest in SQL), then createRuntime() is timed and heldCount() and
//    heapUsed after gc are compared with a runtime on an empty schema.
// 3. Event fan-out: 10k idle sessions subscribed to `bench.*` (commit() with `subscribe`), then
//    K events through publishEvent(); deliveries/s until every session handled every event,
//    and publishEvent() call latency.
//
// Run: npm run bench:wakeups (BENCH_QUICK=1: 10k sleepers only, 100k start-up timers, fewer events).
import { mkdirSync, writeFileSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { cpus, loadavg, totalmem } from 'node:os';
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { createRuntime, defineAgent, partitionOf } from '../dist/runtime/index.js';
import { createPgStore } from '../dist/persistence/index.js';
import { PARTITIONS, PG_URL, QUICK, ROOT, cpuDelta, cpuMark, dropSchema, log, percentiles, pgClient, quietLogger, round, schemaName, sleep, startNats, waitUntil } from './lib.mjs';

const SLEEPER_COUNTS = QUICK ? [10_000] : (process.env.BENCH_SLEEPERS ?? '10000,100000').split(',').map(Number);
const TIMERS = Number(process.env.BENCH_TIMERS ?? (QUICK ? 100_000 : 1_000_000));
const SUBSCRIBERS = Number(process.env.BENCH_SUBSCRIBERS ?? 10_000);
const EVENTS = Number(process.env.BENCH_EVENTS ?? (QUICK ? 5 : 10));
const WINDOW_MS = Number(process.env.BENCH_WAKE_WINDOW_MS ?? 30_000);
const WAKE_BATCH = 1000;
/** Rows/s the sleepers' inserts are budgeted (the wake window starts after them). */
const INSERT_RATE = Number(process.env.BENCH_INSERT_RATE ?? 15_000);
const MAX_ACTIVE = Number(process.env.BENCH_MAX_ACTIVE ?? 10_000);
const HORIZON_MS = 60_000; // the default timerHorizonMs
/** BENCH_WAKEUP_PARTS=fanout (comma list of wakes, fanout, startup): run only those parts. */
const PARTS = new Set((process.env.BENCH_WAKEUP_PARTS ?? 'wakes,fanout,startup').split(','));

const schemas = [];
const results = { config: { partitions: PARTITIONS, maxActiveSessions: MAX_ACTIVE, timerHorizonMs: HORIZON_MS, wakeWindowMs: WINDOW_MS, commitBatch: WAKE_BATCH } };

// ---- the agent ---------------------------------------------------------------------------------

/** Planned wake time by session id (phase 1), and per-session event counts (phase 3). */
const planned = new Map();
let wakeLateness = [];
/** Planned and handler-start time of each woken sleeper (the stage breakdown). */
const startedAt = new Map();
let eventsHandled = 0;
let wakesSeen = 0;

const benchAgent = defineAgent({
  type: 'bench', onMessage: 'queue', initialState: () => ({}),
  handle(batch, ctx) {
    if (batch[0].kind === 'wake') {
      const p = planned.get(ctx.sessionId);
      if (p !== undefined) { const now = Date.now(); wakeLateness.push(now - p); startedAt.set(ctx.sessionId, { planned: p, started: now }); planned.delete(ctx.sessionId); }
      wakesSeen++;
    }
    for (const m of batch) if (m.kind === 'event') eventsHandled++;
    return undefined;
  },
});

/** Group-commit knobs for experiments (BENCH_COMMIT_BATCH, BENCH_COMMIT_CONCURRENCY); unset: the runtime's defaults. */
const COMMIT_KNOBS = {
  ...(process.env.BENCH_COMMIT_BATCH ? { groupCommitMaxBatch: Number(process.env.BENCH_COMMIT_BATCH) } : {}),
  ...(process.env.BENCH_COMMIT_CONCURRENCY ? { groupCommitConcurrency: Number(process.env.BENCH_COMMIT_CONCURRENCY) } : {}),
};

function runtimeConfig(nats, schema, extra = {}) {
  return { ...COMMIT_KNOBS, natsUrl: nats.url, partitions: PARTITIONS, store: 'auto', databaseUrl: PG_URL, databaseSchema: schema, logLevel: 'error', maxActiveSessions: MAX_ACTIVE, timerHorizonMs: HORIZON_MS, port: 0, ...extra };
}

async function freshSchema(tag) {
  const schema = schemaName(tag);
  schemas.push(schema);
  const store = createPgStore({ connectionString: PG_URL, schema });
  await store.migrate();
  return { schema, store };
}

// ---- templates -----------------------------------------------------------------------------------

/** A real idle session and a real sleeping one, committed by the runtime: their snapshots are cloned. */
async function templates() {
  const nats = await startNats();
  const { schema, store } = await freshSchema('wk_tpl');
  await store.close();
  const rt = await createRuntime({ agents: [benchAgent], logger: quietLogger(), config: runtimeConfig(nats, schema) });
  try {
    await rt.createAgent('tidle', 'bench');
    await rt.createAgent('tsleep', 'bench');
    await rt.sleepAgent('tsleep', { durationMs: 3_600_000 });
    let idle, sleeping;
    await waitUntil(async () => {
      idle = await rt.store.loadSession('tidle');
      sleeping = await rt.store.loadSession('tsleep');
      return idle && sleeping && sleeping.status === 'sleeping' && sleeping.wakeAt !== null;
    }, 'template sessions committed', 30_000, 50);
    return { idle: idle.snapshot, sleeping: sleeping.snapshot };
  } finally {
    await rt.stop();
    await nats.cleanup();
  }
}

function cloneSnapshot(tpl, id, until) {
  const s = structuredClone(tpl);
  s.context.sessionId = id;
  if (until !== undefined && s.context.wake) s.context.wake.until = until;
  return s;
}

function record(id, status, snapshot, wakeAt, extra = {}) {
  return {
    sessionId: id, type: 'bench', status, snapshot, lastSeq: 0, version: 1, partition: partitionOf(id, PARTITIONS), ownerEpoch: 0,
    wakeAt, wakeEvents: [], wakePriority: null, history: [], transitions: [], outbox: [], ...extra,
  };
}

// ---- 1. wake lateness ----------------------------------------------------------------------------

async function wakeLatenessRun(tpl, n) {
  const nats = await startNats();
  const { schema, store } = await freshSchema(`wk_wake${n}`);
  planned.clear(); startedAt.clear(); wakeLateness = []; wakesSeen = 0;
  // The window starts after the rows are written (~15k/s budgeted, BENCH_INSERT_RATE on a slower
  // or busier machine) and the runtime is up.
  const tInsert0 = Date.now();
  const windowStart = tInsert0 + Math.ceil(n / INSERT_RATE) * 1000 + 15_000;
  for (let i0 = 0; i0 < n; i0 += WAKE_BATCH) {
    const recs = [];
    for (let i = i0; i < Math.min(n, i0 + WAKE_BATCH); i++) {
      const id = `w${i}`;
      const until = windowStart + Math.floor(((i * 7919) % n) * (WINDOW_MS / n)); // shuffled across the window
      planned.set(id, until);
      recs.push(record(id, 'sleeping', cloneSnapshot(tpl.sleeping, id, until), until));
    }
    await store.commit(recs);
  }
  const insertMs = Date.now() - tInsert0;
  await store.close();
  const lead = windowStart - Date.now();
  log(`wakes ${n}: ${n} sleepers written in ${insertMs} ms; first wake in ${lead} ms`);
  if (lead < 3000) log(`wakes ${n}: WARNING: insertion ran late, the first wakes may be overdue at start`);
  const t0 = Date.now();
  const rt = await createRuntime({ agents: [benchAgent], logger: quietLogger(), config: runtimeConfig(nats, schema) });
  const startMs = Date.now() - t0;
  const sched = rt.wakeups.scheduler;
  const held = sched.heldCount();
  const trace = traceStages(rt);
  const cpu0 = process.cpuUsage();
  // Event-loop delay and machine load over the window only (not the insert or the start-up).
  await sleep(Math.max(0, windowStart - Date.now() - 1000));
  const eld = monitorEventLoopDelay({ resolution: 1 });
  eld.enable();
  const mark0 = cpuMark(nats.pid);
  const prof = await startProfile();
  try {
    await waitUntil(() => wakeLateness.length >= n, `${n} wakes`, windowStart + WINDOW_MS + 180_000 - Date.now(), 100).catch((e) => log(`wakes ${n}: ${e.message}`));
    const lastWake = Date.now();
    eld.disable();
    await prof.stop(`${n}`);
    const load = cpuDelta(mark0, cpuMark(nats.pid), cpus().length);
    const cpu = process.cpuUsage(cpu0);
    const lat = percentiles(wakeLateness);
    const early = wakeLateness.filter((x) => x < 0).length;
    const schedLat = percentiles(sched.lateness);
    const schedEarly = sched.lateness.filter((x) => x < 0).length;
    return {
      sleepers: n, insertMs, insertRate: round(n / (insertMs / 1000)), createRuntimeMs: startMs, heldAtStart: held,
      woke: wakeLateness.length, early, lateness: lat, schedulerLateness: schedLat, schedulerEarly: schedEarly,
      wakesPerSecOverWindow: round(wakeLateness.length / ((lastWake - windowStart) / 1000)), drainedAfterWindowMs: Math.max(0, lastWake - (windowStart + WINDOW_MS)),
      benchProcessCores: round((cpu.user + cpu.system) / 1000 / (lastWake - t0), 2), liveAtEnd: rt.host.liveCount(),
      eventLoopDelayMs: { p50: round(eld.percentile(50) / 1e6), p99: round(eld.percentile(99) / 1e6), max: round(eld.max / 1e6) },
      // CPU per wake over the window (the runtime process; Postgres counts every backend on the machine).
      cpuPerWakeMs: { runtime: round(load.self.cpuMs / Math.max(1, wakeLateness.length), 3), postgres: round(load.postgres.cpuMs / Math.max(1, wakeLateness.length), 3), nats: round(load.nats.cpuMs / Math.max(1, wakeLateness.length), 3) },
      load: { runtimeCores: load.self.cores, natsCores: load.nats.cores, postgresCores: load.postgres.cores, otherCores: load.otherCores, loadavg: loadavg().map((x) => round(x, 2)) },
      stages: trace.report(),
    };
  } finally {
    trace.restore();
    await rt.stop();
    await nats.cleanup();
  }
}

/**
 * BENCH_CPU_PROF=<prefix>: a CPU profile of the wake window only (not the inserts or the start),
 * written to <prefix>-<sleepers>.cpuprofile (open it in Chrome DevTools or speedscope).
 */
async function startProfile() {
  const prefix = process.env.BENCH_CPU_PROF;
  if (!prefix) return { stop: async () => undefined };
  const { Session } = await import('node:inspector');
  const session = new Session();
  session.connect();
  const post = (method, params) => new Promise((res, rej) => session.post(method, params, (err, r) => (err ? rej(err) : res(r))));
  await post('Profiler.enable');
  await post('Profiler.setSamplingInterval', { interval: 500 });
  await post('Profiler.start');
  return {
    async stop(tag) {
      const { profile } = await post('Profiler.stop');
      session.disconnect();
      writeFileSync(`${prefix}-${tag}.cpuprofile`, JSON.stringify(profile));
      log(`cpu profile written to ${prefix}-${tag}.cpuprofile`);
    },
  };
}

/**
 * Where each wake's lateness comes from, without touching the runtime: the time the host was
 * handed the due wake (`host.wakeDue`, the scheduler's firing), the time its session's hydration
 * read returned (`store.loadSessions`; before the firing when it was loaded ahead), and the
 * handler's start (the agent). Also the hydration reads and group-commit transactions of the run.
 */
function traceStages(rt) {
  const firedAt = new Map();
  const loadedAt = new Map();
  const loads = { count: 0, ids: 0, ms: [] };
  const commits = { count: 0, records: 0, ms: [] };
  const host = rt.host;
  const store = rt.store;
  const wakeDue = host.wakeDue;
  host.wakeDue = function (sid, ...rest) {
    if (!firedAt.has(sid)) firedAt.set(sid, Date.now());
    return wakeDue.call(this, sid, ...rest);
  };
  const loadSessions = store.loadSessions;
  store.loadSessions = async function (ids, ...rest) {
    const t0 = performance.now();
    const out = await loadSessions.call(this, ids, ...rest);
    const now = Date.now();
    loads.count++; loads.ids += ids.length; loads.ms.push(performance.now() - t0);
    for (const id of ids) if (!loadedAt.has(id)) loadedAt.set(id, now);
    return out;
  };
  const commit = store.commit;
  store.commit = async function (recs, ...rest) {
    const t0 = performance.now();
    try { return await commit.call(this, recs, ...rest); } finally { commits.count++; commits.records += recs.length; commits.ms.push(performance.now() - t0); }
  };
  return {
    restore() { host.wakeDue = wakeDue; store.loadSessions = loadSessions; store.commit = commit; },
    /** Per wake: fired − planned, loaded − fired (0 when loaded ahead), handler start − max(fired, loaded); and the same split over the slowest 1 %. */
    report() {
      const rows = [];
      for (const [sid, { planned: p, started }] of startedAt) {
        const f = firedAt.get(sid);
        if (f === undefined) continue;
        const l = loadedAt.get(sid) ?? f;
        rows.push({ total: started - p, fire: f - p, load: Math.max(0, l - f), run: started - Math.max(f, l), ahead: l <= f });
      }
      rows.sort((a, b) => a.total - b.total);
      const tail = rows.slice(Math.floor(rows.length * 0.99));
      const mean = (xs, k) => round(xs.reduce((a, r) => a + r[k], 0) / Math.max(1, xs.length), 1);
      return {
        n: rows.length, loadedAhead: rows.filter((r) => r.ahead).length,
        fireLateMs: percentiles(rows.map((r) => r.fire)), loadAfterFireMs: percentiles(rows.map((r) => r.load)), startAfterLoadMs: percentiles(rows.map((r) => r.run)),
        slowest1pct: { n: tail.length, totalMs: mean(tail, 'total'), fireMs: mean(tail, 'fire'), loadMs: mean(tail, 'load'), runStartMs: mean(tail, 'run') },
        loadQueries: loads.count, idsPerLoad: round(loads.ids / Math.max(1, loads.count)), loadQueryMs: percentiles(loads.ms),
        commitTransactions: commits.count, recordsPerCommit: round(commits.records / Math.max(1, commits.count)), commitMs: percentiles(commits.ms),
      };
    },
  };
}

// ---- 2. start-up with 1M stored timers --------------------------------------------------------------

function gcHeap() {
  global.gc?.(); global.gc?.();
  return process.memoryUsage().heapUsed;
}

async function startupRun(tpl) {
  const nats = await startNats();
  try {
    // Empty-store baseline.
    const empty = await freshSchema('wk_empty');
    await empty.store.close();
    const heap0 = gcHeap();
    let t0 = performance.now();
    let rt = await createRuntime({ agents: [benchAgent], logger: quietLogger(), config: runtimeConfig(nats, empty.schema) });
    const emptyStartMs = performance.now() - t0;
    const emptyHeap = gcHeap();
    const emptyHeld = rt.wakeups.scheduler.heldCount();
    await rt.stop();

    // 1M sleeping sessions, wake_at spread over 30 days from now+5s (so ~HORIZON/30d of them are in the horizon).
    const { schema, store } = await freshSchema('wk_1m');
    await store.close();
    const c = await pgClient(schema);
    const tIns = performance.now();
    const base = Date.now() + 5000;
    const span = 30 * 24 * 3600 * 1000;
    const CHUNK = 100_000;
    const snap = JSON.stringify(tpl.sleeping);
    for (let i0 = 0; i0 < TIMERS; i0 += CHUNK) {
      const parts = [];
      for (let i = i0; i < Math.min(TIMERS, i0 + CHUNK); i++) parts.push(partitionOf(`m${i}`, PARTITIONS));
      await c.query(`INSERT INTO sessions (id, type, status, snapshot, last_seq, version, partition, owner_epoch, wake_at, wake_events, wake_priority, created_at, updated_at)
        SELECT 'm' || (g + $2 - 1), 'bench', 'sleeping',
               jsonb_set(jsonb_set($1::jsonb, '{context,sessionId}', to_jsonb('m' || (g + $2 - 1))), '{context,wake,until}', to_jsonb($3::bigint + ((g + $2 - 1) * 7919 % $4) * ($5::bigint / $4))),
               0, 1, part, 0, $3::bigint + ((g + $2 - 1) * 7919 % $4) * ($5::bigint / $4), '{}', NULL, $6, $6
        FROM unnest($7::int[]) WITH ORDINALITY AS u(part, g)`, [snap, i0, base, TIMERS, span, Date.now(), parts]);
    }
    await c.query('ANALYZE sessions');
    const insertMs = performance.now() - tIns;
    const { rows: [sz] } = await c.query(`SELECT count(*)::int AS n, pg_total_relation_size('sessions') AS bytes,
        (SELECT count(*)::int FROM sessions WHERE wake_at < $1) AS in_horizon FROM sessions`, [Date.now() + HORIZON_MS]);
    await c.end();
    log(`startup: ${sz.n} timers stored in ${Math.round(insertMs)} ms (${Math.round(Number(sz.bytes) / 1e6)} MB); ${sz.in_horizon} due within the horizon`);

    const heap1 = gcHeap();
    t0 = performance.now();
    rt = await createRuntime({ agents: [benchAgent], logger: quietLogger(), config: runtimeConfig(nats, schema) });
    const startMs = performance.now() - t0;
    const held = rt.wakeups.scheduler.heldCount();
    const heap = gcHeap();
    await rt.stop();
    return {
      timers: sz.n, insertMs: Math.round(insertMs), tableMB: Math.round(Number(sz.bytes) / 1e6), dueInHorizonAtInsert: sz.in_horizon,
      empty: { createRuntimeMs: round(emptyStartMs), held: emptyHeld, heapUsedMB: round(emptyHeap / 1e6, 1), heapDeltaMB: round((emptyHeap - heap0) / 1e6, 1) },
      stored: { createRuntimeMs: round(startMs), held, heapUsedMB: round(heap / 1e6, 1), heapDeltaMB: round((heap - heap1) / 1e6, 1) },
    };
  } finally {
    await nats.cleanup();
  }
}

// ---- 3. event fan-out --------------------------------------------------------------------------------

async function fanoutRun(tpl) {
  const nats = await startNats();
  const { schema, store } = await freshSchema('wk_fan');
  for (let i0 = 0; i0 < SUBSCRIBERS; i0 += WAKE_BATCH) {
    const recs = [];
    for (let i = i0; i < Math.min(SUBSCRIBERS, i0 + WAKE_BATCH); i++) {
      const id = `f${i}`;
      recs.push(record(id, 'idle', cloneSnapshot(tpl.idle, id), null, { subscribe: ['bench.*'] }));
    }
    await store.commit(recs);
  }
  await store.close();
  const rt = await createRuntime({ agents: [benchAgent], logger: quietLogger(), config: runtimeConfig(nats, schema) });
  try {
    eventsHandled = 0;
    const total = SUBSCRIBERS * EVENTS;
    const calls = [];
    let recipients = 0;
    // Group-commit transactions and their records during the fan-out (the committer calls store.commit).
    const tx = { count: 0, records: 0, ms: [], busyMs: 0, inFlight: 0, busySince: 0 };
    const commit = rt.store.commit.bind(rt.store);
    rt.store.commit = async (recs) => {
      tx.count++; tx.records += recs.length;
      const c0 = performance.now();
      if (tx.inFlight++ === 0) tx.busySince = c0;
      try { return await commit(recs); } finally {
        const c1 = performance.now();
        tx.ms.push(c1 - c0);
        if (--tx.inFlight === 0) tx.busyMs += c1 - tx.busySince;
        else if (tx.inFlight < 0) tx.inFlight = 0;
      }
    };
    // When the router stored the last recipient's message (the old router used publishInbox per recipient).
    let routedAt = 0;
    for (const k of ['publishInboxMany', 'publishInbox']) {
      const f = rt.transport[k]?.bind(rt.transport);
      if (f) rt.transport[k] = async (...a) => { const r = await f(...a); routedAt = performance.now(); return r; };
    }
    const stats0 = { ...rt.host.stats };
    const eld = monitorEventLoopDelay({ resolution: 10 });
    eld.enable();
    const cpu0 = cpuMark(nats.pid);
    const t0 = performance.now();
    for (let k = 0; k < EVENTS; k++) {
      const c0 = performance.now();
      const r = await rt.publishEvent('bench.tick', { k });
      calls.push(performance.now() - c0);
      recipients += r.recipients;
    }
    const tPublished = performance.now();
    await waitUntil(() => eventsHandled >= total, `${total} event deliveries`, 300_000, 50).catch((e) => log(`fanout: ${e.message}`));
    const tDone = performance.now();
    eld.disable();
    const cpu = cpuDelta(cpu0, cpuMark(nats.pid), cpus().length);
    if (tx.inFlight > 0) tx.busyMs += tDone - tx.busySince; // a commit still in flight at the end
    const per = (ms) => round((ms * 1000) / Math.max(1, eventsHandled));
    // The first event hydrates every subscriber; the rest reach live sessions.
    return {
      subscribers: SUBSCRIBERS, events: EVENTS, recipients, handled: eventsHandled,
      publishCallMs: percentiles(calls), publishAllMs: round(tPublished - t0), allHandledMs: round(tDone - t0),
      deliveriesPerSec: round(eventsHandled / ((tDone - t0) / 1000)), routedPerSec: round(recipients / ((tPublished - t0) / 1000)), liveAtEnd: rt.host.liveCount(),
      cpu, cpuUsPerDelivery: { runtime: per(cpu.self.cpuMs), nats: per(cpu.nats.cpuMs), postgres: per(cpu.postgres.cpuMs) },
      routedAllMs: round(routedAt - t0),
      eventLoopDelayMs: { p50: round(eld.percentile(50) / 1e6), p99: round(eld.percentile(99) / 1e6), max: round(eld.max / 1e6) },
      transactions: tx.count, recordsPerTransaction: round(tx.records / Math.max(1, tx.count)), transactionMs: percentiles(tx.ms),
      commitBusyShare: round(tx.busyMs / (tDone - t0), 2),
      runs: rt.host.stats.runs - stats0.runs, commitRecords: rt.host.stats.commits - stats0.commits, coalesced: rt.host.stats.coalesced - stats0.coalesced,
    };
  } finally {
    await rt.stop();
    await nats.cleanup();
  }
}

// ---- report ---------------------------------------------------------------------------------------

function versions() {
  const v = {};
  try { v.nats = execFileSync('nats-server', ['--version'], { encoding: 'utf8' }).trim(); } catch { v.nats = 'unknown'; }
  return v;
}

function table(r) {
  const rows = ['| Measure | Result | Goal |', '|---|---|---|'];
  for (const w of r.wakes ?? []) {
    const l = w.lateness, s = w.schedulerLateness;
    const goal = w.sleepers >= 100_000 ? 'p99 ≤ 50 ms' : 'p99 ≤ 10 ms';
    rows.push(`| Wake lateness, ${w.sleepers / 1000}k sleepers over ${WINDOW_MS / 1000} s (agent-observed) | p50 ${l.p50} ms, p99 ${l.p99} ms, max ${l.max} ms; ${w.woke}/${w.sleepers} woke, ${w.early} early | ${goal}, all woke, never early (issue 12) |`);
    rows.push(`| Scheduler firing lateness, ${w.sleepers / 1000}k | p50 ${s.p50} ms, p99 ${s.p99} ms, max ${s.max} ms; ${w.schedulerEarly} early | |`);
  }
  if (r.startup) {
    const s = r.startup;
    rows.push(`| Start-up, ${s.timers.toLocaleString('en')} timers stored (30 days) | createRuntime ${s.stored.createRuntimeMs} ms (empty store ${s.empty.createRuntimeMs} ms) | |`);
    rows.push(`| Heap after gc, ${s.timers.toLocaleString('en')} timers vs empty | ${s.stored.heapUsedMB} MB (+${s.stored.heapDeltaMB} MB over createRuntime) vs ${s.empty.heapUsedMB} MB (+${s.empty.heapDeltaMB} MB); heldCount ${s.stored.held} vs ${s.empty.held} | heap holds only the horizon |`);
  }
  if (r.fanout) {
    const f = r.fanout;
    rows.push(`| Event fan-out, ${f.subscribers / 1000}k subscribers × ${f.events} events | ${f.deliveriesPerSec.toLocaleString('en')} deliveries/s (${f.handled}/${f.subscribers * f.events} in ${round(f.allHandledMs / 1000, 1)} s) | |`);
    rows.push(`| publishEvent() call, ${f.subscribers / 1000}k recipients | p50 ${f.publishCallMs.p50} ms, max ${f.publishCallMs.max} ms (routing ${f.routedPerSec.toLocaleString('en')} inbox publishes/s) | |`);
  }
  return rows.join('\n');
}

try {
  results.machine = { cpus: cpus().length, model: cpus()[0]?.model, memGB: round(totalmem() / 2 ** 30, 1), node: process.version };
  results.versions = versions();
  {
    const c = await pgClient();
    results.versions.postgres = (await c.query('SHOW server_version')).rows[0].server_version;
    await c.end();
  }
  log(`wakeups: sleepers ${SLEEPER_COUNTS.join(', ')}, ${TIMERS} stored timers, ${SUBSCRIBERS} subscribers × ${EVENTS} events`);
  const tpl = await templates();
  results.wakes = [];
  for (const n of PARTS.has('wakes') ? SLEEPER_COUNTS : []) {
    const w = await wakeLatenessRun(tpl, n);
    results.wakes.push(w);
    log(`wakes ${n}: p50 ${w.lateness.p50} p99 ${w.lateness.p99} max ${w.lateness.max} ms, early ${w.early}; scheduler p99 ${w.schedulerLateness.p99} ms; event-loop delay p99 ${w.eventLoopDelayMs.p99} max ${w.eventLoopDelayMs.max} ms; load: other processes ${w.load.otherCores} cores, loadavg ${w.load.loadavg.join(' ')}`);
    log(`wakes ${n}: CPU per wake: runtime ${w.cpuPerWakeMs.runtime} ms (${w.load.runtimeCores} cores), postgres ${w.cpuPerWakeMs.postgres} ms, nats ${w.cpuPerWakeMs.nats} ms; ${w.wakesPerSecOverWindow} wakes/s`);
    const st = w.stages;
    log(`wakes ${n}: stages: fired late p99 ${st.fireLateMs.p99}, load after firing p99 ${st.loadAfterFireMs.p99}, handler start after load p99 ${st.startAfterLoadMs.p99} ms; loaded ahead ${st.loadedAhead}/${st.n}; slowest 1 % (${st.slowest1pct.totalMs} ms) = fire ${st.slowest1pct.fireMs} + load ${st.slowest1pct.loadMs} + start ${st.slowest1pct.runStartMs}; ${st.loadQueries} loads (${st.idsPerLoad} ids, p99 ${st.loadQueryMs.p99} ms), ${st.commitTransactions} commits (${st.recordsPerCommit} records, p99 ${st.commitMs.p99} ms)`);
    await dropSchema(schemas.at(-1)).catch(() => undefined);
  }
  if (PARTS.has('fanout')) {
    results.fanout = await fanoutRun(tpl);
    const f = results.fanout;
    log(`fanout: ${f.deliveriesPerSec} deliveries/s (all routed at ${f.routedAllMs} ms, all handled at ${f.allHandledMs} ms), publishEvent p50 ${f.publishCallMs.p50} ms; event-loop delay p50 ${f.eventLoopDelayMs.p50} p99 ${f.eventLoopDelayMs.p99} ms; CPU µs/delivery runtime ${f.cpuUsPerDelivery.runtime}, nats ${f.cpuUsPerDelivery.nats}, postgres ${f.cpuUsPerDelivery.postgres} (other processes ${f.cpu.otherCores} cores); ${f.runs} runs, ${f.commitRecords} records in ${f.transactions} transactions (${f.recordsPerTransaction}/tx, p50 ${f.transactionMs.p50} ms, max ${f.transactionMs.max} ms; a commit in flight ${Math.round(f.commitBusyShare * 100)} % of the time), ${f.coalesced} coalesced`);
    await dropSchema(schemas.at(-1)).catch(() => undefined);
  }
  if (PARTS.has('startup')) results.startup = await startupRun(tpl);
  if (results.startup) log(`startup: createRuntime ${results.startup.stored.createRuntimeMs} ms, held ${results.startup.stored.held}, heap ${results.startup.stored.heapUsedMB} MB vs empty ${results.startup.empty.heapUsedMB} MB`);
} finally {
  for (const s of schemas) await dropSchema(s).catch(() => undefined);
}
const md = table(results);
console.log(md);
const outPath = process.argv[2] ?? join(ROOT, 'bench', 'results', `${new Date().toISOString().replace(/[:.]/g, '-')}-wakeups.json`);
mkdirSync(dirname(outPath), { recursive: true }); // bench/results is not in a fresh checkout
writeFileSync(outPath, JSON.stringify(results, null, 2));
log(`results written to ${outPath}`);
// A stopped runtime can leave a ref'd timer behind (see restart.mjs): exit explicitly.
process.exit(0);
