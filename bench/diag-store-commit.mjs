// Diagnostic, not part of `npm run bench`: the store's own commit() (and hydration reads) with
// runtime-shaped records and no NATS or actors, on Postgres and on PGlite. Says how many records
// per second one caller commits, 500 per commit() call as the group committer sends them, and
// the CPU each costs: this process (the client: serialisation, driver) and, for Postgres, the
// one server backend that ran them (commits go through a pool of one connection, so other
// users of the database do not count). PGlite runs in this process, so its "client" CPU is
// the database too.
//
// Records are shaped like the runtime's (see "store-commit" in throughput.mjs): a ~1 KB
// durable snapshot of the session machine, one 100-byte history row, ~0.4 transition rows.
// Hydration: the same 1,000 sessions read back with loadSession + getHistory each (the old
// path) and, when the store has it, with loadSessions in batches of 500.
//
//   node bench/diag-store-commit.mjs                    (after npm run build)
//   AGENTRY_DIST=/tmp/other-build node bench/diag-store-commit.mjs   (compare two builds)
//   BACKENDS=pg ROUNDS=5 RECORDS=50000 node bench/diag-store-commit.mjs
import { createActor } from 'xstate';
import pg from 'pg';
import { PG_URL, dropSchema, makeBody, median, procCpuMs, schemaName, wallNow } from './lib.mjs';

const DIST = process.env.AGENTRY_DIST ?? new URL('../dist', import.meta.url).pathname;
const { createPgStore, createPgliteStore } = await import(`${DIST}/persistence/index.js`);
const { createPgDb } = await import(`${DIST}/persistence/pgStore.js`);
const { createSqlStore } = await import(`${DIST}/persistence/sqlStore.js`);
const { defineAgent, sessionMachine, toDurableSnapshot } = await import(`${DIST}/actors/index.js`);

const BACKENDS = (process.env.BACKENDS ?? 'pg,pglite').split(',');
const ROUNDS = Number(process.env.ROUNDS ?? 3);
const RECORDS = Number(process.env.RECORDS ?? 20_000);
const BATCH = 500;
const SESSIONS = 1000;
const HISTORY_LIMIT = 50;

/** A durable snapshot of a fresh session with ~500 bytes of user state, as the runtime writes it. */
function snapshotTemplate() {
  const agent = defineAgent({ type: 'noop', onMessage: 'queue', initialState: () => ({ notes: 'n'.repeat(500) }), handle: () => undefined });
  const actor = createActor(sessionMachine, { input: { sessionId: 's0', agentType: 'noop', limits: agent.limits, userState: agent.initialState(), at: Date.now() } }).start();
  const snap = toDurableSnapshot(actor.getPersistedSnapshot());
  actor.stop();
  return snap;
}

const TEMPLATE = snapshotTemplate();

/** `n` runtime-shaped records continuing the sessions' versions in `versions`, 500 per batch. */
function makeBatches(n, versions, seq0) {
  const batches = [];
  const snap = structuredClone(TEMPLATE);
  const now = Date.now();
  for (let k0 = 0; k0 < n; k0 += BATCH) {
    const records = [];
    for (let k = k0; k < Math.min(n, k0 + BATCH); k++) {
      const seq = seq0 + k;
      const sid = `s${seq % SESSIONS}`;
      const version = (versions.get(sid) ?? 0) + 1;
      versions.set(sid, version);
      snap.context.sessionId = sid;
      snap.context.lastSeq = seq;
      snap.context.version = version;
      records.push({
        sessionId: sid, type: 'noop', status: 'idle', snapshot: structuredClone(snap), lastSeq: seq, version, partition: 0, ownerEpoch: 0,
        wakeAt: null, wakeEvents: [], wakePriority: null,
        history: [{ sessionId: sid, seq, kind: 'message', body: JSON.parse(makeBody(seq, now)), priority: 'normal', from: null, batchId: String(version), outcome: 'ok', at: now }],
        transitions: seq % 5 === 0 ? [
          { sessionId: sid, at: now, event: 'MESSAGE', from: 'idle', to: 'active.running' },
          { sessionId: sid, at: now, event: 'xstate.done.actor.handler', from: 'active.running', to: 'idle' },
        ] : [],
        outbox: [],
      });
    }
    batches.push(records);
  }
  return batches;
}

const cpuUs = () => { const u = process.cpuUsage(); return u.user + u.system; };

