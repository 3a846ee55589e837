// Unit tests of the pure session statechart: every transition, driven with a fake clock and a
// controllable handler (the handler here is the "LLM" fake; no I/O is involved in the machine).
import { describe, expect, it } from 'vitest';
import { createActor, SimulatedClock } from 'xstate';
import {
  DEFAULT_LIMITS, TerminalError, durableSnapshotOf, snapshotContext, toDurableSnapshot, topState, withRunner,
  type InboxMessage, type RunInput, type RunOutput, type SessionLimits, type NextStep,
} from '../../actors/index.js';

interface Call { input: RunInput; signal: AbortSignal; resolve: (o: { next?: NextStep; userState?: unknown }) => void; reject: (e: unknown) => void }

function harness(limits: Partial<SessionLimits> = {}) {
  const calls: Call[] = [];
  const clock = new SimulatedClock();
  const machine = withRunner((input, signal) => new Promise<RunOutput>((res, rej) => {
    calls.push({
      input, signal,
      resolve: (o) => { res({ userState: o.userState ?? input.userState, next: o.next ?? { type: 'idle' }, finishedAt: clock.now() }); },
      reject: rej,
    });
  }));
  const actor = createActor(machine, {
    clock,
    input: { sessionId: 's1', agentType: 't', limits: { ...DEFAULT_LIMITS, ...limits }, userState: { n: 0 }, at: 0 },
  });
  actor.start();
  let seq = 0;
  const msg = (body: unknown, extra: Partial<InboxMessage> = {}): InboxMessage => ({ seq: ++seq, kind: 'message', body, priority: 'normal', at: clock.now(), ...extra });
  const send = (m: InboxMessage) => { actor.send({ type: 'MESSAGE', message: m, at: clock.now() }); };
  const state = () => topState(actor.getSnapshot().value);
  const ctx = () => actor.getSnapshot().context;
  const flush = () => new Promise((r) => setTimeout(r, 0));
  return { actor, calls, clock, msg, send, state, ctx, flush };
}

