// Host CPU suite (issue 12: "runtime CPU per message / allocation per message").
//
// The runtime's own cost per message, without NATS, Postgres or other processes: the session
// host (dispatch → statechart → handler → commit record → group commit → ack) is built in this
// process over the memory store, and fed inbox messages shaped like the JetStream client's
// (subject, seq, data, headers, ack). The NATS client's share (parsing, acks on the socket) is
// therefore not in these numbers; the throughput suite measures the whole process. What this
// suite gives is a stable number on a busy machine: CPU time of this thread (process.cpuUsage)
// and bytes allocated (v8.GCProfiler: heap before each GC minus heap after the previous one).
//
// Workload: BENCH_HOST_SESSIONS sessions (1,000) × BENCH_HOST_PER_SESSION messages (100) of
// ~100 bytes, interleaved (s0 m0, s1 m0, …), fed in windows of BENCH_HOST_WINDOW (1,000) unacked
// messages like a pull consumer; a no-op handler with the `queue` policy and ~500 bytes of state.
// One warm-up pass of the same size first (creates the sessions, warms the JIT), then the measured
// pass over the now-live sessions. Rounds: BENCH_ROUNDS (QUICK: 1, else 3); the median is reported.
import { writeFileSync } from 'node:fs';
import { GCProfiler } from 'node:v8';
import { defineAgent, loadConfig } from '../dist/runtime/index.js';
import { SessionHost } from '../dist/runtime/host/sessionHost.js';
import { createGroupCommitter } from '../dist/runtime/groupCommit.js';
import { createMemoryStore } from '../dist/persistence/index.js';
import { partitionOf } from '../dist/runtime/partition.js';
import { QUICK, log, quietLogger, round } from './lib.mjs';

const outPath = process.argv[2];
const SESSIONS = Number(process.env.BENCH_HOST_SESSIONS ?? 1000);
const PER_SESSION = Number(process.env.BENCH_HOST_PER_SESSION ?? (QUICK ? 30 : 100));
const WINDOW = Number(process.env.BENCH_HOST_WINDOW ?? 1000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? (QUICK ? 1 : 3));
const PARTITIONS = 64;
const POLICY = process.env.BENCH_POLICY ?? 'queue';
const STATE_BYTES = Number(process.env.BENCH_STATE_BYTES ?? 500);
const enc = new TextEncoder();

/** An inbox message as the consumer callback receives it (the fields the host reads). */
function inboxMsg(sid, seq, onAck) {
  let acked = false;
  return {
    subject: `agentry.part.${partitionOf(sid, PARTITIONS)}.${sid}`,
    seq,
    data: enc.encode(JSON.stringify({ i: seq, pad: 'x'.repeat(80) })),
    headers: undefined,
    info: { redeliveryCount: 1, pending: 0 },
    redelivered: false,
    ack() { if (!acked) { acked = true; onAck(); } },
    nak() { /* not used by the host on this path */ },
    working() { /* keep-alive */ },
    term() { /* not used */ },
  };
}

async function pass(host, ids, perSession, seq0, state) {
  const total = ids.length * perSession;
  let sent = 0;
  let acked = 0;
  let wake;
  const onAck = () => { acked++; if (wake && (sent - acked < WINDOW || acked === total)) { const w = wake; wake = undefined; w(); } };
  let seq = seq0;
  for (let k = 0; k < perSession; k++) {
    for (const sid of ids) {
      while (sent - acked >= WINDOW) await new Promise((r) => { wake = r; });
      seq++;
      host.dispatch(partitionOf(sid, PARTITIONS), inboxMsg(sid, seq, onAck));
      sent++;
      // Let the loop turn now and then as a socket read would.
      if (sent % 256 === 0) await new Promise((r) => setImmediate(r));
    }
  }
  while (acked < total) await new Promise((r) => { wake = r; });
  state.seq = seq;
}

async function round1() {
  const config = loadConfig({ natsUrl: 'nats://127.0.0.1:1', partitions: PARTITIONS, defaultAgentType: 'noop', logLevel: 'error' });
  const store = createMemoryStore();
  await store.migrate();
  const logger = quietLogger();
  const committer = createGroupCommitter({ store, logger, maxBatch: config.groupCommitMaxBatch, lingerMs: config.groupCommitLingerMs, concurrency: config.groupCommitConcurrency });
  const noop = defineAgent({
    type: 'noop', onMessage: POLICY,
    initialState: () => ({ notes: 'n'.repeat(STATE_BYTES) }),
    handle() { return undefined; },
  });
  const transport = { publishCore() {}, publishInbox: async () => {}, publishEvent: async () => {}, flushCore: async () => {}, isConnected: () => true };
  const host = new SessionHost({ config, store, committer, transport, agents: new Map([['noop', noop]]), logger });
  const ids = Array.from({ length: SESSIONS }, (_, i) => `hc-${i}`);
  const st = { seq: 0 };
  await pass(host, ids, PER_SESSION, 0, st); // warm-up: creates the sessions
  global.gc?.();
  const prof = new GCProfiler();
  prof.start();
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  await pass(host, ids, PER_SESSION, st.seq, st);
  const wallMs = performance.now() - t0;
  const cpu = process.cpuUsage(c0);
  const gcs = prof.stop().statistics;
  let allocated = 0;
  let gcMs = 0;
  for (let i = 0; i < gcs.length; i++) {
    const before = gcs[i].beforeGC.heapStatistics.usedHeapSize;
    const prevAfter = i === 0 ? null : gcs[i - 1].afterGC.heapStatistics.usedHeapSize;
    if (prevAfter !== null) allocated += Math.max(0, before - prevAfter);
    gcMs += gcs[i].cost / 1000;
  }
  const n = SESSIONS * PER_SESSION;
  // GCs seen minus one: the bytes between the first and the last GC, over the messages in between (approx.).
  const perMsgAlloc = gcs.length > 1 ? allocated / n * (gcs.length / (gcs.length - 1)) : null;
  await host.shutdown(1000);
  committer.close();
  await store.close();
  return {
    messages: n, wallMs: round(wallMs), cpuUsPerMsg: round((cpu.user + cpu.system) / n),
    allocBytesPerMsg: perMsgAlloc === null ? null : Math.round(perMsgAlloc), gcs: gcs.length, gcMs: round(gcMs),
    rate: round(n / (wallMs / 1000)), runs: host.stats.runs, commits: host.stats.commits,
  };
}

const rounds = [];
for (let r = 1; r <= ROUNDS; r++) {
  const res = await round1();
  log(`round ${r}: ${res.cpuUsPerMsg} µs CPU/msg, ${res.allocBytesPerMsg} B allocated/msg, ${res.rate} msg/s (${res.gcs} GCs, ${res.gcMs} ms)`);
  rounds.push(res);
}
const median = (k) => { const v = rounds.map((x) => x[k]).filter((x) => x !== null).sort((a, b) => a - b); return v.length ? v[Math.floor(v.length / 2)] : null; };
const result = { sessions: SESSIONS, perSession: PER_SESSION, window: WINDOW, policy: POLICY, rounds, cpuUsPerMsg: median('cpuUsPerMsg'), allocBytesPerMsg: median('allocBytesPerMsg'), rate: median('rate') };
if (outPath) writeFileSync(outPath, JSON.stringify(result, null, 2));
log(`hostcpu: median ${result.cpuUsPerMsg} µs CPU/msg, ${result.allocBytesPerMsg} B/msg`);
process.exit(0);
