// Diagnostic, not part of `npm run bench`: the group committer's pacing alone, on Postgres. Feeds
// runtime-shaped commit records (a ~1 KB durable snapshot, one history row; 1,000 sessions, each
// session's next record only after its previous one committed, as the host's chain does) into
// createGroupCommitter at a paced RATE, and reports submit → committed latency, transactions
// per second, records per transaction and the CPU of the Postgres backend(s) serving them. No
// NATS, no actors: what differs between two builds here is the committer's policy only.
// Builds alternate, ROUNDS times, in one process, so a loaded machine hits both alike.
//   node bench/diag-commit-pacing.mjs                                   (this build)
//   DISTS=/path/to/old/dist,/path/to/new/dist,/path/to/new/dist@2 node bench/diag-commit-pacing.mjs
//   RATE=1000 MS=5000 ROUNDS=3 LINGER=2 CONCURRENCY=3
//   FAKE_MS=3 …   (no Postgres: a store whose commit takes FAKE_MS + 0.02 ms per record, a timer:
//                  the policies alone, with the database's own noise taken out)
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { PG_URL, dropSchema, makeBody, percentiles, schemaName, wallNow } from './lib.mjs';

const DISTS = (process.env.DISTS ?? new URL('../dist', import.meta.url).pathname).split(',');
const RATE = Number(process.env.RATE ?? 1000);
const MS = Number(process.env.MS ?? 5000);
const ROUNDS = Number(process.env.ROUNDS ?? 3);
const CONCURRENCY = Number(process.env.CONCURRENCY ?? 3);
const LINGER = process.env.LINGER === undefined ? undefined : Number(process.env.LINGER);
const SESSIONS = 1000;
const FAKE_MS = process.env.FAKE_MS === undefined ? null : Number(process.env.FAKE_MS);

const first = DISTS[0].split('@')[0];
const { createPgStore } = await import(`${first}/persistence/index.js`);
const { defineAgent, sessionMachine, toDurableSnapshot } = await import(`${first}/actors/index.js`);
const { createActor } = await import('xstate');
const { createLogger } = await import(`${first}/runtime/logger.js`);
// `path@2`: that build with lingerMs 2 (else LINGER, else the build's own default).
const builds = await Promise.all(DISTS.map(async (entry) => {
  const [d, linger] = entry.split('@');
  return { dist: entry, linger: linger === undefined ? undefined : Number(linger), ...(await import(`${d}/runtime/groupCommit.js`)), ...(await import(`${d}/runtime/config.js`)) };
}));

