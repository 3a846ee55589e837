// Foundation: per-session FIFO, cancel-and-merge, anti-starvation, raw-protocol producers and
// bad input, against a real nats-server (the project's nats.conf) and real Postgres.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstream } from '@nats-io/jetstream';
import { createConnection } from 'node:net';
import { defineAgent, TerminalError, type HandlerContext, type InboxMessage } from '../../actors/index.js';
import { abortableDelay } from '../../examples/slowWriter.js';
import { echo } from '../../examples/echo.js';
import type { Store } from '../../persistence/types.js';
import type { Runtime } from '../../runtime/index.js';
import { natsClient, publish, sleep, startNats, startStack, type Stack, waitFor } from '../helpers.js';

type Nats = Awaited<ReturnType<typeof startNats>>;

let nats: Nats;
let stack: Stack;
let store: Store;
let rt: Runtime;

// What the handlers saw, by session: recorded in the test process (the handler is the "LLM" here).
const seen = new Map<string, number[]>();
const calls: { sid: string; bodies: unknown[]; aborted: boolean; completed: boolean }[] = [];

const fifo = defineAgent({
  type: 'fifo',
  onMessage: 'queue',
  handle(batch, ctx) {
    for (const m of batch) {
      const list = seen.get(ctx.sessionId) ?? [];
      list.push((m.body as { i: number }).i);
      seen.set(ctx.sessionId, list);
    }
    return undefined;
  },
});

/** A run that takes as long as its newest message asks (`ms`, default 200), abortably; records each call. */
async function timedRun(batch: readonly InboxMessage[], ctx: HandlerContext): Promise<undefined> {
  const rec = { sid: ctx.sessionId, bodies: batch.map((m) => m.body), aborted: false, completed: false };
  calls.push(rec);
  // The newest message sets the duration: a merged batch runs as long as its last message asks.
  const ms = (batch.at(-1)?.body as { ms?: number } | null)?.ms ?? 200;
  try {
    await abortableDelay(ms, ctx.signal);
  } catch {
    rec.aborted = ctx.signal.aborted;
    throw new Error('aborted');
  }
  rec.completed = true;
  ctx.reply({ bodies: rec.bodies });
  return undefined;
}

/** Merges for at most 300 ms of a batch (the anti-starvation bound under test). */
const slow = defineAgent({ type: 'slow', onMessage: 'cancel-and-merge', maxMergeDelayMs: 300, handle: timedRun });
/** Merges whenever a message arrives during a run, however late (a busy machine must not turn a merge into a queue). */
const merger = defineAgent({ type: 'merger', onMessage: 'cancel-and-merge', maxMergeDelayMs: 600_000, handle: timedRun });

const failing = defineAgent({
  type: 'failing',
  onMessage: 'queue',
  maxAttempts: 1,
  handle(batch: readonly InboxMessage[]) {
    throw new TerminalError(`cannot handle ${JSON.stringify(batch[0]?.body)}`);
  },
});

beforeAll(async () => {
  stack = await startStack('foundation', { agents: [fifo, slow, merger, failing, echo], config: { defaultAgentType: 'echo' } });
  ({ nats, store, rt } = stack);
});

afterAll(async () => {
  await stack?.stop();
});

