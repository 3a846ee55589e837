// Backlog suite (issue 12): a runtime that starts in front of a large inbox backlog. Does its
// heap stay bounded, how fast does it drain, and does a brand-new session still get a prompt
// first run meanwhile?
//
// 1. With no runtime running (one was started and stopped to create the streams and the schema),
//    the forked publisher (bench/publisher.mjs) puts BACKLOG messages of 100 bytes over SESSIONS
//    sessions into the inbox through JetStream (pipelined, interleaved s0 m0, s1 m0, …).
// 2. A runtime node starts in a child process (this file with `--node`: its heap is the
//    runtime's alone, and a runtime that runs out of heap ends the child, not the suite), Postgres
//    store in its own schema, no-op agent (queue policy), everything else default. Every 500 ms
//    it reports heapUsed, RSS, messages handled and committed, and live sessions; the suite reads
//    how many messages the inbox stream still holds (acked messages leave a work-queue stream).
// 3. Meanwhile the forked prober (bench/prober.mjs) publishes a message to a brand-new session
//    every 200 ms; the node records publish → dispatch (delivered by the partition consumer) and
//    publish → handler start for each, and the prober the reply.
// Stops when the stream is empty and every message was handled, or after LIMIT_S, or when the
// node dies, and reports how far it got.
import { fork } from 'node:child_process';
import { appendFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { writeHeapSnapshot } from 'node:v8';
import { fileURLToPath } from 'node:url';
import { connect } from '@nats-io/transport-node';
import { AckPolicy, DeliverPolicy, DiscardPolicy, RetentionPolicy, StorageType, jetstream, jetstreamManager } from '@nats-io/jetstream';
import {
  BENCH_DIR, PARTITIONS, PG_URL, QUICK, cpuDeltaOf, cpuMarkOf, dropSchema, forkProber, forkPublisher, instrumentStore, log, percentiles,
  quietLogger, round, schemaName, sleep, startNats, wallNow,
} from './lib.mjs';

const SELF = fileURLToPath(import.meta.url);
const BACKLOG = Number(process.env.BENCH_BACKLOG ?? (QUICK ? 100_000 : 1_000_000));
const SESSIONS = Number(process.env.BENCH_BACKLOG_SESSIONS ?? 10_000);
const LIMIT_S = Number(process.env.BENCH_BACKLOG_LIMIT_S ?? (QUICK ? 180 : 600));
const RAW = Number(process.env.BENCH_BACKLOG_RAW ?? Math.min(BACKLOG, 100_000));
const RAW_LIMIT_S = QUICK ? 60 : 180;
const PROBE_EVERY_MS = 200;
const SAMPLE_EVERY_MS = 500;
// Every LIVE_EVERY_S the node forces a full GC and reports the heap left (the live set): heapUsed
// between GCs is mostly garbage V8 has not collected yet, which says little about what the runtime holds.
const LIVE_EVERY_S = Number(process.env.BENCH_BACKLOG_LIVE_EVERY_S ?? 20);
// The server's view of the partition consumers (CONSUMER.LIST) every BENCH_BACKLOG_SERVER_EVERY_S
// seconds (0: never). On nats-server 2.9 a list counts every consumer's pending messages, a scan of
// the inbox each: seconds of the server's time per list in front of a deep backlog, which the
// runtime being measured then waits behind.
const SERVER_EVERY = Math.round(Number(process.env.BENCH_BACKLOG_SERVER_EVERY_S ?? 30) * 1000 / SAMPLE_EVERY_MS);
const MiB = 2 ** 20;

if (process.argv[2] === '--node') await runtimeNode(JSON.parse(process.argv[3]));
else await suite(process.argv[2]);

// ---- the runtime node (child process) -------------------------------------------------------------

async function runtimeNode({ natsUrl, schema }) {
  const tCreate0 = wallNow();
  const { createRuntime, defineAgent } = await import('../dist/runtime/index.js');
  const { SessionHost } = await import('../dist/runtime/host/sessionHost.js');
  const { createPgStore } = await import('../dist/persistence/index.js');
  const { pino } = await import('pino');
  let handled = 0;
  let committed = 0;
  let acksSent = 0;
  let probes = [];
  let rt = null;
  let host = null;
  const dispatched = new Map();
  // What start-up does in front of the backlog: when each partition was taken (the runtime logs
  // it at info), and every warning or error by message.
  const acquired = [];
  const warnings = {};
  // Diagnosis: BENCH_BACKLOG_LOG=<file> appends the runtime's info-and-above log lines to that file.
  const logFile = process.env.BENCH_BACKLOG_LOG;
  const logger = pino({ level: 'info', base: {} }, {
    write(line) {
      if (logFile) appendFileSync(logFile, line);
      try {
        const o = JSON.parse(line);
        if (o.msg === 'partition acquired') acquired.push({ tS: round((wallNow() - tCreate0) / 1000, 2), partition: o.partition, claimMs: o.claimMs, ms: o.ms });
        else if (o.level >= 40) warnings[o.msg] = (warnings[o.msg] ?? 0) + 1;
      } catch { /* not JSON */ }
    },
  });
  // Every inbox message enters through SessionHost.dispatch, from the first partition on (before
  // createRuntime() resolves): count the acks the runtime sends, and time the probes' delivery.
  const dec = new TextDecoder();
  const dispatch = SessionHost.prototype.dispatch;
  SessionHost.prototype.dispatch = function counted(p, m) {
    host = this;
    const ack = m.ack.bind(m);
    m.ack = () => { acksSent++; ack(); };
    if (m.subject.includes('.probe-')) {
      try { dispatched.set(JSON.parse(dec.decode(m.data)).i, wallNow()); } catch { /* not a probe body */ }
    }
    dispatch.call(this, p, m);
  };
  const agent = defineAgent({
    type: 'bench',
    onMessage: 'queue',
    initialState: () => ({}),
    handle(batch, ctx) {
      const now = wallNow();
      handled += batch.length;
      if (ctx.sessionId.startsWith('probe-')) {
        for (const m of batch) {
          const b = m.body ?? {};
          probes.push({ i: b.i, handlerStartMs: now - b.t, dispatchMs: dispatched.has(b.i) ? dispatched.get(b.i) - b.t : null });
          dispatched.delete(b.i);
        }
        ctx.reply({ i: batch[0].body?.i });
      }
      return undefined;
    },
  });
  // The store is opened here only to count committed messages from the first commit on (the
  // runtime would open the same one from the config).
  const store = instrumentStore(createPgStore({ connectionString: PG_URL, schema }), (kind, args) => {
    if (kind === 'commit') for (const r of args[0]) committed += r.history.length;
  });
  // Diagnosis: BENCH_BACKLOG_HEAPSNAP_MIB=<n> writes one heap snapshot (bench/results/) the first time heapUsed passes n MiB.
  let snapAt = Number(process.env.BENCH_BACKLOG_HEAPSNAP_MIB ?? 0) * 1024 * 1024;
  let liveAt = Date.now() + LIVE_EVERY_S * 1000;
  const sample = () => {
    let liveHeap = null;
    if (typeof globalThis.gc === 'function' && Date.now() >= liveAt) {
      globalThis.gc();
      liveHeap = process.memoryUsage().heapUsed;
      liveAt = Date.now() + LIVE_EVERY_S * 1000;
    }
    const mu = process.memoryUsage();
    if (snapAt > 0 && mu.heapUsed > snapAt) {
      snapAt = 0;
      process.stderr.write(`heap snapshot: ${writeHeapSnapshot(join(BENCH_DIR, 'results', `backlog-${Date.now()}.heapsnapshot`))}\n`);
    }
    const s = {
      type: 'sample', t: wallNow(), liveHeap, heapUsed: mu.heapUsed, heapTotal: mu.heapTotal, rss: mu.rss, external: mu.external, arrayBuffers: mu.arrayBuffers,
      handled, committed, acksSent, probes, partitions: acquired.length, duplicates: host?.stats.duplicatesSkipped ?? 0,
      live: host?.liveCount() ?? null, commitBacklog: rt?.committer.backlog() ?? null, warnings: Object.values(warnings).reduce((a, b) => a + b, 0),
    };
    probes = [];
    process.send(s);
  };
  const timer = setInterval(sample, SAMPLE_EVERY_MS);
  process.on('message', async (m) => {
    if (m.type !== 'stop') return;
    clearInterval(timer);
    sample();
    const stats = host ? { ...host.stats, consumerRestarts: rt?.transport.consumerRestarts() ?? null } : null;
    const report = rt ? await rt.stop() : null; // never ready: nothing to stop gracefully
    if (rt) await store.close();
    process.send({ type: 'stopped', stats, stop: report, acquired, warnings }, () => process.exit(0));
  });
  process.on('disconnect', () => process.exit(0));
  rt = await createRuntime({
    agents: [agent], logger, store,
    config: { natsUrl, partitions: PARTITIONS, defaultAgentType: 'bench', logLevel: 'info' },
  });
  process.send({ type: 'ready', tCreate0, tReady: wallNow() });
}

// ---- the baseline: the same kind of backlog drained by plain consumers ----------------------------

/**
 * On a nats-server of its own: `count` messages (same sessions, interleaved) published into a
 * work-queue stream like the inbox, then drained by one filtered durable pull consumer per
 * partition with the runtime's default max_ack_pending and buffer, acking each message as it
 * arrives (consume() + ack(), in order). What the server and the client can do with this
 * layout and depth, without the runtime.
 */
async function rawDrain(count, createLoadConfig) {
  const cfg = createLoadConfig({}, {});
  const maxAckPending = cfg.maxAckPendingPerPartition ?? -1;
  const buffer = cfg.consumerBuffer ?? Math.max(64, Math.ceil(8192 / PARTITIONS));
  const srv = await startNats();
  const nc = await connect({ servers: srv.url, name: 'agentry-bench-raw-drain' });
  const subs = [];
  try {
    const jsm = await jetstreamManager(nc);
    const js = jetstream(nc);
    await jsm.streams.add({ name: 'RAWQ', subjects: ['agentry.part.>'], retention: RetentionPolicy.Workqueue, storage: StorageType.File, discard: DiscardPolicy.New, duplicate_window: 120_000_000_000 });
    const pub = await forkPublisher(srv.url);
    const perSession = Math.max(1, Math.round(count / SESSIONS));
    await pub.start({ mode: 'burst', subjectPrefix: 'agentry.in.', idPrefix: 'b', sessions: SESSIONS, perSession, window: 1000 });
    await pub.stop();
    const stored = (await jsm.streams.info('RAWQ')).state.messages;
    let delivered = 0;
    let redelivered = 0;
    const c0 = cpuMarkOf({ nats: srv.pid });
    const t0 = wallNow();
    for (let p = 0; p < PARTITIONS; p++) {
      await jsm.consumers.add('RAWQ', {
        durable_name: `raw-${p}`, filter_subject: `agentry.part.${p}.>`, ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All,
        ack_wait: cfg.ackWaitMs * 1_000_000, max_ack_pending: maxAckPending,
      });
      const c = await js.consumers.get('RAWQ', `raw-${p}`);
      subs.push(await c.consume({
        max_messages: buffer, expires: 5000,
        callback: (m) => { delivered++; if (m.info.redelivered) redelivered++; m.ack(); },
      }));
    }
    let left = stored;
    while (left > 0 && wallNow() - t0 < RAW_LIMIT_S * 1000) {
      await sleep(SAMPLE_EVERY_MS);
      left = (await jsm.streams.info('RAWQ')).state.messages;
    }
    const seconds = (wallNow() - t0) / 1000;
    return {
      count: stored, drained: left === 0, left, seconds: round(seconds, 1), rate: Math.round((stored - left) / seconds),
      delivered, redelivered, maxAckPending, buffer, cpu: cpuDeltaOf(c0, cpuMarkOf({ nats: srv.pid }), cpus().length),
    };
  } finally {
    for (const m of subs) await m.close().catch(() => undefined);
    await nc.close().catch(() => undefined);
    await srv.cleanup();
  }
}

// ---- the suite ------------------------------------------------------------------------------------

async function suite(outPath) {
  const { createRuntime, defineAgent, loadConfig } = await import('../dist/runtime/index.js');
  const nats = await startNats();
  const schema = schemaName('backlog');
  const results = { config: { backlog: BACKLOG, sessions: SESSIONS, perSession: Math.ceil(BACKLOG / SESSIONS), bodyBytes: 100, partitions: PARTITIONS, limitS: LIMIT_S, probeEveryMs: PROBE_EVERY_MS, sampleEveryMs: SAMPLE_EVERY_MS, serverEveryS: SERVER_EVERY * SAMPLE_EVERY_MS / 1000, liveEveryS: LIVE_EVERY_S } };
  let node;
  let prober;
  const nc = await connect({ servers: nats.url, name: 'agentry-bench-backlog' });
  try {
    if (RAW > 0) {
      results.rawDrain = await rawDrain(RAW, loadConfig);
      log(`backlog baseline: plain consumers drained ${results.rawDrain.count - results.rawDrain.left} of ${results.rawDrain.count} at ${results.rawDrain.rate} msg/s (${results.rawDrain.redelivered} redelivered)`);
    }
    // Streams, consumers and schema exist; then no runtime runs while the backlog is published.
    const noop = defineAgent({ type: 'bench', onMessage: 'queue', initialState: () => ({}), handle: () => undefined });
    const first = await createRuntime({
      agents: [noop], logger: quietLogger(),
      config: { natsUrl: nats.url, partitions: PARTITIONS, store: 'auto', databaseUrl: PG_URL, databaseSchema: schema, defaultAgentType: 'bench', logLevel: 'error' },
    });
    const stream = first.transport.inboxStream;
    await first.stop();
    const jsm = await jetstreamManager(nc);
    const left = async () => (await jsm.streams.info(stream)).state.messages;
    /** The server's view, summed over the partition consumers: delivered and unacked, redelivered, not yet delivered. */
    const consumerState = async () => {
      const c = { consumers: 0, ackPending: 0, redelivered: 0, undelivered: 0 };
      for await (const ci of jsm.consumers.list(stream)) {
        if (!ci) continue; // deleted while listed
        c.consumers++;
        c.ackPending += ci.num_ack_pending;
        c.redelivered += ci.num_redelivered;
        c.undelivered += ci.num_pending;
      }
      return c;
    };

    const pub = await forkPublisher(nats.url);
    const perSession = Math.ceil(BACKLOG / SESSIONS);
    log(`backlog: publishing ${SESSIONS * perSession} messages over ${SESSIONS} sessions with no runtime running`);
    const rep = await pub.start({ mode: 'burst', subjectPrefix: 'agentry.in.', idPrefix: 'b', sessions: SESSIONS, perSession, window: 1000 });
    await pub.stop();
    const total = SESSIONS * perSession;
    const stored = await left();
    results.publish = { count: total, stored, rate: Math.round(rep.publishRate), seconds: round((rep.tLastAck - rep.t0) / 1000, 1) };
    log(`backlog: ${stored} messages in the inbox (published at ${results.publish.rate}/s)`);

    prober = await forkProber(nats.url);
    const samples = [];
    const probes = [];
    let ready = null;
    let exited = null;
    let probing = null;
    let stopped = null;
    const tSpawn = wallNow();
    const sinceSpawnS = (t) => round((t - tSpawn) / 1000, 2);
    node = fork(SELF, ['--node', JSON.stringify({ natsUrl: nats.url, schema })], { execArgv: [...process.execArgv, '--expose-gc'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    node.on('exit', (code, signal) => { exited = { code, signal, atS: sinceSpawnS(wallNow()) }; });
    node.on('message', (m) => {
      if (m.type === 'sample') {
        probes.push(...m.probes);
        samples.push({
          tS: sinceSpawnS(m.t), liveHeap: m.liveHeap, heapUsed: m.heapUsed, heapTotal: m.heapTotal, rss: m.rss, external: m.external, arrayBuffers: m.arrayBuffers,
          handled: m.handled, committed: m.committed, acksSent: m.acksSent, duplicates: m.duplicates, warnings: m.warnings,
          partitions: m.partitions, live: m.live, commitBacklog: m.commitBacklog, left: null,
        });
      } else if (m.type === 'ready') {
        ready = m;
        // New sessions from the moment createRuntime() resolved.
        probing = prober.run({ mode: 'interval', subjectPrefix: 'agentry.in.', replyPrefix: 'agentry.out.', idPrefix: 'probe-', everyMs: PROBE_EVERY_MS, timeoutMs: 60_000 });
      } else if (m.type === 'stopped') {
        stopped = m;
      }
    });
    const c0 = cpuMarkOf({ runtime: node.pid, nats: nats.pid, prober: prober.pid });

    // Drain: until the stream is empty and every message was handled, the time limit, or the node's death.
    const deadline = tSpawn + LIMIT_S * 1000;
    let drainedAt = null;
    let lastLeft = stored;
    let logged = 0;
    const server = [];
    for (let k = 0; ; k++) {
      await sleep(SAMPLE_EVERY_MS);
      if (exited) break;
      try { lastLeft = await left(); } catch { /* keep the last value */ }
      const s = samples[samples.length - 1];
      if (s && s.left === null) s.left = lastLeft;
      if (SERVER_EVERY > 0 && k % SERVER_EVERY === 0) {
        // Not often: see SERVER_EVERY.
        const t = wallNow();
        try { server.push({ tS: sinceSpawnS(t), left: lastLeft, ...(await consumerState()), infoMs: round(wallNow() - t) }); } catch { /* the server is busy: skip */ }
      }
      if (lastLeft === 0 && s && s.handled - probes.length >= total) { drainedAt = wallNow(); break; }
      if (wallNow() > deadline) break;
      if (s && s.tS - logged >= 10) {
        logged = s.tS;
        const c = server[server.length - 1];
        log(`backlog: ${round(s.tS, 0)} s: ${ready ? 'ready' : `starting (${s.partitions} partitions taken)`}, ${lastLeft} left in the stream${c ? ` (unacked ${c.ackPending}, redelivered ${c.redelivered})` : ''}, handled ${s.handled}, committed ${s.committed}, acks sent ${s.acksSent}, duplicates ${s.duplicates}, warnings ${s.warnings}, heap ${round(s.heapUsed / MiB, 0)} MiB, RSS ${round(s.rss / MiB, 0)} MiB`);
      }
    }
    const c1 = exited ? null : cpuMarkOf({ runtime: node.pid, nats: nats.pid, prober: prober.pid });
    const tEnd = drainedAt ?? (exited ? tSpawn + exited.atS * 1000 : wallNow());
    prober.stop();
    const probeRun = probing ? await probing : { probes: [] };
    if (!exited) {
      node.send({ type: 'stop' });
      const t = wallNow();
      while (!stopped && !exited && wallNow() - t < 30_000) await sleep(50);
    }

    const leftAtEnd = exited ? lastLeft : await left().catch(() => lastLeft);
    const runS = (tEnd - tSpawn) / 1000;
    // What the node reported while it was stopped is not part of the drain.
    samples.splice(0, samples.length, ...samples.filter((x) => x.tS <= runS + SAMPLE_EVERY_MS / 1000));
    const last = samples[samples.length - 1] ?? { handled: 0, committed: 0 };
    const atReady = ready ? samples.filter((x) => x.tS <= sinceSpawnS(ready.tReady)).pop() : null;
    const peak = (k) => samples.reduce((m, x) => Math.max(m, x[k] ?? 0), 0);
    const every = Math.max(1, Math.ceil(samples.length / 16));
    results.start = ready
      ? { spawnToReadyMs: round(ready.tReady - tSpawn), createRuntimeMs: round(ready.tReady - ready.tCreate0), handledBeforeReady: atReady?.handled ?? null, committedBeforeReady: atReady?.committed ?? null }
      : { spawnToReadyMs: null, createRuntimeMs: null };
    results.start.partitionsAcquired = stopped?.acquired ?? null;
    const readyS = ready ? sinceSpawnS(ready.tReady) : null;
    const leftAtReady = ready ? [...samples].reverse().find((x) => x.tS <= readyS && x.left !== null)?.left ?? null : null;
    results.drain = {
      drained: drainedAt !== null, seconds: round(runS, 1), stoppedBy: drainedAt ? 'drained' : exited ? 'runtime node died' : 'time limit',
      handled: last.handled, committed: last.committed, leftInStream: leftAtEnd, acksSent: last.acksSent ?? null, redeliveredCopies: last.duplicates ?? null,
      // From the runtime's spawn: start-up is part of draining.
      ackedRate: Math.round((stored - leftAtEnd) / runS), handledRate: Math.round(last.handled / runS), committedRate: Math.round(last.committed / runS),
      // Once createRuntime() resolved (every partition consuming).
      ackedRateAfterReady: leftAtReady !== null && runS > readyS ? Math.round((leftAtReady - leftAtEnd) / (runS - readyS)) : null,
      nodeExit: exited, stopReport: stopped?.stop ?? null, hostStats: stopped?.stats ?? null, warnings: stopped?.warnings ?? null,
      rssAtEndBytes: last.rss ?? null, cpu: c1 ? cpuDeltaOf(c0, c1, cpus().length) : null,
    };
    results.heap = {
      peakHeapUsedBytes: peak('heapUsed'), peakHeapTotalBytes: peak('heapTotal'), peakRssBytes: peak('rss'), peakExternalBytes: peak('external'),
      lastHeapUsedBytes: last.heapUsed ?? null, peakLiveHeapBytes: peak('liveHeap'),
      lastLiveHeapBytes: [...samples].reverse().find((x) => x.liveHeap !== null && x.liveHeap !== undefined)?.liveHeap ?? null, peakLive: peak('live'), peakCommitBacklog: peak('commitBacklog'),
      // Buckets of samples: the lowest heapUsed of a bucket (right after a GC) is the live set's trend, the highest what it peaked at.
      series: Array.from({ length: Math.ceil(samples.length / every) }, (_, b) => samples.slice(b * every, (b + 1) * every)).map((xs) => {
        const x = xs[xs.length - 1];
        return {
          tS: x.tS, liveMiB: xs.some((y) => y.liveHeap) ? round(Math.max(...xs.map((y) => y.liveHeap ?? 0)) / MiB, 1) : null, heapMinMiB: round(Math.min(...xs.map((y) => y.heapUsed)) / MiB, 1), heapMaxMiB: round(Math.max(...xs.map((y) => y.heapUsed)) / MiB, 1),
          rssMiB: round(Math.max(...xs.map((y) => y.rss)) / MiB, 1), handled: x.handled, committed: x.committed,
          left: [...xs].reverse().find((y) => y.left !== null)?.left ?? null, partitions: x.partitions, live: x.live,
        };
      }),
      samples,
    };
    // The inbox as the server saw it (every 10 s): what the runtime held unacked, and what came twice.
    results.server = server;
    const answered = probeRun.probes.filter((p) => p.replyMs !== null);
    const handledProbes = new Set(probes.map((p) => p.i));
    results.probes = {
      published: probeRun.probes.length, handled: probes.length, answered: answered.length,
      handlerStartMs: percentiles(probes.map((p) => p.handlerStartMs)),
      dispatchMs: percentiles(probes.filter((p) => p.dispatchMs !== null).map((p) => p.dispatchMs)),
      replyMs: percentiles(answered.map((p) => p.replyMs)),
      // Probes never handled had waited at least this long when the run stopped.
      unhandledWaitedMs: percentiles(probeRun.probes.filter((p) => !handledProbes.has(p.i)).map((p) => tEnd - p.t0)),
    };
    log(`backlog: ${results.drain.stoppedBy} after ${results.drain.seconds} s (createRuntime() ${results.start.createRuntimeMs ?? 'never'} ms): handled ${last.handled}, ${leftAtEnd} left in the stream, acked ${results.drain.ackedRate} msg/s; peak heap ${round(results.heap.peakHeapUsedBytes / MiB, 0)} MiB, RSS ${round(results.heap.peakRssBytes / MiB, 0)} MiB; new session → handler start p50 ${results.probes.handlerStartMs.p50} p99 ${results.probes.handlerStartMs.p99} ms (${probes.length} of ${probeRun.probes.length} probes handled)`);
  } finally {
    if (node && node.exitCode === null && node.signalCode === null) node.kill('SIGKILL');
    await prober?.exit();
    await nc.close().catch(() => undefined);
    await dropSchema(schema).catch(() => undefined);
    await nats.cleanup();
  }
  writeFileSync(outPath, JSON.stringify(results, null, 2));
  process.exit(0);
}
