// Heap suite (issues 2 and 3): V8 heap per live idle session.
//
// A runtime with the Postgres store (so no store data sits in this heap) and limits that keep
// every session live (maxLiveSessions above N, idleTimeout of an hour). After a warm-up of 200
// sessions, the heap is measured after forced GCs; then N sessions each get one message (the
// forked publisher), everything is committed and acked, and the heap is measured again.
// (heapUsed after − before) / N is the cost of one live idle session: its XState actor, the
// host's bookkeeping, its child logger and its history view (one message). Needs --expose-gc.
import { writeFileSync } from 'node:fs';
import { createRuntime, defineAgent } from '../dist/runtime/index.js';
import { PARTITIONS, PG_URL, dropSchema, forkPublisher, log, quietLogger, round, schemaName, sleep, startNats, waitUntil } from './lib.mjs';

const outPath = process.argv[2];
const N = Number(process.env.BENCH_HEAP_SESSIONS ?? 10_000);
if (typeof globalThis.gc !== 'function') throw new Error('run with node --expose-gc');

async function settledHeap() {
  for (let i = 0; i < 4; i++) { globalThis.gc(); await sleep(100); }
  const m = process.memoryUsage();
  return { heapUsed: m.heapUsed, rss: m.rss, external: m.external, arrayBuffers: m.arrayBuffers };
}

const nats = await startNats();
const pub = await forkPublisher(nats.url);
const schema = schemaName('heap');
let result;
try {
  let committed = 0;
  const noop = defineAgent({ type: 'noop', onMessage: 'queue', handle: () => undefined });
  const rt = await createRuntime({
    agents: [noop], logger: quietLogger(),
    config: {
      natsUrl: nats.url, partitions: PARTITIONS, defaultAgentType: 'noop', logLevel: 'error', store: 'auto', databaseUrl: PG_URL, databaseSchema: schema,
      maxLiveSessions: N + 1000, idleTimeoutMs: 3_600_000,
    },
  });
  rt.host.listen({ onCommitted(rec) { committed += rec.history.length; } });
  const drained = async () => (await rt.transport.jsm.streams.info(rt.transport.inboxStream)).state.messages === 0;
  await pub.start({ mode: 'burst', subjectPrefix: 'agentry.in.', idPrefix: 'warm-', sessions: 200, perSession: 1, window: 1000 });
  await waitUntil(() => committed >= 200, 'warm-up commits');
  await waitUntil(drained, 'warm-up acks', 30_000, 50);
  const before = await settledHeap();
  const liveBefore = rt.host.liveCount();
  committed = 0;
  const t0 = performance.now();
  await pub.start({ mode: 'burst', subjectPrefix: 'agentry.in.', idPrefix: 'idle-', sessions: N, perSession: 1, window: 1000 });
  await waitUntil(() => committed >= N, `${N} commits`);
  const hydrateMs = performance.now() - t0;
  await waitUntil(drained, 'acks', 30_000, 50);
  await sleep(1500); // let a sweeper pass run (it must not passivate anything: idleTimeout is an hour)
  const after = await settledHeap();
  const liveAfter = rt.host.liveCount();
  await rt.stop();
  result = {
    sessions: N, liveBefore, liveAfter, store: 'pg',
    heapBytesPerSession: Math.round((after.heapUsed - before.heapUsed) / (liveAfter - liveBefore)),
    rssBytesPerSession: Math.round((after.rss - before.rss) / (liveAfter - liveBefore)),
    heapUsedBefore: before.heapUsed, heapUsedAfter: after.heapUsed,
    createRate: round(N / (hydrateMs / 1000)),
  };
  log(`heap: ${result.heapBytesPerSession} B/session over ${liveAfter - liveBefore} live sessions (rss ${result.rssBytesPerSession} B)`);
} finally {
  await pub.stop();
  await dropSchema(schema).catch(() => undefined);
  await nats.cleanup();
}
writeFileSync(outPath, JSON.stringify(result, null, 2));
// Exit explicitly: a ref'd timer left in a stopped runtime (the scheduler left one until 0c1de4c)
// must not stretch the run.
process.exit(0);