describe('foundation runtime', () => {
  it('keeps per-session FIFO: 500 sessions × 40 messages from 4 concurrent publishers, none lost or doubled', async () => {
    const sessions = Array.from({ length: 500 }, (_, i) => `fifo-${i}`);
    for (const sid of sessions) await rt.createAgent(sid, 'fifo');
    const publishers = await Promise.all([0, 1, 2, 3].map(() => natsClient(nats.url)));
    await Promise.all(publishers.map(async (nc, k) => {
      const mine = sessions.filter((_, i) => i % 4 === k);
      const acks: Promise<number>[] = [];
      for (let i = 0; i < 40; i++) {
        for (const sid of mine) acks.push(publish(nc, sid, { i }));
        if (acks.length > 500) await Promise.all(acks.splice(0)); // pipelined, order per connection kept
      }
      await Promise.all(acks);
    }));
    await Promise.all(publishers.map((nc) => nc.close()));
    await waitFor(() => sessions.every((sid) => (seen.get(sid)?.length ?? 0) >= 40), 'all 20,000 messages handled', 120_000, 100);
    await sleep(300); // a duplicate would show up now
    const expected = Array.from({ length: 40 }, (_, i) => i);
    for (const sid of sessions) expect(seen.get(sid), sid).toEqual(expected);
    const hist = await waitFor(async () => { const h = await store.getHistory('fifo-123', { limit: 100 }); return h.length >= 40 ? h : null; }, 'history of fifo-123');
    expect(hist.map((h) => (h.body as { i: number }).i).reverse()).toEqual(expected);
  }, 180_000);

  it('cancel-and-merge: m2 aborts the run on m1; one completed call gets [m1, m2]; history keeps both; others unaffected', async () => {
    await rt.createAgent('merge-a', 'merger');
    await rt.createAgent('merge-b', 'merger');
    // m1's run takes a minute: m2 is sent once it is running, so it must supersede it (no race with its end).
    await rt.sendMessage('merge-a', { m: 1, ms: 60_000 });
    await rt.sendMessage('merge-b', { m: 3, ms: 200 });
    await waitFor(() => calls.some((c) => c.sid === 'merge-a'), 'the run on m1 to start');
    await rt.sendMessage('merge-a', { m: 2 });
    await waitFor(() => calls.filter((c) => c.sid === 'merge-a' && c.completed).length === 1 && calls.some((c) => c.sid === 'merge-b' && c.completed), 'runs to complete');
    await waitFor(async () => (await rt.getAgent('merge-a')).state === 'idle', 'merge-a idle');
    await sleep(100);
    const a = calls.filter((c) => c.sid === 'merge-a');
    expect(a[0]).toMatchObject({ bodies: [{ m: 1, ms: 60_000 }], aborted: true, completed: false });
    const done = a.filter((c) => c.completed);
    expect(done).toHaveLength(1);
    expect(done[0]!.bodies).toEqual([{ m: 1, ms: 60_000 }, { m: 2 }]);
    const hist = await waitFor(async () => { const h = await rt.getHistory('merge-a'); return h.length === 2 ? h : null; }, 'history of merge-a');
    expect(hist.map((h) => h.body).reverse()).toEqual([{ m: 1, ms: 60_000 }, { m: 2 }]);
    expect(new Set(hist.map((h) => h.batchId)).size).toBe(1); // one handler call over both messages
    const timeline = await waitFor(async () => { const t = await rt.getTransitions('merge-a'); return t.some((x) => x.event === 'run.done') ? t : null; }, 'transitions of merge-a');
    expect(timeline.map((t) => `${t.from}>${t.to}:${t.event}`)).toEqual([
      '>idle:create', 'idle>active.running:MESSAGE', 'active.running>active.running:MESSAGE', 'active.running>idle:run.done',
    ]);
    const b = calls.filter((c) => c.sid === 'merge-b');
    expect(b).toHaveLength(1);
    expect(b[0]).toMatchObject({ bodies: [{ m: 3, ms: 200 }], aborted: false, completed: true });
  });

  it('a steady stream cannot starve a cancel-and-merge session: runs complete while the stream still flows', async () => {
    await rt.createAgent('steady', 'slow');
    const nc = await natsClient(nats.url);
    const completed = (): number => calls.filter((c) => c.sid === 'steady' && c.completed).length;
    // A message every ~20 ms into 100 ms runs: each arrives while a run is in progress. Were merging
    // unbounded, every run would be superseded and none would complete before the stream stops;
    // the merge bound (maxMergeDelayMs 300) lets runs complete meanwhile. Stream until three runs
    // completed, or for at most a minute (then the bound is broken and the test fails).
    const deadline = Date.now() + 60_000;
    let n = 0;
    let lastSeq = 0;
    while (completed() < 3 && Date.now() < deadline) {
      lastSeq = await publish(nc, 'steady', { n: n++, ms: 100 });
      await sleep(20);
    }
    const completedWhileStreaming = completed();
    await nc.close();
    expect(completedWhileStreaming).toBeGreaterThanOrEqual(3);
    expect(calls.some((c) => c.sid === 'steady' && c.aborted)).toBe(true); // messages did supersede runs
    // Drained: idle with the last message applied (idle with an empty mailbox alone can come while
    // the last one is still on its way from the stream).
    await waitFor(async () => { const v = await rt.getAgent('steady'); return v.lastSeq >= lastSeq && v.state === 'idle' && v.mailbox.pending === 0; }, 'steady to drain', 60_000);
    const handled = calls.filter((c) => c.sid === 'steady' && c.completed).flatMap((c) => c.bodies.map((b) => (b as { n: number }).n));
    expect(handled).toEqual(Array.from({ length: n }, (_, i) => i)); // every message in exactly one completed run, in order
  });

  it('a plain TCP client speaking the NATS text protocol feeds session s1 and gets its reply on agentry.out.s1', async () => {
    const sock = createConnection(nats.port, '127.0.0.1');
    let buf = '';
    sock.on('data', (d) => { buf += d.toString(); });
    await waitFor(() => buf.startsWith('INFO'), 'server INFO');
    sock.write('CONNECT {"verbose":false,"pedantic":false}\r\nSUB agentry.out.s1 1\r\nPING\r\n');
    await waitFor(() => buf.includes('PONG'), 'PONG');
    sock.write('PUB agentry.in.s1 11\r\nhello world\r\n');
    await waitFor(() => /MSG agentry\.out\.s1 1 \d+\r\n.*hello world/s.test(buf), 'reply on agentry.out.s1');
    sock.destroy();
    const v = await rt.getAgent('s1');
    expect(v.type).toBe('echo'); // created with the default agent type
  });

  it('rejects invalid session ids with a clear error and dead-letters bad input without disturbing other sessions', async () => {
    for (const bad of ['a.b', 'a*', 'x>', 'white space', '', 'x'.repeat(200), 'ctl\u0001']) {
      await expect(rt.sendMessage(bad, 'x')).rejects.toMatchObject({ code: 'INVALID_SESSION_ID' });
    }
    // An over-long id can still arrive over raw NATS: it is dead-lettered with a reason, not crashed on.
    const nc = await natsClient(nats.url);
    const longId = 'y'.repeat(150);
    await publish(nc, longId, 'hi');
    await waitFor(async () => (await store.listDeadLetters({ limit: 100 })).some((d) => d.reason === 'invalid-session-id'), 'invalid id dead letter');
    // Non-JSON payload: delivered as text.
    await publish(nc, 'texty', 'not { json');
    const sub = nc.subscribe('agentry.out.texty', { max: 1 });
    const reply = (async () => { for await (const m of sub) return m.json<{ text: string }>(); return null; })();
    expect((await reply)?.text).toBe('not { json');
    // Published around the mapping, straight to the wrong partition subject: dead-lettered, not delivered.
    const { partitionOf } = await import('../../runtime/index.js');
    const wrong = (partitionOf('texty', 8) + 1) % 8;
    await jetstream(nc).publish(`agentry.part.${wrong}.texty`, 'sneaky');
    await waitFor(async () => (await store.listDeadLetters({ sessionId: 'texty' })).some((d) => d.reason === 'wrong-partition'), 'wrong partition dead letter');
    // A bad header is dead-lettered with the reason.
    await publish(nc, 'texty', 'x', { 'Agentry-Kind': 'bogus' });
    await waitFor(async () => (await store.listDeadLetters({ sessionId: 'texty' })).some((d) => d.reason === 'invalid-header'), 'invalid header dead letter');
    // A throwing handler: its batch is dead-lettered; a neighbour keeps working.
    await rt.createAgent('bad-handler', 'failing');
    await rt.createAgent('good-neighbour', 'fifo');
    await publish(nc, 'bad-handler', { i: -1 });
    for (let i = 0; i < 5; i++) await publish(nc, 'good-neighbour', { i });
    await waitFor(() => seen.get('good-neighbour')?.length === 5, 'neighbour handled');
    const dls = await waitFor(async () => { const d = await store.listDeadLetters({ sessionId: 'bad-handler' }); return d.length ? d : null; }, 'handler dead letter');
    expect(dls[0]).toMatchObject({ reason: 'handler-failed', attempts: 1 });
    expect(dls[0]!.error).toContain('cannot handle');
    expect((await rt.getAgent('bad-handler')).state).toBe('idle');
    await nc.close();
  });
});