describe('session statechart', () => {
  it('idle → active on a message, → idle when the handler returns; lastSeq/version advance', async () => {
    const h = harness();
    expect(h.state()).toBe('idle');
    h.send(h.msg('a'));
    expect(h.state()).toBe('active');
    expect(h.calls).toHaveLength(1);
    h.calls[0]!.resolve({ userState: { n: 1 } });
    await h.flush();
    expect(h.state()).toBe('idle');
    expect(h.ctx().userState).toEqual({ n: 1 });
    expect(h.ctx().lastSeq).toBe(1);
    expect(h.ctx().version).toBe(1);
    expect(h.ctx().completed?.outcome).toBe('ok');
    expect(h.ctx().completed?.batch.map((m) => m.body)).toEqual(['a']);
  });

  it('cancel-and-merge aborts the running handler and re-runs once on both messages', async () => {
    const h = harness({ policy: 'cancel-and-merge' });
    h.send(h.msg('m1'));
    h.clock.increment(50);
    h.send(h.msg('m2'));
    expect(h.calls).toHaveLength(2);
    expect(h.calls[0]!.signal.aborted).toBe(true);
    expect(h.calls[1]!.input.batch.map((m) => m.body)).toEqual(['m1', 'm2']);
    h.calls[1]!.resolve({});
    await h.flush();
    expect(h.ctx().completed?.batch.map((m) => m.body)).toEqual(['m1', 'm2']);
    expect(h.ctx().lastSeq).toBe(2);
    expect(h.state()).toBe('idle');
  });

  it('stops merging after maxMergeDelayMs or maxMerge; later messages run next, in order', async () => {
    const h = harness({ maxMergeDelayMs: 100, maxMerge: 3 });
    h.send(h.msg(1));
    h.clock.increment(150);
    h.send(h.msg(2)); // too late to merge: queued
    expect(h.calls).toHaveLength(1);
    expect(h.calls[0]!.signal.aborted).toBe(false);
    h.calls[0]!.resolve({});
    await h.flush();
    expect(h.state()).toBe('active');
    expect(h.calls[1]!.input.batch.map((m) => m.body)).toEqual([2]);
    h.send(h.msg(3)); h.send(h.msg(4)); h.send(h.msg(5)); // merge up to 3 in the batch
    expect(h.calls.at(-1)!.input.batch.map((m) => m.body)).toEqual([2, 3, 4]);
    h.calls.at(-1)!.resolve({});
    await h.flush();
    expect(h.calls.at(-1)!.input.batch.map((m) => m.body)).toEqual([5]);
  });

  it('queue policy runs one message per call, FIFO', async () => {
    const h = harness({ policy: 'queue' });
    for (const b of ['a', 'b', 'c']) h.send(h.msg(b));
    const seen: unknown[] = [];
    for (let i = 0; i < 3; i++) {
      const c = h.calls[i]!;
      seen.push(...c.input.batch.map((m) => m.body));
      expect(c.signal.aborted).toBe(false);
      c.resolve({});
      await h.flush();
    }
    expect(seen).toEqual(['a', 'b', 'c']);
    expect(h.state()).toBe('idle');
  });

  it('retries with backoff then dead-letters; a TerminalError is not retried', async () => {
    const h = harness({ maxAttempts: 3, retryBaseMs: 100, retryCapMs: 1000 });
    h.send(h.msg('x'));
    h.calls[0]!.reject(new Error('boom'));
    await h.flush();
    expect(h.actor.getSnapshot().value).toEqual({ active: 'retrying' });
    h.clock.increment(99);
    expect(h.calls).toHaveLength(1);
    h.clock.increment(1);
    expect(h.calls).toHaveLength(2);
    expect(h.calls[1]!.input.attempt).toBe(2);
    h.calls[1]!.reject(new Error('boom'));
    await h.flush();
    h.clock.increment(200);
    h.calls[2]!.reject(new Error('boom3'));
    await h.flush();
    expect(h.state()).toBe('idle');
    expect(h.ctx().completed).toMatchObject({ outcome: 'dead-letter', attempts: 3, error: { message: 'boom3' } });
    h.send(h.msg('y'));
    h.calls[3]!.reject(new TerminalError('no'));
    await h.flush();
    expect(h.ctx().completed).toMatchObject({ outcome: 'dead-letter', attempts: 1, error: { terminal: true } });
  });

  it('sleeps from the handler, defers mail below the threshold, wakes on high mail with both in order', async () => {
    const h = harness();
    h.send(h.msg('go'));
    h.calls[0]!.resolve({ next: { type: 'sleep', wake: { until: 10_000, events: ['system_alert'], mailPriority: 'high' } } });
    await h.flush();
    expect(h.state()).toBe('sleeping');
    const v = h.ctx().version;
    h.send(h.msg('low mail', { kind: 'mail', priority: 'normal', from: 'x' }));
    expect(h.state()).toBe('sleeping');
    expect(h.ctx().deferred).toHaveLength(1);
    expect(h.ctx().version).toBe(v + 1);
    expect(h.ctx().lastSeq).toBe(2);
    h.send(h.msg('high mail', { kind: 'mail', priority: 'high', from: 'x' }));
    expect(h.state()).toBe('active');
    expect(h.calls[1]!.input.batch.map((m) => m.kind === 'wake' ? `wake:${(m.body as { reason: string }).reason}` : m.body)).toEqual(['wake:mail', 'low mail', 'high mail']);
  });

  it('wakes on a listed event or an urgent one, and by WAKE; SLEEP/WAKE/STOP from outside', async () => {
    const h = harness({ policy: 'queue' });
    h.actor.send({ type: 'SLEEP', wake: { until: null, events: ['system_alert'], mailPriority: null }, at: 0 });
    expect(h.state()).toBe('sleeping');
    h.send(h.msg('other', { kind: 'event', eventType: 'other' }));
    expect(h.state()).toBe('sleeping');
    h.send(h.msg('alert', { kind: 'event', eventType: 'system_alert' }));
    expect(h.state()).toBe('active');
    expect(h.calls[0]!.input.batch[0]!.kind).toBe('wake');
    for (let i = 0; i < 3; i++) { h.calls[i]!.resolve({}); await h.flush(); }
    expect(h.state()).toBe('idle');
    h.actor.send({ type: 'SLEEP', wake: { until: null, events: [], mailPriority: null }, at: 0 });
    h.send(h.msg('u', { kind: 'event', eventType: 'x', priority: 'urgent' }));
    expect(h.state()).toBe('active');
    h.calls.at(-1)!.resolve({}); await h.flush();
    h.calls.at(-1)!.resolve({}); await h.flush();
    h.actor.send({ type: 'SLEEP', wake: { until: 5, events: [], mailPriority: null }, at: 0 });
    h.actor.send({ type: 'WAKE', reason: 'time', at: 5 });
    expect(h.calls.at(-1)!.input.batch[0]!.body).toEqual({ reason: 'time' });
    h.calls.at(-1)!.resolve({}); await h.flush();
    h.actor.send({ type: 'STOP', at: 6 });
    expect(h.state()).toBe('stopped');
    expect(h.actor.getSnapshot().status).toBe('done');
  });

  it('waitFor resumes with the awaited event first; a timeout arrives as a wake record', async () => {
    const h = harness({ policy: 'queue' });
    h.send(h.msg('q'));
    h.calls[0]!.resolve({ next: { type: 'wait', wait: { event: 'answer', replyFrom: null, timeoutAt: 1000 } } });
    await h.flush();
    expect(h.state()).toBe('waiting');
    h.send(h.msg('unrelated'));
    expect(h.ctx().deferred).toHaveLength(1);
    h.send(h.msg({ a: 42 }, { kind: 'event', eventType: 'answer' }));
    expect(h.calls[1]!.input.batch[0]!.body).toEqual({ a: 42 });
    h.calls[1]!.resolve({});
    await h.flush();
    expect(h.calls[2]!.input.batch[0]!.body).toBe('unrelated'); // deferred, delivered after the resume
    h.calls[2]!.resolve({ next: { type: 'wait', wait: { event: 'answer', replyFrom: null, timeoutAt: 1000 } } });
    await h.flush();
    expect(h.state()).toBe('waiting');
    h.actor.send({ type: 'WAKE', reason: 'timeout', at: 1000 });
    expect(h.calls.at(-1)!.input.batch[0]!.body).toEqual({ reason: 'timeout' });
  });

  it('interrupt ends the run as interrupted, returns to idle and keeps later messages', () => {
    const h = harness({ policy: 'queue' });
    h.send(h.msg('long'));
    h.send(h.msg('next'));
    h.actor.send({ type: 'INTERRUPT', at: 1, reason: 'user pressed stop' });
    expect(h.calls[0]!.signal.aborted).toBe(true);
    expect(h.ctx().completed).toMatchObject({ outcome: 'interrupted' });
    expect(h.calls[1]!.input.batch[0]!.body).toBe('next');
  });

  it('a sleep asked for during a run applies when the run ends, deferring what arrived meanwhile', async () => {
    const h = harness({ policy: 'queue' });
    h.send(h.msg('a'));
    h.actor.send({ type: 'SLEEP', wake: { until: null, events: [], mailPriority: null }, at: 1 });
    h.send(h.msg('b'));
    h.calls[0]!.resolve({});
    await h.flush();
    expect(h.state()).toBe('sleeping');
    expect(h.ctx().deferred.map((m) => m.body)).toEqual(['b']);
    expect(h.ctx().lastSeq).toBe(2);
  });

  it('durable snapshots round-trip through JSON; a mid-run session restores idle with its last committed state', async () => {
    const h = harness();
    h.send(h.msg('a'));
    h.calls[0]!.resolve({ userState: { n: 7 } });
    await h.flush();
    h.send(h.msg('b')); // in flight
    const durable = JSON.parse(JSON.stringify(toDurableSnapshot(h.actor.getPersistedSnapshot()))) as unknown;
    const restoredCalls: unknown[] = [];
    const machine = withRunner((input) => { restoredCalls.push(input); return Promise.resolve({ userState: input.userState, next: { type: 'idle' as const }, finishedAt: 0 }); });
    const restored = createActor(machine, { snapshot: durable as never, input: undefined }).start();
    expect(topState(restored.getSnapshot().value)).toBe('idle');
    expect(snapshotContext(durable).userState).toEqual({ n: 7 });
    expect(restored.getSnapshot().context.pending).toEqual([]);
    expect(restoredCalls).toHaveLength(0); // nothing re-runs on restore: the unacked message is redelivered instead
    restored.send({ type: 'MESSAGE', message: { seq: 2, kind: 'message', body: 'b', priority: 'normal', at: 1 }, at: 1 });
    await new Promise((r) => setTimeout(r, 0));
    expect(restoredCalls).toHaveLength(1);
    expect(topState(restored.getSnapshot().value)).toBe('idle');
    expect(restored.getSnapshot().context.lastSeq).toBe(2);
  });

  it('a session caught in a wake run keeps the wake and the deferred mail durable (not the unacked message); RESUME runs them after a restore', async () => {
    const h = harness({ policy: 'queue' });
    h.send(h.msg('a'));
    h.calls[0]!.resolve({ userState: { n: 1 }, next: { type: 'sleep', wake: { until: 10_000, events: [], mailPriority: null } } });
    await h.flush();
    expect(h.state()).toBe('sleeping');
    h.send(h.msg('b')); h.send(h.msg('c')); // deferred: committed and acked with lastSeq 3
    h.actor.send({ type: 'WAKE', reason: 'time', at: 10_000 });
    expect(h.state()).toBe('active');
    h.send(h.msg('d')); // arrives during the wake run: unacked, redelivered after a crash
    const durable = JSON.parse(JSON.stringify(durableSnapshotOf(h.actor.getSnapshot()))) as { value: unknown; context: { pending: InboxMessage[]; lastSeq: number } };
    expect(durable.value).toBe('idle');
    expect(durable.context.pending.map((m) => (m.kind === 'wake' ? 'wake' : m.body))).toEqual(['wake', 'b', 'c']);
    expect(durable.context.lastSeq).toBe(3);
    expect(JSON.parse(JSON.stringify(toDurableSnapshot(h.actor.getPersistedSnapshot())))).toEqual(durable);

    const batches: unknown[][] = [];
    const machine = withRunner((input) => { batches.push(input.batch.map((m) => (m.kind === 'wake' ? 'wake' : m.body))); return Promise.resolve({ userState: input.userState, next: { type: 'idle' as const }, finishedAt: 0 }); });
    const restored = createActor(machine, { snapshot: durable as never, input: undefined }).start();
    expect(topState(restored.getSnapshot().value)).toBe('idle');
    expect(batches).toEqual([]); // nothing runs by itself on restore
    restored.send({ type: 'RESUME', at: 11_000 });
    for (let i = 0; i < 10 && batches.length < 3; i++) await new Promise((r) => setTimeout(r, 0));
    restored.send({ type: 'MESSAGE', message: { seq: 4, kind: 'message', body: 'd', priority: 'normal', at: 11_000 }, at: 11_000 });
    for (let i = 0; i < 10 && batches.length < 4; i++) await new Promise((r) => setTimeout(r, 0));
    expect(batches).toEqual([['wake'], ['b'], ['c'], ['d']]);
    for (let i = 0; i < 10 && topState(restored.getSnapshot().value) !== 'idle'; i++) await new Promise((r) => setTimeout(r, 0));
    expect(restored.getSnapshot().context.lastSeq).toBe(4);
    expect(topState(restored.getSnapshot().value)).toBe('idle');
    await h.flush();
  });

  it('durableSnapshotOf (built from the snapshot\'s fields) equals the durable form of XState\'s persisted snapshot in every state', async () => {
    const h = harness({ policy: 'queue' });
    const same = () => {
      const a = JSON.parse(JSON.stringify(toDurableSnapshot(h.actor.getPersistedSnapshot()))) as unknown;
      const b = JSON.parse(JSON.stringify(durableSnapshotOf(h.actor.getSnapshot()))) as unknown;
      expect(b).toEqual(a);
    };
    same(); // idle
    h.send(h.msg('a'));
    h.send(h.msg('b'));
    same(); // active, with pending
    h.calls[0]!.resolve({ userState: { n: 1 }, next: { type: 'sleep', wake: { until: 10_000, events: ['x'], mailPriority: 'high' } } });
    await h.flush();
    expect(h.state()).toBe('sleeping');
    same(); // sleeping, with deferred mail
    h.actor.send({ type: 'WAKE', reason: 'time', at: 10_000 });
    same();
    h.actor.send({ type: 'STOP', at: 10_001 });
    same(); // stopped (final)
  });
});

