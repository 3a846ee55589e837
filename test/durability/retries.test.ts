// Retries and dead letters: a handler that fails twice then succeeds is applied once after
// three attempts spaced by at least the configured backoff; a TerminalError is never retried;
// a handler that always fails leaves exactly one dead letter (error, attempts, payload, and a
// notice on agentry.dlq.<id>) and the session idle; replaying it delivers the batch again,
// once, and marks the dead letter replayed. Postgres and PGlite.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NatsConnection } from '@nats-io/transport-node';
import { defineAgent, TerminalError, type InboxMessage } from '../../actors/index.js';
import type { Store } from '../../persistence/types.js';
import type { Runtime } from '../../runtime/index.js';
import { natsClient, startNats, startRuntime, waitFor } from '../helpers.js';
import { storeBackends, type StoreBackend } from './backends.js';

const BASE_MS = 200;

describe.each(storeBackends('retries'))('retries and dead letters on %s', (name, makeBackend) => {
  let nats: Awaited<ReturnType<typeof startNats>>;
  let backend: StoreBackend;
  let store: Store;
  let rt: Runtime;
  let nc: NatsConnection;

  // Module-level bookkeeping the handlers write to (the test's stand-in for an external system).
  const attempts = new Map<string, { attempt: number; at: number }[]>();
  let doomedHeals = false;
  const record = (sid: string, batch: readonly InboxMessage[], attempt: number): string => {
    const key = `${sid}:${batch.map((m) => m.seq).join(',')}`;
    attempts.set(key, [...(attempts.get(key) ?? []), { attempt, at: Date.now() }]);
    return key;
  };

  const flaky = defineAgent<{ applied: unknown[] }>({
    type: 'flaky',
    onMessage: 'queue',
    maxAttempts: 5,
    retryBaseMs: BASE_MS,
    retryCapMs: 10_000,
    initialState: () => ({ applied: [] }),
    handle(batch, ctx) {
      const key = record(ctx.sessionId, batch, ctx.attempt);
      if (attempts.get(key)!.length <= 2) throw new Error(`transient failure ${attempts.get(key)!.length}`);
      ctx.state.applied.push(...batch.map((m) => m.body));
      return undefined;
    },
  });

  const terminal = defineAgent({
    type: 'terminal',
    maxAttempts: 5,
    retryBaseMs: 50,
    handle(batch, ctx) {
      record(ctx.sessionId, batch, ctx.attempt);
      throw new TerminalError('this input can never work');
    },
  });

  const doomed = defineAgent<{ applied: unknown[] }>({
    type: 'doomed',
    onMessage: 'queue',
    maxAttempts: 3,
    retryBaseMs: 50,
    retryCapMs: 1000,
    initialState: () => ({ applied: [] }),
    handle(batch, ctx) {
      record(ctx.sessionId, batch, ctx.attempt);
      if (!doomedHeals) throw new Error(`upstream said no to ${JSON.stringify(batch.map((m) => m.body))}`);
      ctx.state.applied.push(...batch.map((m) => m.body));
      return undefined;
    },
  });

  beforeAll(async () => {
    nats = await startNats(8);
    backend = makeBackend();
    store = backend.open();
    rt = await startRuntime(nats.url, { agents: [flaky, terminal, doomed], store });
    nc = await natsClient(nats.url);
  });

  /** The live view runs ahead of the store by one group commit: wait for the durable state. */
  const committed = (sid: string, seq: number) =>
    waitFor(async () => ((await store.loadSession(sid))?.lastSeq ?? 0) >= seq, `${sid} to commit seq ${seq}`);

  afterAll(async () => {
    await nc?.close();
    await rt?.stop();
    await store?.close();
    await nats?.cleanup();
    await backend?.cleanup();
  });

  it('fails twice then succeeds: applied once, after 3 attempts spaced ≥ base and ≥ 2 × base', async () => {
    await rt.createAgent('flaky-1', 'flaky');
    const { seq } = await rt.sendMessage('flaky-1', { order: 42 });
    const v = await waitFor(async () => { const x = await rt.getAgent('flaky-1'); return x.lastSeq === seq && x.state === 'idle' ? x : null; }, 'the third attempt to commit');
    expect(v.userState).toEqual({ applied: [{ order: 42 }] });
    expect(v.lastError).toBeNull();
    const tries = attempts.get(`flaky-1:${seq}`)!;
    expect(tries.map((a) => a.attempt)).toEqual([1, 2, 3]);
    const gaps = [tries[1]!.at - tries[0]!.at, tries[2]!.at - tries[1]!.at];
    console.log(`[retries ${name}] backoff gaps ${JSON.stringify(gaps)} ms (base ${BASE_MS})`);
    expect(gaps[0]).toBeGreaterThanOrEqual(BASE_MS);
    expect(gaps[1]).toBeGreaterThanOrEqual(2 * BASE_MS);
    await committed('flaky-1', seq);
    expect(await store.loadSession('flaky-1')).toMatchObject({ lastSeq: seq, status: 'idle', snapshot: { context: { userState: { applied: [{ order: 42 }] } } } });
    const hist = await rt.getHistory('flaky-1');
    expect(hist).toHaveLength(1);
    expect(hist[0]).toMatchObject({ seq, body: { order: 42 }, outcome: 'ok' });
    expect(await rt.listDeadLetters({ sessionId: 'flaky-1' })).toEqual([]);
  });

  it('a TerminalError is dead-lettered after one attempt, never retried', async () => {
    await rt.createAgent('terminal-1', 'terminal');
    const { seq } = await rt.sendMessage('terminal-1', { bad: true });
    const [dl] = await waitFor(async () => { const d = await rt.listDeadLetters({ sessionId: 'terminal-1' }); return d.length ? d : null; }, 'the dead letter');
    expect(dl).toMatchObject({ reason: 'handler-failed', attempts: 1, error: 'this input can never work' });
    expect(attempts.get(`terminal-1:${seq}`)).toHaveLength(1);
  });

  it('always fails: one dead letter with error, attempts and payload; replay delivers it once and marks it', async () => {
    await rt.createAgent('doomed-1', 'doomed');
    const dlqNotices: unknown[] = [];
    const sub = nc.subscribe('agentry.dlq.doomed-1');
    void (async () => { for await (const m of sub) dlqNotices.push(m.json()); })();
    await nc.flush();

    const { seq } = await rt.sendMessage('doomed-1', { charge: 'card-7' }, { priority: 'high', from: 'billing' });
    const [dl] = await waitFor(async () => { const d = await rt.listDeadLetters({ sessionId: 'doomed-1' }); return d.length ? d : null; }, 'the dead letter');
    expect(dl).toMatchObject({ id: `doomed-1:${seq}-${seq}`, sessionId: 'doomed-1', reason: 'handler-failed', attempts: 3, replayedAt: null });
    expect(dl!.error).toContain('upstream said no to [{"charge":"card-7"}]');
    expect(dl!.payload).toEqual([expect.objectContaining({ seq, kind: 'message', body: { charge: 'card-7' }, priority: 'high', from: 'billing' })]);
    expect(attempts.get(`doomed-1:${seq}`)!.map((a) => a.attempt)).toEqual([1, 2, 3]);
    const v = await rt.getAgent('doomed-1');
    expect(v).toMatchObject({ state: 'idle', lastSeq: seq, userState: { applied: [] } });
    expect(v.lastError?.message).toContain('upstream said no');
    await committed('doomed-1', seq);
    expect((await rt.getHistory('doomed-1'))[0]).toMatchObject({ seq, outcome: 'dead-letter' });
    await waitFor(() => dlqNotices.length > 0, 'the notice on agentry.dlq.doomed-1');
    expect(dlqNotices[0]).toMatchObject({ id: dl!.id, attempts: 3 });
    // Exactly one dead letter, in the store too.
    expect(await store.listDeadLetters({ sessionId: 'doomed-1' })).toHaveLength(1);

    doomedHeals = true;
    expect(await rt.replayDeadLetter(dl!.id)).toEqual({ published: 1, duplicates: 0 });
    // A second replay publishes with the same message ids: JetStream drops it, and the answer says so.
    expect(await rt.replayDeadLetter(dl!.id)).toEqual({ published: 0, duplicates: 1 });
    // A marker sent after both replays: once it is handled, anything the replays put in the inbox was too.
    const marker = await rt.sendMessage('doomed-1', { marker: true });
    await committed('doomed-1', marker.seq);
    const after = await rt.getAgent('doomed-1');
    expect(after.userState).toEqual({ applied: [{ charge: 'card-7' }, { marker: true }] });
    const replayed = await store.getDeadLetter(dl!.id);
    expect(replayed?.replayedAt).toEqual(expect.any(Number));
    // The replayed message carries the original kind, priority and sender.
    const hist = await rt.getHistory('doomed-1');
    expect(hist.find((h) => (h.body as { charge?: string }).charge && h.outcome === 'ok')).toMatchObject({ kind: 'message', priority: 'high', from: 'billing' });
    expect(await rt.listDeadLetters({ sessionId: 'doomed-1' })).toHaveLength(1);
    sub.unsubscribe();
  });
});
