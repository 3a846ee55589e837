// PGlite suite (issue 3): durable end-to-end throughput on the embedded store, as a ratio to a
// raw PGlite batched upsert loop of the same rows, in one process (PGlite runs on the main thread
// of whoever opens it, as it does inside the runtime).
//   raw-pglite    : PGlite on a fresh data directory; per message one JSONB snapshot-row upsert
//                   (the runtime's real snapshot) and one history row, 500 of each per
//                   transaction as multi-row INSERT … ON CONFLICT DO UPDATE.
//   runtime-pglite: the forked publisher feeds sessions × messages to a runtime whose store is
//                   PGlite on a fresh data directory (the zero-setup default); no-op handler,
//                   'queue' policy; rate from the first publish to the last commit and to the
//                   inbox stream being empty (every ack processed).
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cpus } from 'node:os';
import { PGlite } from '@electric-sql/pglite';
import { createRuntime, defineAgent } from '../dist/runtime/index.js';
import { PARTITIONS, QUICK, cpuDelta, cpuMark, forkPublisher, log, makeBody, quietLogger, round, startNats, tempDir, waitUntil, wallNow } from './lib.mjs';

const outPath = process.argv[2];
const SESSIONS = Number(process.env.BENCH_SESSIONS ?? 1000);
const PER_SESSION = Number(process.env.BENCH_PGLITE_PER_SESSION ?? (QUICK ? 20 : 50));
const TOTAL = SESSIONS * PER_SESSION;
const BATCH = 500;
const STATE_BYTES = Number(process.env.BENCH_STATE_BYTES ?? 500);

const nats = await startNats();
const pub = await forkPublisher(nats.url);
const tmp = tempDir('agentry-bench-pglite-');
const results = { sessions: SESSIONS, perSession: PER_SESSION, total: TOTAL, partitions: PARTITIONS };

async function runtimeRun(tag, sessions, perSession) {
  const total = sessions * perSession;
  let committed = 0;
  let tCommitted = 0;
  // ~500 bytes of user state, as in the throughput suite, so the snapshot is ~1 KB.
  const noop = defineAgent({ type: 'noop', onMessage: 'queue', initialState: () => ({ notes: 'n'.repeat(STATE_BYTES) }), handle: () => undefined });
  const dataDir = join(tmp.dir, tag);
  mkdirSync(dataDir, { recursive: true }); // PGlite creates <dataDir>/pglite but not its parents
  const rt = await createRuntime({
    agents: [noop], logger: quietLogger(),
    config: { natsUrl: nats.url, partitions: PARTITIONS, defaultAgentType: 'noop', logLevel: 'error', store: 'auto', dataDir },
  });
  if (rt.store.kind !== 'pglite') throw new Error(`expected the PGlite store, got ${rt.store.kind} (is DATABASE_URL set?)`);
  rt.host.listen({
    onCommitted(rec) {
      committed += rec.history.length;
      if (committed >= total && tCommitted === 0) tCommitted = wallNow();
    },
  });
  const c0 = cpuMark(nats.pid, pub.pid);
  const rep = await pub.start({ mode: 'burst', subjectPrefix: 'agentry.in.', idPrefix: `${tag}-`, sessions, perSession, window: 1000 });
  await waitUntil(() => tCommitted > 0, `PGlite runtime commits (${committed}/${total})`, 300_000);
  const c1 = cpuMark(nats.pid, pub.pid);
  await waitUntil(async () => (await rt.transport.jsm.streams.info(rt.transport.inboxStream)).state.messages === 0, 'acks', 60_000, 50);
  const tAcked = wallNow();
  const snapshot = JSON.stringify((await rt.store.loadSession(`${tag}-0`)).snapshot);
  await rt.stop();
  return {
    committedRate: round(total / ((tCommitted - rep.t0) / 1000)), ackedRate: round(total / ((tAcked - rep.t0) / 1000)),
    committedMs: round(tCommitted - rep.t0), publishRate: round(rep.publishRate), cpu: cpuDelta(c0, c1, cpus().length), snapshot,
  };
}

async function rawPglite(template) {
  const db = await PGlite.create({ dataDir: join(tmp.dir, 'raw') });
  await db.exec(`CREATE TABLE raw_sessions (id text PRIMARY KEY, snapshot jsonb NOT NULL, last_seq bigint NOT NULL, version bigint NOT NULL, updated_at bigint NOT NULL);
    CREATE TABLE raw_history (session_id text NOT NULL, seq bigint NOT NULL, body jsonb, at bigint NOT NULL, PRIMARY KEY (session_id, seq));`);
  const sv = [];
  const hv = [];
  for (let r = 0; r < BATCH; r++) {
    const b = r * 4;
    sv.push(`($${b + 1}, $${b + 2}::jsonb, $${b + 3}, 1, $${b + 4})`);
    hv.push(`($${b + 1}, $${b + 2}, $${b + 3}::jsonb, $${b + 4})`);
  }
  const upsert = `INSERT INTO raw_sessions (id, snapshot, last_seq, version, updated_at) VALUES ${sv.join(', ')}
    ON CONFLICT (id) DO UPDATE SET snapshot = excluded.snapshot, last_seq = excluded.last_seq, version = raw_sessions.version + 1, updated_at = excluded.updated_at`;
  const history = `INSERT INTO raw_history (session_id, seq, body, at) VALUES ${hv.join(', ')}`;
  const snap = JSON.parse(template);
  const c0 = cpuMark(nats.pid, null);
  const t0 = wallNow();
  for (let k0 = 0; k0 < TOTAL; k0 += BATCH) {
    const sp = [];
    const hp = [];
    const now = Date.now();
    for (let k = k0; k < k0 + BATCH; k++) {
      const sid = `s${k % SESSIONS}`;
      snap.context.lastSeq = k;
      snap.context.version = Math.floor(k / SESSIONS) + 1;
      sp.push(sid, JSON.stringify(snap), k, now);
      hp.push(sid, k, makeBody(k, now), now);
    }
    await db.transaction(async (tx) => {
      await tx.query(upsert, sp);
      await tx.query(history, hp);
    });
  }
  const ms = wallNow() - t0;
  const cpu = cpuDelta(c0, cpuMark(nats.pid, null), cpus().length);
  await db.close();
  return { rate: round(TOTAL / (ms / 1000)), ms: round(ms), cpu, batch: BATCH, snapshotBytes: template.length };
}

try {
  log(`pglite: ${SESSIONS} sessions × ${PER_SESSION} messages`);
  const warm = await runtimeRun('warm', 200, 5);
  results.rawPglite = await rawPglite(warm.snapshot);
  log(`raw-pglite ${results.rawPglite.rate} rows/s`);
  const { snapshot, ...run } = await runtimeRun('run', SESSIONS, PER_SESSION);
  results.runtimePglite = { ...run, snapshotBytes: snapshot.length };
  log(`runtime-pglite ${run.committedRate} msg/s committed, ${run.ackedRate} acked`);
} finally {
  await pub.stop();
  await nats.cleanup();
  tmp.cleanup();
}
writeFileSync(outPath, JSON.stringify(results, null, 2));
// Exit explicitly: a ref'd timer left in a stopped runtime (the scheduler left one until 0c1de4c)
// must not stretch the run.
process.exit(0);