describe('turn policies', () => {
  const bodies = (ms: readonly InboxMessage[] | undefined) => (ms ?? []).map((m) => m.body);
  const settled = (c: { settled?: readonly { message: InboxMessage; fate: string }[] } | null) => (c?.settled ?? []).map((x) => [x.message.body, x.fate]);

  it('queue runs one message per turn, in order; nothing is aborted', async () => {
    const h = harness({ policy: 'queue' });
    h.send(h.msg('a')); h.send(h.msg('b')); h.send(h.msg('c'));
    expect(h.calls).toHaveLength(1);
    for (const want of ['a', 'b', 'c']) {
      const call = h.calls.at(-1)!;
      expect(bodies(call.input.batch)).toEqual([want]);
      expect(call.signal.aborted).toBe(false);
      call.resolve({});
      await h.flush();
    }
    expect(h.state()).toBe('idle');
    expect(h.ctx().lastSeq).toBe(3);
  });

  it('latest aborts the turn, supersedes it and the queued messages, and runs only the newest', async () => {
    const h = harness({ policy: 'latest' });
    h.send(h.msg('a', { policy: 'queue' }));
    h.send(h.msg('b', { policy: 'queue' })); // queued behind a
    h.send(h.msg('c'));
    expect(h.calls[0]!.signal.aborted).toBe(true);
    expect(h.calls).toHaveLength(2);
    expect(bodies(h.calls[1]!.input.batch)).toEqual(['c']);
    // The supersession is a record of its own: a and b settled, lastSeq covers them (not c).
    expect(h.ctx().completed).toMatchObject({ outcome: 'superseded' });
    expect(bodies(h.ctx().completed!.batch)).toEqual(['a']);
    expect(settled(h.ctx().completed)).toEqual([['b', 'superseded']]);
    expect(h.ctx().lastSeq).toBe(2);
    expect(h.ctx().pending).toEqual([]);
    h.calls[1]!.resolve({ userState: { n: 1 } });
    await h.flush();
    expect(h.state()).toBe('idle');
    expect(h.ctx().lastSeq).toBe(3);
    expect(h.ctx().userState).toEqual({ n: 1 });
  });

  it('reject refuses a message while a turn runs, and records the refusal only with the record that settles every older message', async () => {
    const h = harness({ policy: 'queue' });
    h.send(h.msg('a'));
    h.send(h.msg('b'));                       // queued
    h.send(h.msg('c', { policy: 'reject' })); // refused: a runs, b waits
    expect(h.calls).toHaveLength(1);
    expect(h.calls[0]!.signal.aborted).toBe(false);
    expect(bodies(h.ctx().rejected)).toEqual(['c']);
    h.calls[0]!.resolve({});
    await h.flush();
    // a's record must not cover c (seq 3): b (seq 2) is not applied yet.
    expect(bodies(h.ctx().completed!.batch)).toEqual(['a']);
    expect(settled(h.ctx().completed)).toEqual([]);
    expect(h.ctx().lastSeq).toBe(1);
    h.calls[1]!.resolve({});
    await h.flush();
    expect(bodies(h.ctx().completed!.batch)).toEqual(['b']);
    expect(settled(h.ctx().completed)).toEqual([['c', 'rejected']]);
    expect(h.ctx().lastSeq).toBe(3);
    expect(h.ctx().rejected).toEqual([]);
    expect(h.calls).toHaveLength(2); // c never ran
    // Idle: a reject message just runs.
    h.send(h.msg('d', { policy: 'reject' }));
    expect(bodies(h.calls[2]!.input.batch)).toEqual(['d']);
  });

  it('reject: refusals still waiting when the session goes to sleep commit with the deferred messages', async () => {
    const h = harness({ policy: 'queue' });
    h.send(h.msg('a'));
    h.send(h.msg('b'));
    h.send(h.msg('c', { policy: 'reject' }));
    h.calls[0]!.resolve({ next: { type: 'sleep', wake: { until: 99_999, events: [], mailPriority: null } } });
    await h.flush();
    expect(h.state()).toBe('sleeping');
    expect(bodies(h.ctx().deferred)).toEqual(['b']);
    expect(settled(h.ctx().completed)).toEqual([['c', 'rejected']]);
    expect(bodies(h.ctx().completed!.batch)).toEqual(['a']);
    expect(h.ctx().lastSeq).toBe(3);
  });

  it('rollback aborts the turn (its messages rolled back) and runs the new message on the pre-turn state', async () => {
    const h = harness({ policy: 'rollback' });
    h.send(h.msg('a'));
    h.calls[0]!.resolve({ userState: { n: 1 } });
    await h.flush();
    h.send(h.msg('b'));
    h.send(h.msg('c'));
    expect(h.calls[1]!.signal.aborted).toBe(true);
    expect(h.ctx().completed).toMatchObject({ outcome: 'rolled-back' });
    expect(bodies(h.ctx().completed!.batch)).toEqual(['b']);
    expect(h.ctx().lastSeq).toBe(2);
    expect(bodies(h.calls[2]!.input.batch)).toEqual(['c']);
    expect(h.calls[2]!.input.userState).toEqual({ n: 1 }); // the state before b's turn
    h.calls[2]!.resolve({ userState: { n: 2 } });
    await h.flush();
    expect(h.ctx().userState).toEqual({ n: 2 });
    expect(h.ctx().lastSeq).toBe(3);
  });

  it('rollback keeps queued older messages ahead of the new one (FIFO)', async () => {
    const h = harness({ policy: 'queue' });
    h.send(h.msg('a'));
    h.send(h.msg('b'));
    h.send(h.msg('c', { policy: 'rollback' }));
    expect(h.calls[0]!.signal.aborted).toBe(true);
    expect(bodies(h.calls[1]!.input.batch)).toEqual(['b']);
    expect(bodies(h.ctx().pending)).toEqual(['c']);
    h.calls[1]!.resolve({});
    await h.flush();
    expect(bodies(h.calls[2]!.input.batch)).toEqual(['c']);
  });

  it('debounce waits for quiet, restarting the wait on each message, then runs once on all of them', () => {
    const h = harness({ policy: 'debounce', debounceMs: 100, maxMergeDelayMs: 10_000 });
    h.send(h.msg('a'));
    expect(h.actor.getSnapshot().value).toEqual({ active: 'debouncing' });
    h.clock.increment(60);
    h.send(h.msg('b'));
    h.clock.increment(60); // 120 ms after a, 60 after b: still quiet-waiting
    expect(h.calls).toHaveLength(0);
    h.clock.increment(40);
    expect(h.calls).toHaveLength(1);
    expect(bodies(h.calls[0]!.input.batch)).toEqual(['a', 'b']);
    expect(h.actor.getSnapshot().value).toEqual({ active: 'running' });
  });

  it('debounce is bounded by maxMergeDelayMs from the first message', () => {
    const h = harness({ policy: 'debounce', debounceMs: 100, maxMergeDelayMs: 250 });
    h.send(h.msg(1));
    for (let i = 2; i <= 4; i++) { h.clock.increment(80); h.send(h.msg(i)); } // t = 240: still merging
    expect(h.calls).toHaveLength(0);
    h.clock.increment(10); // t = 250: the bound, though the last message came 10 ms ago
    expect(h.calls).toHaveLength(1);
    expect(bodies(h.calls[0]!.input.batch)).toEqual([1, 2, 3, 4]);
  });

  it('debounce: a message during a turn aborts it and waits for quiet again', () => {
    const h = harness({ policy: 'debounce', debounceMs: 100, maxMergeDelayMs: 10_000 });
    h.send(h.msg('a'));
    h.clock.increment(100);
    expect(h.calls).toHaveLength(1);
    h.send(h.msg('b'));
    expect(h.calls[0]!.signal.aborted).toBe(true);
    expect(h.actor.getSnapshot().value).toEqual({ active: 'debouncing' });
    h.clock.increment(100);
    expect(bodies(h.calls[1]!.input.batch)).toEqual(['a', 'b']);
  });

  it('a session in a transient policy state persists as idle with no batch, pending or refusals', async () => {
    const h = harness({ policy: 'queue' });
    h.send(h.msg('a')); h.send(h.msg('b')); h.send(h.msg('c', { policy: 'reject' }));
    const d = durableSnapshotOf(h.actor.getSnapshot()) as { value: unknown; context: { rejected: unknown[]; pending: unknown[] } };
    expect(d.value).toBe('idle');
    expect(d.context.rejected).toEqual([]);
    expect(d.context.pending).toEqual([]);
    const h2 = harness({ policy: 'debounce', debounceMs: 50 });
    h2.send(h2.msg('x'));
    expect((durableSnapshotOf(h2.actor.getSnapshot()) as { value: unknown }).value).toBe('idle');
    await h.flush();
  });
});
