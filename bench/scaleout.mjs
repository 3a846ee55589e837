// Scale-out suite (issue 14): does adding runtime nodes add capacity, and does a rolling restart
// of a cluster under load lose, double or reorder anything? Every node is a process of its own
// (this file with `--node`), all on one nats-server (the project's nats.conf) and one Postgres
// schema, all on this machine's cores.
//
// (a) concurrency-bound: the `llm` agent awaits 100–500 ms per message (an LLM call's stand-in;
//     the delay is a hash of the message index, so every run gets the same work) and each node
//     runs at most BENCH_SCALEOUT_MAX_ACTIVE (20) handlers at once (maxActiveSessions). A burst
//     of SESSIONS × PER_SESSION messages is published once every node holds its share of the
//     partitions; throughput is replies per second between the 10th and the 90th percentile of
//     replies (the ramp and the tail left out; the whole-run rate is recorded too). 1, 2 and 3
//     nodes, alternating the order between rounds; ratios from the medians of the same run.
// (b) CPU-bound: the `cpu` agent spins BENCH_SCALEOUT_CPU_MS (1 ms) per message with no await;
//     maxActiveSessions left at its default. The same 1, 2, 3 nodes. On one 2-core machine this
//     measures how the runtime shares two cores between processes, not what more machines add.
// (c) rolling restart: 3 nodes, the `rec` agent (records each message's index in its state and
//     replies), a forked publisher pacing BENCH_SCALEOUT_ROLL_RATE (1,000) msg/s over
//     BENCH_SCALEOUT_ROLL_SESSIONS (1,000) sessions, one publish in flight per session (so each
//     session's order is the stream's), each message's publish time in its body. If the rate is
//     not sustained before the roll (replies fall behind), it is lowered by a quarter and
//     measured again (up to five times): the rate used is reported. Then each node in turn:
//     SIGTERM, wait for the exit, start it again, wait until every partition is held and each node
//     has its share. Publish → reply latency by publish time: before, during and after the roll.
//     At the end every session's committed state is read from Postgres and compared with what
//     the publisher had acked: lost, applied twice, out of order; dead letters; inbox left.
//
// Knobs: BENCH_QUICK, BENCH_PARTITIONS, BENCH_SCALEOUT_ROUNDS, BENCH_SCALEOUT_MAX_ACTIVE,
// BENCH_SCALEOUT_SESSIONS, BENCH_SCALEOUT_PER_SESSION, BENCH_SCALEOUT_DELAY_MS (min-max),
// BENCH_SCALEOUT_CPU_MS, BENCH_SCALEOUT_CPU_MESSAGES, BENCH_SCALEOUT_ROLL_RATE,
// BENCH_SCALEOUT_ROLL_SESSIONS, BENCH_SCALEOUT_PARTS (a,b,c: which parts run), BENCH_SCALEOUT_NODES
// (node counts of (a) and (b), default 1,2,3). Diagnostics: BENCH_CPU_PROF=1 (a .cpuprofile per node
// process in bench/results/profiles/), BENCH_SCALEOUT_TRACE=1 (each node prints its Postgres
// queries' counts and times to its log on stop), BENCH_KEEP_LOGS=1 (keep the node logs),
// BENCH_SCALEOUT_NODE_LOG=info (the nodes' log level: partition acquisitions and releases with
// their times), BENCH_SCALEOUT_ACKLOG=1 (each node writes every inbox dispatch and ack, with the
// runtime frames that acked, and every commit, to acks-node-*.jsonl beside its log). A throughput
// run whose messages are not all in Postgres exactly once keeps its schema and logs.
import { fork } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, readdirSync, writeFileSync, writeSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import {
  BENCH_DIR, PARTITIONS, PG_URL, QUICK, cpuDeltaOf, cpuMarkOf, dropSchema, forkPublisher, log, machineBusyMs, makeBody, median, percentiles,
  pgClient, round, schemaName, sleep, startNats, tempDir, wallNow, withTimeout,
} from './lib.mjs';

const SELF = fileURLToPath(import.meta.url);
const CORES = cpus().length;
const num = (k, d) => (process.env[k] !== undefined && process.env[k] !== '' ? Number(process.env[k]) : d);
const [DELAY_MIN, DELAY_MAX] = (process.env.BENCH_SCALEOUT_DELAY_MS ?? '100-500').split('-').map(Number);
const CFG = {
  partitions: PARTITIONS,
  rounds: num('BENCH_SCALEOUT_ROUNDS', QUICK ? 1 : 2),
  maxActive: num('BENCH_SCALEOUT_MAX_ACTIVE', 20),
  sessions: num('BENCH_SCALEOUT_SESSIONS', 600),
  perSession: num('BENCH_SCALEOUT_PER_SESSION', QUICK ? 2 : 5),
  delayMs: [DELAY_MIN, DELAY_MAX],
  cpuMs: num('BENCH_SCALEOUT_CPU_MS', 1),
  cpuMessages: num('BENCH_SCALEOUT_CPU_MESSAGES', QUICK ? 6_000 : 15_000),
  cpuSessions: 1000,
  rollRate: num('BENCH_SCALEOUT_ROLL_RATE', 1000),
  rollSessions: num('BENCH_SCALEOUT_ROLL_SESSIONS', 1000),
  warmupS: QUICK ? 4 : 6,
  beforeS: QUICK ? 8 : 15,
  afterS: QUICK ? 5 : 10,
  betweenRestartsS: 3,
  nodeCounts: (process.env.BENCH_SCALEOUT_NODES ?? '1,2,3').split(',').map(Number),
  parts: (process.env.BENCH_SCALEOUT_PARTS ?? 'a,b,c').split(',').map((s) => s.trim()),
};

if (process.argv[2] === '--node') await runNode(JSON.parse(process.argv[3]));
else if (process.argv[2] === '--publisher') await runPublisher(process.argv[3]);
else await suite(process.argv[2]);