/** CPU (ms) of the Postgres backends serving this process (by the client ports of its sockets). */
function myBackendsCpuMs() {
  const inodes = new Set();
  for (const fd of readdirSync('/proc/self/fd')) {
    try { const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/self/fd/${fd}`)); if (m) inodes.add(m[1]); } catch { /* closed */ }
  }
  const ports = new Set();
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length >= 10 && inodes.has(f[9]) && f[2].endsWith(':1538')) ports.add(String(parseInt(f[1].split(':')[1], 16)));
  }
  let total = 0;
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const m = /^postgres: .*\(([0-9]+)\)/.exec(readFileSync(`/proc/${d}/cmdline`, 'utf8'));
      if (!m || !ports.has(m[1])) continue;
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      total += (Number(f[11]) + Number(f[12])) * 10;
    } catch { /* exited */ }
  }
  return total;
}

const agent = defineAgent({ type: 'noop', onMessage: 'queue', initialState: () => ({ notes: 'n'.repeat(500) }), handle: () => undefined });
const actor = createActor(sessionMachine, { input: { sessionId: 's0', agentType: 'noop', limits: agent.limits, userState: agent.initialState(), at: Date.now() } }).start();
const TEMPLATE = toDurableSnapshot(actor.getPersistedSnapshot());
actor.stop();

const schema = schemaName('pace');
const store = FAKE_MS === null
  ? createPgStore({ connectionString: PG_URL, schema })
  : { commit: (records) => new Promise((r) => setTimeout(r, FAKE_MS + records.length * 0.02)), close: async () => undefined };
if (FAKE_MS === null) await store.migrate();
const versions = new Map();
let seq = 1;

function record(sid) {
  const version = (versions.get(sid) ?? 0) + 1;
  versions.set(sid, version);
  const s = seq++;
  const now = Date.now();
  const snapshot = structuredClone(TEMPLATE);
  snapshot.context.sessionId = sid;
  snapshot.context.lastSeq = s;
  snapshot.context.version = version;
  return {
    sessionId: sid, type: 'noop', status: 'idle', snapshot, lastSeq: s, version, partition: 0, ownerEpoch: 0,
    wakeAt: null, wakeEvents: [], wakePriority: null,
    history: [{ sessionId: sid, seq: s, kind: 'message', body: JSON.parse(makeBody(s, now)), priority: 'normal', from: null, batchId: String(version), outcome: 'ok', at: now }],
    transitions: [
      { sessionId: sid, at: now, event: 'MESSAGE', from: 'idle', to: 'active.running' },
      { sessionId: sid, at: now, event: 'RUN_DONE', from: 'active.running', to: 'idle' },
    ],
    outbox: [],
  };
}

async function round(build) {
  const calls = [];
  const commit = store.commit.bind(store);
  const counting = { ...store, commit: async (records) => { calls.push(records.length); await commit(records); } };
  const lingerMs = build.linger ?? LINGER ?? build.loadConfig({}, {}).groupCommitLingerMs;
  const gc = build.createGroupCommitter({ store: counting, logger: createLogger('silent'), maxBatch: 500, lingerMs, concurrency: CONCURRENCY });
  const chains = new Map();
  const lat = [];
  const total = Math.round((RATE * MS) / 1000);
  let sent = 0;
  let done = 0;
  const cpu0 = myBackendsCpuMs();
  const t0 = wallNow();
  await new Promise((resolve) => {
    const tick = () => {
      const owed = Math.min(total, Math.floor(((wallNow() - t0) * RATE) / 1000) + 1);
      while (sent < owed) {
        const sid = `s${sent++ % SESSIONS}`;
        // A session's next record waits for its previous one (the host's chain).
        const prev = chains.get(sid) ?? Promise.resolve();
        const next = prev.then(() => {
          const t = wallNow();
          return gc.submit(record(sid)).then(() => { lat.push(wallNow() - t); if (++done === total) resolve(); });
        });
        chains.set(sid, next);
      }
      if (sent < total) setTimeout(tick, 1);
    };
    tick();
  });
  const wall = wallNow() - t0;
  await gc.drain();
  const pgMs = myBackendsCpuMs() - cpu0;
  gc.close();
  return {
    build: build.dist, lingerMs, latencyMs: percentiles(lat), transactionsPerSec: Math.round(calls.length / (wall / 1000)),
    recordsPerTransaction: percentiles(calls), pgBackendUsPerRecord: Math.round((pgMs * 1000) / total),
  };
}

try {
  // Warm-up: every session created, connections open.
  await round(builds[0]);
  for (let r = 0; r < ROUNDS; r++) {
    for (const b of builds) {
      const o = await round(b);
      const l = o.latencyMs;
      console.log(`${r + 1} ${o.build} linger ${o.lingerMs}: submit→committed p50 ${l.p50} p90 ${l.p90} p99 ${l.p99} max ${l.max} ms; ${o.transactionsPerSec} tx/s, records/tx p50 ${o.recordsPerTransaction.p50} p90 ${o.recordsPerTransaction.p90}; Postgres backends ${o.pgBackendUsPerRecord} µs CPU/record; load ${readFileSync('/proc/loadavg', 'utf8').split(' ')[0]}`);
    }
  }
} finally {
  await store.close();
  if (FAKE_MS === null) await dropSchema(schema).catch(() => undefined);
}
process.exit(0);