/** Commits `batches` one call at a time (as one group committer does); rate and CPU per record. */
async function timeCommits(store, batches, backendPid) {
  const n = batches.reduce((a, b) => a + b.length, 0);
  const c0 = cpuUs();
  const p0 = backendPid ? procCpuMs(backendPid) : 0;
  const t0 = wallNow();
  for (const b of batches) await store.commit(b);
  const ms = wallNow() - t0;
  return { rate: n / (ms / 1000), clientUs: (cpuUs() - c0) / n, serverUs: backendPid ? ((procCpuMs(backendPid) - p0) * 1000) / n : 0 };
}

/** Reads all sessions back: per session (loadSession + getHistory), and batched (loadSessions). */
async function timeHydration(store) {
  const ids = Array.from({ length: SESSIONS }, (_, i) => `s${i}`);
  const out = {};
  let c0 = cpuUs();
  let t0 = wallNow();
  // Ten at a time, as the host's LOAD_CONCURRENCY allows.
  for (let i = 0; i < ids.length; i += 10) {
    await Promise.all(ids.slice(i, i + 10).map(async (id) => {
      const r = await store.loadSession(id);
      if (r) await store.getHistory(id, { limit: HISTORY_LIMIT });
    }));
  }
  out.perSession = { ms: wallNow() - t0, clientUsPerSession: (cpuUs() - c0) / ids.length };
  if (typeof store.loadSessions === 'function') {
    c0 = cpuUs();
    t0 = wallNow();
    let found = 0;
    for (let i = 0; i < ids.length; i += BATCH) found += (await store.loadSessions(ids.slice(i, i + BATCH), HISTORY_LIMIT)).size;
    if (found !== ids.length) throw new Error(`loadSessions found ${found} of ${ids.length}`);
    out.batched = { ms: wallNow() - t0, clientUsPerSession: (cpuUs() - c0) / ids.length };
  }
  return out;
}

async function runBackend(kind) {
  const schema = schemaName('dsc');
  // Postgres: commits on a pool of one connection, whose server process is measured.
  const pool = kind === 'pg' ? new pg.Pool({ connectionString: PG_URL, max: 1, options: `-c search_path=${schema}` }) : null;
  const db = pool && createPgDb(pool);
  const store = kind === 'pg' ? createSqlStore(db, 'pg', { schema }) : createPgliteStore();
  const reader = kind === 'pg' ? createPgStore({ connectionString: PG_URL, schema }) : store;
  try {
    await store.migrate();
    const backendPid = db ? (await db.query('SELECT pg_backend_pid() AS pid')).rows[0].pid : 0;
    const versions = new Map();
    let seq = 1;
    // Warm-up: JIT, connections, every session created (later rounds are updates, as at steady state).
    const warm = makeBatches(Math.max(SESSIONS, 2 * BATCH), versions, seq);
    seq += Math.max(SESSIONS, 2 * BATCH);
    await timeCommits(store, warm, backendPid);
    const rounds = [];
    for (let r = 0; r < ROUNDS; r++) {
      const batches = makeBatches(RECORDS, versions, seq);
      seq += RECORDS;
      rounds.push(await timeCommits(store, batches, backendPid));
    }
    const hydration = [];
    for (let r = 0; r < ROUNDS; r++) hydration.push(await timeHydration(reader));
    const med = (f) => Math.round(median(rounds.map(f)) * 10) / 10;
    const medH = (f) => Math.round(median(hydration.map(f)) * 10) / 10;
    return {
      backend: kind,
      commit: { recordsPerSec: Math.round(med((x) => x.rate)), clientCpuUsPerRecord: med((x) => x.clientUs), ...(kind === 'pg' ? { serverCpuUsPerRecord: med((x) => x.serverUs) } : {}), rounds: rounds.map((x) => Math.round(x.rate)) },
      hydration1000: {
        perSessionMs: medH((h) => h.perSession.ms), perSessionClientUs: medH((h) => h.perSession.clientUsPerSession),
        ...(hydration[0].batched ? { batchedMs: medH((h) => h.batched.ms), batchedClientUs: medH((h) => h.batched.clientUsPerSession) } : {}),
      },
    };
  } finally {
    await store.close();
    if (reader !== store) await reader.close();
    if (kind === 'pg') await dropSchema(schema).catch(() => undefined);
  }
}

console.log(`store.commit(): ${RECORDS} records × ${ROUNDS} rounds, ${BATCH} per call, ${SESSIONS} sessions, snapshot ${JSON.stringify(TEMPLATE).length} bytes; dist ${DIST}`);
for (const kind of BACKENDS) console.log(JSON.stringify(await runBackend(kind)));