// ---- a runtime node (child process) ----------------------------------------------------------------

/** The delay of message i in the concurrency-bound workload: uniform in [min, max] by a hash of i. */
function delayOf(i, [min, max]) {
  return min + (Math.imul(i + 1, 2654435761) >>> 0) % (max - min + 1);
}

async function runNode(cfg) {
  const tImport0 = wallNow();
  const { createRuntime, defineAgent } = await import('../dist/runtime/index.js');
  const tCreate0 = wallNow();
  // Diagnostic (BENCH_SCALEOUT_ACKLOG=1): one line per inbox ack — partition, subject, stream
  // sequence and the runtime frames that sent it — and per committed record, so a message acked
  // without its effect committed can be traced to the code path that acked it.
  let ackLog = null;
  if (cfg.ackLog) {
    const { SessionHost } = await import('../dist/runtime/host/sessionHost.js');
    const fd = openSync(cfg.ackLog, 'a');
    ackLog = (o) => { try { writeSync(fd, `${JSON.stringify(o)}\n`); } catch { /* evidence only */ } };
    const dispatch = SessionHost.prototype.dispatch;
    SessionHost.prototype.dispatch = function traced(p, m) {
      const ack = m.ack.bind(m);
      const info = m.info;
      m.ack = () => {
        const site = (new Error().stack ?? '').split('\n').slice(2, 7).map((l) => l.trim().replace(/^at /, '').replace(/\(?file:\/\/.*\/dist\//, '(').replace(/\)$/, '')).join(' < ');
        ackLog({ t: Date.now(), ev: 'ack', p, subj: m.subject, seq: m.seq, consumer: info?.consumer, delivered: info?.deliveryCount, site });
        ack();
      };
      ackLog({ t: Date.now(), ev: 'dispatch', p, subj: m.subject, seq: m.seq, consumer: info?.consumer, delivered: info?.deliveryCount });
      dispatch.call(this, p, m);
    };
  }
  const wait = (ms, signal) => new Promise((resolve, reject) => {
    const t = setTimeout(() => { signal.removeEventListener('abort', onAbort); resolve(); }, ms);
    const onAbort = () => { clearTimeout(t); reject(new Error('aborted')); };
    signal.addEventListener('abort', onAbort, { once: true });
  });
  const llm = defineAgent({
    type: 'llm', onMessage: 'queue', initialState: () => ({ turns: 0, seen: [] }),
    async handle(batch, ctx) {
      for (const m of batch) await wait(delayOf(m.body.i, cfg.delayMs), ctx.signal);
      ctx.state.turns += batch.length;
      for (const m of batch) ctx.state.seen.push(m.body.i);
      for (const m of batch) ctx.reply({ i: m.body.i, t: m.body.t });
      return undefined;
    },
  });
  const cpu = defineAgent({
    type: 'cpu', onMessage: 'queue', initialState: () => ({ turns: 0, seen: [] }),
    handle(batch, ctx) {
      for (const m of batch) {
        const end = performance.now() + cfg.cpuMs;
        while (performance.now() < end) { /* spin: CPU-bound work, no await */ }
        ctx.state.seen.push(m.body.i);
        ctx.reply({ i: m.body.i, t: m.body.t });
      }
      ctx.state.turns += batch.length;
      return undefined;
    },
  });
  const rec = defineAgent({
    type: 'rec', onMessage: 'queue', initialState: () => ({ seen: [] }),
    handle(batch, ctx) {
      for (const m of batch) { ctx.state.seen.push(m.body.i); ctx.reply({ i: m.body.i, t: m.body.t }); }
      return undefined;
    },
  });
  const rt = await createRuntime({
    agents: [llm, cpu, rec],
    config: {
      natsUrl: cfg.natsUrl, partitions: cfg.partitions, databaseUrl: cfg.pgUrl, databaseSchema: cfg.schema, nodeId: cfg.nodeId,
      defaultAgentType: cfg.agent, logLevel: process.env.BENCH_SCALEOUT_NODE_LOG ?? 'warn', ...(cfg.runtime ?? {}),
    },
  });
  if (process.env.BENCH_SCALEOUT_TRACE === '1') {
    // Diagnostic: every pg query's label, start and duration, printed on stop.
    const { tracePgQueries } = await import('./lib.mjs');
    const q = new Map();
    tracePgQueries((label, t0, t1) => {
      const e = q.get(label) ?? { n: 0, ms: 0, max: 0, first: t0, last: t1 };
      e.n++; e.ms += t1 - t0; e.max = Math.max(e.max, t1 - t0); e.last = t1;
      q.set(label, e);
    });
    process.once('SIGTERM', () => {
      for (const [k, e] of q) console.error(`[trace] ${k.padEnd(50)} n=${e.n} total=${e.ms.toFixed(0)}ms max=${e.max.toFixed(1)}ms first=${new Date(e.first).toISOString().slice(11, 23)} last=${new Date(e.last).toISOString().slice(11, 23)}`);
    });
  }
  if (ackLog) {
    rt.host.listen({
      onCommitted(r) { ackLog({ t: Date.now(), ev: 'commit', p: r.partition, e: r.ownerEpoch, s: r.sessionId, v: r.version, q: r.lastSeq, h: (r.history ?? []).map((h) => h.seq) }); },
    });
  }
  // Event-loop delay since start (a loop blocked for seconds starves lease renewals).
  const { monitorEventLoopDelay } = await import('node:perf_hooks');
  const loop = monitorEventLoopDelay({ resolution: 20 });
  loop.enable();
  const status = () => ({
    owned: rt.leases.owned(), ready: rt.readiness().ok, live: rt.host.liveCount(), active: rt.host.activeCount(),
    waitingForSlot: rt.host.waitingForSlot(),
    stats: { ...rt.host.stats, loopDelayMaxMs: Math.round(loop.max / 1e6), loopDelayP99Ms: Math.round(loop.percentile(99) / 1e6) },
  });
  process.on('message', (m) => {
    if (m?.type === 'ping') process.send({ type: 'pong', id: m.id, ...status() });
  });
  process.on('disconnect', () => process.exit(70)); // the suite is gone: so is this node
  process.once('SIGTERM', () => {
    rt.stop().then((report) => {
      const code = report?.clean === false ? 1 : 0;
      if (!process.connected) process.exit(code);
      process.send({ type: 'stopped', report }, () => process.exit(code));
    }, (e) => { console.error(e); process.exit(1); });
  });
  // Where a start's time goes: process start → imports done → createRuntime() resolved.
  const times = { processStart: performance.timeOrigin, tImport0, tCreate0, tReady: wallNow() };
  process.send({ type: 'ready', pid: process.pid, times, ...status() });
}

// ---- the paced, ordered publisher of the rolling restart (child process) --------------------------

async function runPublisher(url) {
  const nc = await connect({ servers: url, name: 'agentry-bench-scaleout-publisher' });
  const js = jetstream(nc, { timeout: 5000 });
  const lanes = new Map();
  let sessions = [];
  let rate = 0;
  let tRate = 0; // when the current rate took effect
  let issuedAtRate = 0;
  let issued = 0;
  let acked = 0;
  let retries = 0;
  let failed = 0;
  let k = 0;
  let stopping = false;
  let giveUpAt = Infinity;
  let ticker = null;

  /** One message, retried with the same Nats-Msg-Id until acked (the stream keeps it once). */
  async function publishOne(lane, i, t) {
    const body = makeBody(i, t);
    for (let attempt = 1; ; attempt++) {
      try {
        const a = await js.publish(`agentry.in.${lane.id}`, body, { msgID: `${lane.id}:${i}` });
        lane.acked.push(i, a.seq);
        acked++;
        return;
      } catch {
        if (wallNow() > giveUpAt) { failed++; return; }
        retries++;
        await sleep(Math.min(1000, 50 * attempt));
      }
    }
  }

  const tick = () => {
    const owed = issuedAtRate + Math.floor(((wallNow() - tRate) * rate) / 1000);
    while (issued < owed && !stopping) {
      const lane = lanes.get(sessions[k++ % sessions.length]);
      const i = lane.next++;
      const t = wallNow();
      issued++;
      lane.chain = lane.chain.then(() => publishOne(lane, i, t)); // one in flight per session: its order is the stream's
    }
    if (!stopping) ticker = setTimeout(tick, 1);
  };

  process.on('message', async (m) => {
    if (m.type === 'start') {
      sessions = m.sessions;
      for (const id of sessions) lanes.set(id, { id, next: 1, chain: Promise.resolve(), acked: [] });
      rate = m.rate; tRate = wallNow(); issuedAtRate = 0;
      tick();
    } else if (m.type === 'rate') {
      issuedAtRate = issued; tRate = wallNow(); rate = m.rate;
    } else if (m.type === 'count') {
      process.send({ type: 'count', id: m.id, issued, acked, retries });
    } else if (m.type === 'stop') {
      stopping = true;
      clearTimeout(ticker);
      giveUpAt = wallNow() + 60_000;
      await Promise.all([...lanes.values()].map((l) => l.chain));
      const published = {};
      for (const l of lanes.values()) published[l.id] = l.acked;
      process.send({ type: 'stopped', issued, acked, retries, failed, published }, () => { nc.close().finally(() => process.exit(0)); });
    }
  });
  process.on('disconnect', () => process.exit(0));
  process.send({ type: 'ready' });
}

// ---- the suite ----------------------------------------------------------------------------------

/** Starts node k (a process of its own); resolves once its createRuntime() resolved. */
async function startNode(env, k, agent, runtime = {}) {
  const incarnation = (env.incarnations[k] = (env.incarnations[k] ?? 0) + 1);
  const logFile = join(env.logDir, `node-${k}-${incarnation}.log`);
  const fd = openSync(logFile, 'a');
  const cfg = {
    natsUrl: env.natsUrl, pgUrl: PG_URL, schema: env.schema, partitions: PARTITIONS, nodeId: `node-${k}`, agent,
    delayMs: CFG.delayMs, cpuMs: CFG.cpuMs, runtime,
    ...(process.env.BENCH_SCALEOUT_ACKLOG === '1' ? { ackLog: join(env.logDir, `acks-node-${k}-${incarnation}.jsonl`) } : {}),
  };
  const tFork = wallNow();
  // BENCH_CPU_PROF=1: each node process writes a .cpuprofile too (as run.mjs does for the suite's).
  const execArgv = process.env.BENCH_CPU_PROF === '1' ? ['--cpu-prof', '--cpu-prof-dir', join(BENCH_DIR, 'results', 'profiles'), '--cpu-prof-name', `scaleout-${env.schema}-node-${k}-${incarnation}.cpuprofile`] : [];
  const child = fork(SELF, ['--node', JSON.stringify(cfg)], { stdio: ['ignore', fd, fd, 'ipc'], execArgv });
  closeSync(fd);
  let exitCode;
  const exited = new Promise((res) => child.once('exit', (code, signal) => { exitCode = code ?? signal; res(exitCode); }));
  const pending = new Map();
  let nextId = 0;
  child.on('message', (m) => {
    if (m?.type === 'pong') { pending.get(m.id)?.(m); pending.delete(m.id); }
  });
  let timer;
  const ready = await Promise.race([
    new Promise((res) => child.once('message', (m) => res(m))),
    exited.then((c) => ({ failed: `exited with ${c}` })),
    new Promise((res) => { timer = setTimeout(() => { child.kill('SIGKILL'); res({ failed: 'not ready within 60 s' }); }, 60_000); }),
  ]);
  clearTimeout(timer);
  if (ready.failed) throw new Error(`node-${k} ${ready.failed}:\n${tailOf(logFile)}`);
  return {
    k, pid: child.pid, logFile, readyAt: wallNow(), firstOwned: ready.owned,
    /** ms from fork to the process running, to its imports done, to createRuntime() resolved. */
    startup: { processMs: round(ready.times.processStart - tFork), importMs: round(ready.times.tCreate0 - ready.times.tImport0), createRuntimeMs: round(ready.times.tReady - ready.times.tCreate0), totalMs: round(ready.times.tReady - tFork) },
    exited: () => exitCode !== undefined,
    /** Its status (owned partitions, stats), or null when it does not answer within `ms`. */
    ping(ms = 2000) {
      if (exitCode !== undefined || !child.connected) return Promise.resolve(null);
      const id = nextId++;
      return new Promise((res) => {
        const timer = setTimeout(() => { pending.delete(id); res(null); }, ms);
        pending.set(id, (m) => { clearTimeout(timer); res(m); });
        child.send({ type: 'ping', id });
      });
    },
    /** SIGTERM; resolves with the exit code and how long it took (SIGKILL past the deadline). */
    async stop(deadlineMs = 60_000) {
      const t0 = wallNow();
      if (exitCode === undefined) child.kill('SIGTERM');
      const hung = await withTimeout(exited, deadlineMs, 'exit').then(() => false, () => true);
      if (hung) { child.kill('SIGKILL'); await exited; }
      return { code: exitCode, hung, ms: round(wallNow() - t0) };
    },
  };
}

function tailOf(file, lines = 20) {
  try { return readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n'); } catch { return '(no log)'; }
}

/** Who owns what, from the nodes' own answers. */
async function ownership(nodes) {
  const pings = await Promise.all(nodes.map((n) => n.ping()));
  const claims = pings.flatMap((p) => p?.owned ?? []);
  return {
    answered: pings.every((p) => p !== null), ready: pings.every((p) => p?.ready === true),
    counts: pings.map((p) => p?.owned?.length ?? null), held: new Set(claims).size, claims: claims.length, pings,
  };
}

/**
 * Until every partition is held by exactly one of `nodes` and each holds its share: a node takes
 * up to ceil(P / n), so the last may hold P - (n - 1) * ceil(P / n) (64 over 3: 22, 22, 20).
 */
async function waitSpread(nodes, timeoutMs = 90_000) {
  const min = PARTITIONS - (nodes.length - 1) * Math.ceil(PARTITIONS / nodes.length);
  const t0 = wallNow();
  for (;;) {
    const o = await ownership(nodes);
    if (o.answered && o.ready && o.held === PARTITIONS && o.claims === PARTITIONS && o.counts.every((c) => c >= min)) return round(wallNow() - t0);
    if (wallNow() - t0 > timeoutMs) throw new Error(`partitions not spread over ${nodes.length} nodes within ${timeoutMs} ms: ${JSON.stringify(o.counts)} (held ${o.held}, claims ${o.claims})`);
    await sleep(100);
  }
}

/** A nats-server, a schema and a log directory for one run; `close()` removes them. */
async function environment(tag) {
  const nats = await startNats();
  const logs = tempDir(`agentry-bench-scaleout-${tag}-`);
  const env = { natsUrl: nats.url, nats, schema: schemaName(`so_${tag}`), logDir: logs.dir, incarnations: {} };
  env.close = async (nodes) => {
    await Promise.all(nodes.map((n) => n.stop(30_000)));
    if (!env.keep) await dropSchema(env.schema).catch(() => undefined);
    await nats.cleanup();
    if (process.env.BENCH_KEEP_LOGS === '1' || env.keep) log(`scaleout: logs kept in ${logs.dir}`); else logs.cleanup();
  };
  return env;
}

/** Starts n nodes one after another (the first creates the schema and streams) and waits for the spread. */
async function startCluster(env, n, agent, runtime) {
  const nodes = [];
  for (let k = 0; k < n; k++) nodes.push(await startNode(env, k, agent, runtime));
  const spreadMs = await waitSpread(nodes);
  return { nodes, spreadMs };
}

/** One throughput run: n nodes, a burst of `total` messages, until every one was answered. */
async function throughputRun(kind, n, { sessions, perSession, runtime, limitMs }) {
  const tag = `${kind}${n}`;
  const env = await environment(tag);
  let nodes = [];
  const nc = await connect({ servers: env.natsUrl, name: 'agentry-bench-scaleout' });
  let pub;
  try {
    const c = await startCluster(env, n, kind, runtime);
    nodes = c.nodes;
    const total = sessions * perSession;
    const answered = new Uint8Array(total);
    const at = new Float64Array(total);
    let count = 0;
    const dec = new TextDecoder();
    nc.subscribe('agentry.out.>', {
      callback: (err, m) => {
        if (err) return;
        const t = wallNow();
        let i;
        try { i = JSON.parse(dec.decode(m.data)).i; } catch { return; }
        if (typeof i !== 'number' || i < 0 || i >= total || answered[i]) return;
        answered[i] = 1;
        at[count++] = t;
      },
    });
    await nc.flush();
    pub = await forkPublisher(env.natsUrl);
    const pids = { nats: env.nats.pid, publisher: pub.pid };
    nodes.forEach((x) => { pids[`node${x.k}`] = x.pid; });
    const cpu0 = cpuMarkOf(pids);
    const burst = await pub.start({ mode: 'burst', subjectPrefix: 'agentry.in.', idPrefix: `${tag}-`, sessions, perSession, window: 1000 });
    // Done when every message was answered — or when Postgres has every message committed, the
    // inbox stream is empty and no reply came for 3 s: the rest are outputs stranded in the outbox
    // (committed, never published; counted and reported, not waited for).
    const deadline = wallNow() + limitMs;
    let lastCount = -1;
    let lastChange = wallNow();
    let committedAt = null;
    let nextCheck = 0;
    while (count < total && wallNow() < deadline) {
      await sleep(20);
      if (count !== lastCount) { lastCount = count; lastChange = wallNow(); }
      if (wallNow() - lastChange < 3000 || wallNow() < nextCheck) continue;
      nextCheck = wallNow() + 1000;
      const w = await whereAreThey(env, nc);
      if (w.handled === total && w.inStream === 0) { committedAt = w.at; break; }
    }
    const cpu = cpuDeltaOf(cpu0, cpuMarkOf(pids), CORES);
    const stats = (await Promise.all(nodes.map((x) => x.ping()))).map((p) => (p ? { owned: p.owned.length, ...p.stats } : null));
    const logs = logSummary(env.logDir);
    const verify = await verifyBurst(env, `${tag}-`, sessions, total);
    if (!verify.ok) {
      env.keep = true; // the schema and the logs are the evidence
      log(`scaleout ${kind}: ${n} node(s): VERIFY FAILED: ${JSON.stringify(verify)}; schema ${env.schema} and logs ${env.logDir} kept`);
    }
    if (count < total && committedAt === null) {
      const w = await whereAreThey(env, nc);
      throw new Error(`${tag}: ${count} of ${total} answered within ${limitMs / 1000} s; ${w.text}; verified from Postgres ${JSON.stringify(verify)}; nodes ${JSON.stringify(stats)}; node logs ${JSON.stringify(logs)}`);
    }
    const stranded = total - count;
    if (stranded > 0) log(`scaleout ${kind}: ${n} node(s): ${stranded} replies never came though every message is committed: ${(await whereAreThey(env, nc)).text}`);
    const end = committedAt ?? at[count - 1];
    const t10 = at[Math.min(count - 1, Math.floor(total * 0.1))];
    const t90 = at[Math.min(count - 1, Math.floor(total * 0.9) - 1)];
    const r = {
      nodes: n, total, sessions, perSession, spreadMs: c.spreadMs, publishMs: round(burst.tLastAck - burst.t0),
      seconds: round((end - burst.t0) / 1000, 2),
      // When the first, the 10th-percentile and the 90th-percentile replies came (s after the first publish).
      firstReplyS: round((at[0] - burst.t0) / 1000, 2), p10S: round((t10 - burst.t0) / 1000, 2), p90S: round((t90 - burst.t0) / 1000, 2),
      rate: round(total / ((end - burst.t0) / 1000)),
      // Committed but never answered: outputs left in the outbox (the end is when Postgres had them all).
      stranded,
      steadyRate: round((Math.floor(total * 0.9) - Math.floor(total * 0.1)) / ((t90 - t10) / 1000)),
      perNode: stats, cpu, logs, verify,
      // Replies per second, second by second from the first publish.
      timeline: Array.from({ length: Math.ceil((end - burst.t0) / 1000) }, (_, sec) => at.subarray(0, count).filter((x) => x >= burst.t0 + sec * 1000 && x < burst.t0 + (sec + 1) * 1000).length),
    };
    log(`scaleout ${kind}: ${n} node(s): ${r.steadyRate} msg/s steady (10–90 % of replies), ${r.rate} msg/s overall, ${r.seconds} s (replies from ${r.firstReplyS} s, 10 % at ${r.p10S} s, 90 % at ${r.p90S} s); other processes ${cpu.otherCores} cores${stranded ? `; ${stranded} replies stranded` : ''}; leases lost ${logs.byMsg['partition lease lost'] ?? 0}, longest renewal gap ${logs.maxRenewalGapMs} ms`);
    return r;
  } finally {
    await pub?.stop();
    await nc.close().catch(() => undefined);
    await env.close(nodes);
  }
}

/**
 * What Postgres and the inbox stream say about a run's messages: how many are committed (the
 * agents count them in their state), outbox rows still stored (outputs not yet published), and
 * messages still in the inbox stream (not acked).
 */
async function whereAreThey(env, nc) {
  const at = wallNow();
  const parts = [];
  let handled = null;
  let outbox = null;
  let inStream = null;
  try {
    const db = await pgClient(env.schema);
    try {
      const r = (await db.query(`SELECT count(*)::int AS sessions, coalesce(sum((snapshot->'context'->'userState'->>'turns')::int), 0)::int AS handled FROM sessions`)).rows[0];
      const o = (await db.query(`SELECT count(*)::int AS n, min(created_at) AS oldest FROM outbox`)).rows[0];
      handled = r.handled;
      outbox = o.n;
      parts.push(`committed: ${r.handled} messages over ${r.sessions} sessions; outbox rows still stored ${o.n}${o.n ? ` (oldest ${new Date(Number(o.oldest)).toISOString()})` : ''}`);
    } finally { await db.end(); }
  } catch (e) { parts.push(`Postgres: ${e.message}`); }
  try {
    inStream = (await (await jetstreamManager(nc)).streams.info('AGENTRY_INBOX')).state.messages;
    parts.push(`left in the inbox stream ${inStream}`);
  } catch (e) { parts.push(`stream: ${e.message}`); }
  return { at, handled, outbox, inStream, text: parts.join('; ') };
}

/**
 * Message by message from Postgres: burst message i went to session `<prefix><i mod sessions>`;
 * each must be in that session's committed `seen` once, in increasing order.
 */
async function verifyBurst(env, prefix, sessions, total) {
  const db = await pgClient(env.schema);
  try {
    const rows = (await db.query(`SELECT id, snapshot->'context'->'userState'->'seen' AS seen FROM sessions`)).rows;
    const dls = (await db.query(`SELECT id, session_id, reason FROM dead_letters`)).rows;
    const seenOf = new Map(rows.map((r) => [r.id, Array.isArray(r.seen) ? r.seen : []]));
    const count = new Map();
    let outOfOrder = 0;
    const examples = [];
    for (const [id, seen] of seenOf) {
      let max = -1;
      for (const i of seen) {
        count.set(i, (count.get(i) ?? 0) + 1);
        if (i < max) { outOfOrder++; if (examples.length < 8) examples.push(`${id}: ${i} after ${max}`); }
        max = Math.max(max, i);
      }
    }
    let lost = 0;
    let doubled = 0;
    for (let i = 0; i < total; i++) {
      const c = count.get(i) ?? 0;
      if (c === 0) { lost++; if (examples.length < 8) examples.push(`${prefix}${i % sessions} i=${i} never applied`); }
      if (c > 1) { doubled++; if (examples.length < 8) examples.push(`${prefix}${i % sessions} i=${i} applied ${c} times`); }
    }
    return { lost, doubled, outOfOrder, deadLetters: dls.length, ok: lost === 0 && doubled === 0 && outOfOrder === 0 && dls.length === 0, examples };
  } finally { await db.end(); }
}

/**
 * The nodes' warnings and errors in a run, by message, with the longest lease-renewal gap: the
 * evidence of a stalled event loop (leases suspended or lost, partitions moving back and forth).
 */
function logSummary(dir) {
  const byMsg = {};
  let maxRenewalGapMs = 0;
  // When leases lapsed, by node: [time, renewal gap ms] of late renewals, times of losses.
  const late = [];
  const lost = [];
  for (const f of readdirSync(dir).filter((x) => x.endsWith('.log'))) {
    for (const line of readFileSync(join(dir, f), 'utf8').split('\n')) {
      if (!line.startsWith('{')) continue;
      try {
        const o = JSON.parse(line);
        byMsg[o.msg] = (byMsg[o.msg] ?? 0) + 1;
        if (o.msg?.startsWith('lease renewal ran late')) {
          if (o.ms > maxRenewalGapMs) maxRenewalGapMs = o.ms;
          late.push({ node: o.node, t: Date.parse(o.time), ms: o.ms });
        }
        if (o.msg === 'partition lease lost') lost.push({ node: o.node, t: Date.parse(o.time) });
      } catch { /* a torn line */ }
    }
  }
  return { byMsg, maxRenewalGapMs, late, lost };
}

/** 1, 2, 3 nodes, `rounds` times (order reversed every other round); ratios of the medians. */
async function series(kind, opts) {
  const runs = [];
  for (let round_ = 0; round_ < CFG.rounds; round_++) {
    const order = round_ % 2 === 0 ? CFG.nodeCounts : [...CFG.nodeCounts].reverse();
    for (const n of order) {
      try { runs.push({ round: round_ + 1, ...(await throughputRun(kind, n, opts)) }); } catch (e) {
        log(`scaleout ${kind}: ${n} node(s) failed: ${e.message}`);
        runs.push({ round: round_ + 1, nodes: n, error: String(e.message) });
      }
    }
  }
  const ok = runs.filter((r) => !r.error);
  const byNodes = {};
  for (const n of [1, 2, 3]) {
    const rs = ok.filter((r) => r.nodes === n);
    byNodes[n] = { steadyRate: median(rs.map((r) => r.steadyRate)), rate: median(rs.map((r) => r.rate)), otherCores: rs.map((r) => r.cpu.otherCores) };
  }
  const ratio = (n, k = 'steadyRate') => round(byNodes[n][k] / byNodes[1][k], 2);
  return { kind, runs, byNodes, ratios: { two: ratio(2), three: ratio(3), twoOverall: ratio(2, 'rate'), threeOverall: ratio(3, 'rate') } };
}

// ---- (c) rolling restart ------------------------------------------------------------------------

async function forkRollPublisher(url) {
  const child = fork(SELF, ['--publisher', url], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  await new Promise((res, rej) => {
    child.once('message', (m) => (m.type === 'ready' ? res() : rej(new Error(JSON.stringify(m)))));
    child.once('exit', (c) => rej(new Error(`publisher exited with ${c}`)));
  });
  let nextId = 0;
  const ask = (type, extra = {}, timeoutMs = 10_000) => {
    const id = nextId++;
    return withTimeout(new Promise((res) => {
      const on = (m) => { if ((m.type === type && m.id === id) || (type === 'stopped' && m.type === 'stopped')) { child.off('message', on); res(m); } };
      child.on('message', on);
      child.send({ type: type === 'stopped' ? 'stop' : type, id, ...extra });
    }), timeoutMs, `the publisher's answer to ${type}`);
  };
  return {
    pid: child.pid,
    start: (sessions, rate) => child.send({ type: 'start', sessions, rate }),
    setRate: (rate) => child.send({ type: 'rate', rate }),
    count: () => ask('count'),
    stop: () => ask('stopped', {}, 90_000),
    kill: () => { try { child.kill('SIGKILL'); } catch { /* gone */ } },
  };
}

/** Latency percentiles of the replies to messages published in [from, to); and how many got none (yet). */
function phase(samples, from, to) {
  const lat = [];
  let sent = 0;
  for (const s of samples.values()) {
    if (s.t < from || s.t >= to) continue;
    sent++;
    if (s.reply !== null) lat.push(s.reply - s.t);
  }
  return { publishedInPhase: sent, seconds: round((to - from) / 1000, 1), latencyMs: percentiles(lat), noReply: sent - lat.length };
}

async function rollingRestart() {
  const env = await environment('roll');
  const nc = await connect({ servers: env.natsUrl, name: 'agentry-bench-scaleout' });
  let nodes = [];
  let pub;
  const out = { targetRate: CFG.rollRate, sessions: CFG.rollSessions, partitions: PARTITIONS, attempts: [], restarts: [] };
  try {
    const c = await startCluster(env, 3, 'rec', {});
    nodes = c.nodes;
    // Every reply, by `<session>:<i>`: its publish time (from the body) and the first reply's arrival.
    const samples = new Map();
    let duplicateReplies = 0;
    const duplicateAt = [];
    const dec = new TextDecoder();
    nc.subscribe('agentry.out.>', {
      callback: (err, m) => {
        if (err) return;
        const now = wallNow();
        let body;
        try { body = JSON.parse(dec.decode(m.data)); } catch { return; }
        if (typeof body.i !== 'number') return;
        const key = `${m.subject.slice('agentry.out.'.length)}:${body.i}`;
        const s = samples.get(key);
        if (s) { duplicateReplies++; duplicateAt.push(now); return; }
        samples.set(key, { t: body.t, reply: now });
      },
    });
    await nc.flush();
    const sessions = Array.from({ length: CFG.rollSessions }, (_, k) => `roll-${k}`);
    pub = await forkRollPublisher(env.natsUrl);
    let rate = CFG.rollRate;
    pub.start(sessions, rate);
    // Find a rate the cluster keeps up with: after a warm-up, every message of a `beforeS` window
    // answered within 5 s of the window's end, p99 under 1 s, the publisher on pace.
    let before;
    for (let attempt = 0; ; attempt++) {
      await sleep(CFG.warmupS * 1000);
      const c0 = await pub.count();
      const m0 = cpuMarkOf({ nats: env.nats.pid, publisher: pub.pid, ...Object.fromEntries(nodes.map((x) => [`node${x.k}`, x.pid])) });
      const from = wallNow();
      await sleep(CFG.beforeS * 1000);
      const to = wallNow();
      const c1 = await pub.count();
      const cpu = cpuDeltaOf(m0, cpuMarkOf({ nats: env.nats.pid, publisher: pub.pid, ...Object.fromEntries(nodes.map((x) => [`node${x.k}`, x.pid])) }), CORES);
      await sleep(5000);
      const p = phase(samples, from, to);
      const published = round((c1.issued - c0.issued) / ((to - from) / 1000));
      const kept = p.noReply === 0 && (p.latencyMs.p99 ?? Infinity) < 1000 && published >= 0.95 * rate;
      out.attempts.push({ rate, publishedRate: published, kept, ...p, cpu });
      log(`scaleout roll: ${rate} msg/s target, ${published} published/s: p50 ${p.latencyMs.p50} / p99 ${p.latencyMs.p99} ms, ${p.noReply} unanswered → ${kept ? 'sustained' : 'not sustained'} (other processes ${cpu.otherCores} cores)`);
      if (kept || attempt >= 5) { before = { from, to, ...p, publishedRate: published, cpu }; break; }
      rate = Math.round(rate * 0.75);
      pub.setRate(rate);
    }
    out.rate = rate;
    out.sustained = out.attempts.at(-1).kept;
    // The roll: each node in turn.
    const rollFrom = wallNow();
    const busy0 = machineBusyMs();
    for (let k = 0; k < 3; k++) {
      const t0 = wallNow();
      const others = nodes.filter((x) => x.k !== k);
      let handoffMs = null;
      const watching = (async () => {
        while (wallNow() - t0 < 60_000) {
          const o = await ownership(others);
          if (o.answered && o.held === PARTITIONS && o.claims === PARTITIONS) { handoffMs = round(wallNow() - t0); return; }
          await sleep(50);
        }
      })();
      const term = await nodes[k].stop(60_000);
      await watching;
      const started = wallNow();
      nodes[k] = await startNode(env, k, 'rec', {});
      const startMs = round(wallNow() - started);
      await waitSpread(nodes);
      const backMs = round(wallNow() - t0);
      out.restarts.push({ node: `node-${k}`, exitCode: term.code, hung: term.hung, termMs: term.ms, handoffMs, startMs, startup: nodes[k].startup, backMs, t0, forkedAt: started, readyAt: nodes[k].readyAt });
      log(`scaleout roll: node-${k}: SIGTERM → exit ${term.code}${term.hung ? ' (hung: SIGKILLed)' : ''} in ${term.ms} ms; others held every partition ${handoffMs ?? 'never'} ms after SIGTERM; restarted in ${startMs} ms (${JSON.stringify(nodes[k].startup)}); share back ${backMs} ms after SIGTERM`);
      await sleep(CFG.betweenRestartsS * 1000);
    }
    const rollTo = wallNow();
    const rollBusy = (machineBusyMs() - busy0) / (rollTo - rollFrom);
    await sleep(CFG.afterS * 1000);
    const afterTo = wallNow();
    const stopped = await pub.stop();
    // Settle: every acked message answered and the inbox stream empty (bounded).
    const jsm = await jetstreamManager(nc);
    const settleDeadline = wallNow() + 120_000;
    let inStream = -1;
    let lastSize = -1;
    let lastChange = wallNow();
    for (;;) {
      inStream = (await jsm.streams.info('AGENTRY_INBOX')).state.messages;
      if (samples.size !== lastSize) { lastSize = samples.size; lastChange = wallNow(); }
      if (inStream === 0 && samples.size >= stopped.acked) break;
      // Everything acked and no reply for 5 s: the rest are stranded outputs (counted as unanswered).
      if ((inStream === 0 && wallNow() - lastChange > 5000) || wallNow() > settleDeadline) break;
      await sleep(250);
    }
    out.logs = logSummary(env.logDir);
    out.publisher = { issued: stopped.issued, acked: stopped.acked, retries: stopped.retries, failed: stopped.failed };
    out.phases = {
      before: { ...before, cpu: before.cpu },
      during: { ...phase(samples, rollFrom, rollTo), machineBusyCores: round(rollBusy, 2) },
      after: phase(samples, rollTo, afterTo),
    };
    // Second by second from 20 s before the roll to its end (by publish time): messages, p50, p99,
    // max reply latency; and what happened when, for reading the spikes against the restarts.
    out.timeline = [];
    for (let t = rollFrom - 20_000; t < afterTo; t += 1000) {
      const p = phase(samples, t, t + 1000);
      out.timeline.push({ s: round((t - rollFrom) / 1000), n: p.publishedInPhase, p50: p.latencyMs.p50 ?? null, p99: p.latencyMs.p99 ?? null, max: p.latencyMs.max ?? null, noReply: p.noReply });
    }
    out.events = out.restarts.flatMap((x) => [
      { s: round((x.t0 - rollFrom) / 1000, 1), what: `${x.node} SIGTERM` },
      { s: round((x.t0 + x.termMs - rollFrom) / 1000, 1), what: `${x.node} exited` },
      ...(x.handoffMs === null ? [] : [{ s: round((x.t0 + x.handoffMs - rollFrom) / 1000, 1), what: `others hold ${x.node}'s partitions` }]),
      { s: round((x.readyAt - rollFrom) / 1000, 1), what: `${x.node} createRuntime() resolved` },
      { s: round((x.t0 + x.backMs - rollFrom) / 1000, 1), what: `${x.node} has its share again` },
    ]);
    out.leaseTrouble = {
      lostBeforeRoll: out.logs.lost.filter((e) => e.t < rollFrom).length,
      lostDuringRoll: out.logs.lost.filter((e) => e.t >= rollFrom && e.t < rollTo).length,
      lostAfterRoll: out.logs.lost.filter((e) => e.t >= rollTo).length,
      lateDuringRoll: out.logs.late.filter((e) => e.t >= rollFrom && e.t < rollTo).map((e) => ({ node: e.node, s: round((e.t - rollFrom) / 1000, 1), ms: e.ms })),
    };
    out.duplicateReplies = duplicateReplies;
    // Outputs published again by a starting node (it flushes the outbox rows still stored, before
    // createRuntime() resolves), told apart from the other duplicates by when they came.
    const starts = out.restarts.map((x) => [x.forkedAt, x.readyAt + 1000]);
    out.duplicateRepliesDuringStarts = duplicateAt.filter((t) => starts.some(([a, b]) => t >= a && t <= b)).length;
    out.leftInStream = inStream;
    out.verify = await verifyRoll(env.schema, stopped.published);
    log(`scaleout roll: before p50 ${out.phases.before.latencyMs.p50} / p99 ${out.phases.before.latencyMs.p99} ms; during p50 ${out.phases.during.latencyMs.p50} / p99 ${out.phases.during.latencyMs.p99} / max ${out.phases.during.latencyMs.max} ms; ` +
      `verified: ${out.verify.published} published, lost ${out.verify.lost}, twice ${out.verify.doubled}, out of order ${out.verify.outOfOrder}, dead letters ${out.verify.deadLetters}, left in stream ${inStream}`);
    return out;
  } finally {
    pub?.kill();
    await nc.close().catch(() => undefined);
    await env.close(nodes);
  }
}

/** Compares each session's committed `seen` (Postgres) with the indices the publisher had acked, in order. */
async function verifyRoll(schema, published) {
  const db = await pgClient(schema);
  try {
    const ids = Object.keys(published);
    const rows = (await db.query(`SELECT id, snapshot->'context'->'userState'->'seen' AS seen FROM sessions WHERE id = ANY($1)`, [ids])).rows;
    const dls = Number((await db.query(`SELECT count(*)::int AS n FROM dead_letters WHERE session_id = ANY($1)`, [ids])).rows[0].n);
    const seenOf = new Map(rows.map((r) => [r.id, Array.isArray(r.seen) ? r.seen : []]));
    let total = 0; let lost = 0; let doubled = 0; let outOfOrder = 0; let applied = 0;
    const examples = [];
    for (const id of ids) {
      const acked = published[id];
      const seen = seenOf.get(id) ?? [];
      const count = new Map();
      for (const i of seen) count.set(i, (count.get(i) ?? 0) + 1);
      for (let j = 0; j < acked.length; j += 2) {
        total++;
        const c = count.get(acked[j]) ?? 0;
        if (c === 0) { lost++; if (examples.length < 5) examples.push(`${id} i=${acked[j]} lost`); } else applied++;
        if (c > 1) { doubled++; if (examples.length < 5) examples.push(`${id} i=${acked[j]} applied ${c} times`); }
      }
      let max = 0;
      for (const i of seen) {
        if (i < max) { outOfOrder++; if (examples.length < 5) examples.push(`${id} i=${i} after ${max}`); }
        max = Math.max(max, i);
      }
    }
    return { sessions: ids.length, published: total, applied, lost, doubled, outOfOrder, deadLetters: dls, ok: lost === 0 && doubled === 0 && outOfOrder === 0 && dls === 0, examples };
  } finally {
    await db.end();
  }
}

async function suite(outPath) {
  const results = { config: { ...CFG, cores: CORES } };
  log(`scaleout: ${PARTITIONS} partitions; parts ${CFG.parts.join(',')}`);
  if (CFG.parts.includes('a')) {
    const total = CFG.sessions * CFG.perSession;
    const perNodeRate = CFG.maxActive / (((CFG.delayMs[0] + CFG.delayMs[1]) / 2) / 1000);
    results.concurrency = {
      maxActiveSessions: CFG.maxActive, delayMs: CFG.delayMs, perNodeCeiling: round(perNodeRate),
      ...(await series('llm', { sessions: CFG.sessions, perSession: CFG.perSession, runtime: { maxActiveSessions: CFG.maxActive }, limitMs: Math.max(120_000, (3 * total * 1000) / perNodeRate) })),
    };
  }
  if (CFG.parts.includes('b')) {
    const perSession = Math.ceil(CFG.cpuMessages / CFG.cpuSessions);
    results.cpu = { cpuMs: CFG.cpuMs, ...(await series('cpu', { sessions: CFG.cpuSessions, perSession, runtime: {}, limitMs: 300_000 })) };
  }
  if (CFG.parts.includes('c')) {
    try { results.roll = await rollingRestart(); } catch (e) {
      log(`scaleout roll failed: ${e.stack ?? e}`);
      results.roll = { error: String(e.message) };
    }
  }
  mkdirSync(join(outPath, '..'), { recursive: true });
  writeFileSync(outPath, JSON.stringify(results, null, 2));
  process.exit(0);
}
