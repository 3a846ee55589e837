// Restart suite (issue 3): restart-to-ready with many persisted sessions, and their size in Postgres.
//
// 1. A runtime on a fresh schema answers one message to session `tmpl` (an echo agent); its
//    committed row, history and transitions are the template of a passivated session.
// 2. N copies (new ids, own partition) are written through the Postgres store's own commit(),
//    1,000 records per call: one sessions row, one history row and the template's transitions each.
// 3. Bytes per passivated session: pg_total_relation_size (heap + TOAST + indexes) / N.
// 4. Restart: a new node process (bench/restart-node.mjs) is spawned; once its createRuntime()
//    resolves, a message is published to one persisted session, chosen at random, and the reply
//    on agentry.out.<id> is awaited. Reported: spawn → answer, createRuntime() → answer, and
//    the parts. Repeated BENCH_RESTARTS times (a different session each time).
import { fork } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';
import { createRuntime, defineAgent, partitionOf } from '../dist/runtime/index.js';
import { createPgStore } from '../dist/persistence/index.js';
import { BENCH_DIR, PARTITIONS, PG_URL, QUICK, dropSchema, log, median, pgClient, quietLogger, round, schemaName, startNats, waitUntil, wallNow, withTimeout } from './lib.mjs';

const outPath = process.argv[2];
const N = Number(process.env.BENCH_RESTART_SESSIONS ?? (QUICK ? 20_000 : 100_000));
const RESTARTS = Number(process.env.BENCH_RESTARTS ?? (QUICK ? 1 : 3));
const BATCH = 1000;

const nats = await startNats();
const schema = schemaName('restart');
const results = { sessions: N, restarts: [] };

function echoAgent() {
  return defineAgent({
    type: 'echo', onMessage: 'queue', initialState: () => ({ turns: 0 }),
    handle(batch, ctx) { ctx.state.turns++; ctx.reply({ seqs: batch.map((m) => m.seq), turn: ctx.state.turns }); return undefined; },
  });
}

async function template() {
  let committed = false;
  const rt = await createRuntime({
    agents: [echoAgent()], logger: quietLogger(),
    config: { natsUrl: nats.url, partitions: PARTITIONS, store: 'auto', databaseUrl: PG_URL, databaseSchema: schema, defaultAgentType: 'echo', logLevel: 'error' },
  });
  rt.host.listen({ onCommitted(r) { if (r.sessionId === 'tmpl' && r.history.length > 0) committed = true; } });
  await rt.sendMessage('tmpl', { text: 'hello, this is a short user message of about a hundred bytes for the template' });
  await waitUntil(() => committed, 'template session commit', 30_000);
  const rec = await rt.store.loadSession('tmpl');
  const history = await rt.store.getHistory('tmpl');
  const transitions = await rt.store.getTransitions('tmpl');
  await rt.stop();
  return { rec, history, transitions };
}

async function bulkInsert(tpl) {
  // The template runtime recorded its partition epochs (fencing): rows written as if by that
  // node carry them, or the store refuses them as written by a deposed owner.
  const c = await pgClient(schema);
  const epochs = new Map((await c.query('SELECT partition, epoch FROM partition_epochs')).rows.map((r) => [r.partition, Number(r.epoch)]));
  await c.end();
  const store = createPgStore({ connectionString: PG_URL, schema });
  const t0 = wallNow();
  for (let i0 = 0; i0 < N; i0 += BATCH) {
    const records = [];
    const now = Date.now();
    for (let i = i0; i < Math.min(N, i0 + BATCH); i++) {
      const id = `p${i}`;
      const snapshot = structuredClone(tpl.rec.snapshot);
      snapshot.context.sessionId = id;
      snapshot.context.lastSeq = 1;
      records.push({
        sessionId: id, type: 'echo', status: 'idle', snapshot, lastSeq: 1, version: 1, partition: partitionOf(id, PARTITIONS), ownerEpoch: epochs.get(partitionOf(id, PARTITIONS)) ?? 0,
        wakeAt: null, wakeEvents: [], wakePriority: null,
        history: tpl.history.map((h) => ({ ...h, sessionId: id, seq: 1, at: now })),
        transitions: tpl.transitions.map((t) => ({ ...t, sessionId: id, at: now })),
        outbox: [],
      });
    }
    await store.commit(records);
  }
  const ms = wallNow() - t0;
  await store.close();
  return { rate: round(N / (ms / 1000)), ms: round(ms) };
}

async function sizes() {
  const c = await pgClient(schema);
  await c.query('VACUUM ANALYZE sessions, history, transitions');
  const { rows: [r] } = await c.query(`SELECT (SELECT count(*) FROM sessions)::int AS n,
      pg_total_relation_size('sessions') AS s, pg_relation_size('sessions') AS s_heap, pg_indexes_size('sessions') AS s_idx,
      pg_total_relation_size('history') AS h, pg_total_relation_size('transitions') AS t,
      (SELECT avg(pg_column_size(snapshot)) FROM sessions)::int AS snap_stored, (SELECT avg(length(snapshot::text)) FROM sessions)::int AS snap_text`);
  await c.end();
  const n = r.n;
  return {
    sessions: n, snapshotTextBytes: r.snap_text, snapshotStoredBytes: r.snap_stored,
    sessionsBytesPerSession: Math.round(Number(r.s) / n), sessionsHeapBytesPerSession: Math.round(Number(r.s_heap) / n), sessionsIndexBytesPerSession: Math.round(Number(r.s_idx) / n),
    historyBytesPerSession: Math.round(Number(r.h) / n), transitionsBytesPerSession: Math.round(Number(r.t) / n),
    totalBytesPerSession: Math.round((Number(r.s) + Number(r.h) + Number(r.t)) / n),
  };
}

async function restartOnce(nc, target) {
  const js = jetstream(nc);
  const sub = nc.subscribe(`agentry.out.${target}`, { max: 1 });
  const answered = (async () => { for await (const _ of sub) return wallNow(); return 0; })();
  await nc.flush();
  const tSpawn = wallNow();
  const child = fork(join(BENCH_DIR, 'restart-node.mjs'), [nats.url, PG_URL, schema, String(PARTITIONS)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const ready = await new Promise((res, rej) => {
    child.once('message', res);
    child.once('exit', (code) => rej(new Error(`restart node exited with ${code}`)));
  });
  const tPublish = wallNow();
  await js.publish(`agentry.in.${target}`, JSON.stringify({ text: 'are you there?' }));
  const tAnswer = await withTimeout(answered, 30_000, `an answer from ${target}`);
  const stopped = new Promise((res) => child.on('message', (m) => { if (m.type === 'stopped') res(m.stats); }));
  child.send({ type: 'stop' });
  const stats = await stopped;
  await new Promise((res) => (child.exitCode !== null ? res() : child.once('exit', res)));
  return {
    target,
    spawnToAnswerMs: round(tAnswer - tSpawn), createRuntimeToAnswerMs: round(tAnswer - ready.tCreate0),
    nodeStartAndImportMs: round(ready.tCreate0 - tSpawn), createRuntimeMs: round(ready.tReady - ready.tCreate0),
    firstAnswerMs: round(tAnswer - tPublish), liveAtReady: ready.live, liveAtEnd: stats.live, hydrations: stats.hydrations,
  };
}

try {
  log(`restart: ${N} persisted sessions, ${RESTARTS} restart(s)`);
  const tpl = await template();
  results.insert = await bulkInsert(tpl);
  log(`restart: inserted ${N} sessions through store.commit() at ${results.insert.rate}/s`);
  results.sizes = await sizes();
  log(`restart: ${results.sizes.totalBytesPerSession} B per passivated session (sessions ${results.sizes.sessionsBytesPerSession} B)`);
  const nc = await connect({ servers: nats.url });
  for (let i = 0; i < RESTARTS; i++) {
    const r = await restartOnce(nc, `p${Math.floor(Math.random() * N)}`);
    results.restarts.push(r);
    log(`restart ${i + 1}: spawn → answer ${r.spawnToAnswerMs} ms (createRuntime ${r.createRuntimeMs} ms, first answer ${r.firstAnswerMs} ms, live at ready ${r.liveAtReady})`);
  }
  await nc.close();
  results.medianSpawnToAnswerMs = median(results.restarts.map((r) => r.spawnToAnswerMs));
  results.medianCreateRuntimeToAnswerMs = median(results.restarts.map((r) => r.createRuntimeToAnswerMs));
} finally {
  await dropSchema(schema).catch(() => undefined);
  await nats.cleanup();
}
writeFileSync(outPath, JSON.stringify(results, null, 2));
// Exit explicitly: a ref'd timer left in a stopped runtime (the scheduler left one until 0c1de4c)
// must not stretch the run.
process.exit(0);
