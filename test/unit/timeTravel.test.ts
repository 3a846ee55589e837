// Time travel's pure parts (issue 18): what a transition's frame keeps (runtime/transitionFrame.ts),
// how a step is read back as a view (runtime/sessionAt.ts, persistence/sessionStep.ts, and the
// memory store's getSessionStep), and the inspector's models: which step a timeline entry shows,
// the context diff, the sequence view and handler-call numbering.
import { describe, expect, it } from 'vitest';
import type { SessionContext, SessionEvent } from '../../actors/sessionMachine.js';
import type { InboxMessage } from '../../actors/types.js';
import { groupByCall } from '../../inspector/src/handlerCalls.js';
import type { HistoryMessage, Transition } from '../../inspector/src/sessionFeed.js';
import { timelineItems } from '../../inspector/src/timelineItems.js';
import { diffValues, sequenceOf, stepOfItem } from '../../inspector/src/timeTravel.js';
import { createMemoryStore } from '../../persistence/index.js';
import { stepOf } from '../../persistence/sessionStep.js';
import type { CommitRecord, TransitionRecord } from '../../persistence/types.js';
import { maxSeqOf, sessionAtOf, viewAtStep } from '../../runtime/sessionAt.js';
import { FRAME_BODY_MAX, FRAME_PENDING_MAX, cappedBody, frameOf } from '../../runtime/transitionFrame.js';

const msg = (seq: number, body: unknown = { n: seq }, kind: InboxMessage['kind'] = 'message'): InboxMessage => ({ seq, kind, body, priority: 'normal', at: 1000 + seq });

const ctx = (over: Partial<SessionContext> = {}): SessionContext => ({
  sessionId: 's', agentType: 't', limits: {} as SessionContext['limits'], userState: { n: 1 },
  pending: [], deferred: [], batch: [], batchStartedAt: 0, clock: 0, runId: 0, attempt: 0, lastSeq: 0, version: 1,
  completed: null, wake: null, wait: null, sleepRequested: null, lastError: null, ...over,
});

const identity = { agentId: 's', type: 't', tenant: null, policy: 'queue' as const };

describe('transition frames', () => {
  it('keep the event object, the context without bodies or trace, and no user state', () => {
    const event: SessionEvent = { type: 'MESSAGE', message: { ...msg(7, { text: 'hi' }), traceparent: '00-x' }, at: 5 };
    const f = frameOf(event, 'MESSAGE', ctx({
      batch: [msg(7)], pending: [msg(8)], deferred: [msg(6)], lastSeq: 5, runId: 3,
      wake: { until: 99, events: ['bell'], mailPriority: 'high', traceparent: '00-y' },
    }));
    expect(f.event).toEqual({ type: 'MESSAGE', at: 5, message: { seq: 7, kind: 'message', priority: 'normal', at: 1007 } });
    expect(f.context).toEqual({
      lastSeq: 5, runId: 3, attempt: 0, wake: { until: 99, events: ['bell'], mailPriority: 'high' }, wait: null, lastError: null,
      mailbox: { pending: [{ seq: 8, kind: 'message', priority: 'normal', at: 1008 }], running: [{ seq: 7, kind: 'message', priority: 'normal', at: 1007 }], deferred: [{ seq: 6, kind: 'message', priority: 'normal', at: 1006 }], rejected: [] },
    });
    expect(JSON.stringify(f)).not.toContain('traceparent');
    expect(JSON.stringify(f)).not.toContain('"n":');
    expect(JSON.stringify(f)).not.toContain('"text"'); // bodies stay in history rows
  });

  it('name an internal step by its run and keep what a run sent (not its subscriptions)', () => {
    const done = ctx({ runId: 4, completed: { runId: 4, batch: [msg(9)], outcome: 'ok', attempts: 1, error: null } });
    const f = frameOf(null, 'run.done', done, { runId: 4, outputs: [{ kind: 'reply', subject: 'agentry.out.s', body: 'hello' }, { kind: 'subscribe', subject: '', body: 'x.*' }] });
    expect(f.event).toEqual({ type: 'run.done', runId: 4, outcome: 'ok', attempts: 1, seqs: [9] });
    expect(f.outputs).toEqual({ runId: 4, items: [{ kind: 'reply', subject: 'agentry.out.s', body: 'hello' }] });
    expect(frameOf(null, 'create', ctx()).event).toEqual({ type: 'create' });
  });

  it('list the head of a long queue and count the rest (a frame per run: a full list was O(n²) to drain)', () => {
    const pending = Array.from({ length: FRAME_PENDING_MAX + 8 }, (_, i) => msg(100 + i));
    const f = frameOf(null, 'run.done', ctx({ pending, lastSeq: 99 }));
    expect(f.context.mailbox.pending.map((m) => m.seq)).toEqual(pending.slice(0, FRAME_PENDING_MAX).map((m) => m.seq));
    expect(f.context.mailbox.pendingOmitted).toEqual({ count: 8, maxSeq: 100 + FRAME_PENDING_MAX + 7 });
    // Read back: the count is the whole queue, and history reaches its newest message.
    const t: TransitionRecord = { sessionId: 's', at: 1, event: 'run.done', from: 'active.running', to: 'idle', frame: f };
    expect(viewAtStep(identity, t, f, undefined)?.mailbox.pending).toBe(FRAME_PENDING_MAX + 8);
    expect(maxSeqOf(f)).toBe(100 + FRAME_PENDING_MAX + 7);
    // A short queue is listed whole, with nothing omitted.
    expect(frameOf(null, 'run.done', ctx({ pending: [msg(5)] })).context.mailbox.pendingOmitted).toBeUndefined();
  });

  it('cap a long body to a preview', () => {
    expect(cappedBody('short')).toBe('short');
    expect(cappedBody({ a: 1 })).toEqual({ a: 1 });
    const long = cappedBody({ text: 'x'.repeat(FRAME_BODY_MAX * 2) }) as { truncated: boolean; preview: string };
    expect(long.truncated).toBe(true);
    expect(long.preview).toHaveLength(FRAME_BODY_MAX);
  });
});

describe('a step read back', () => {
  const frame = frameOf(null, 'run.done', ctx({ lastSeq: 12, deferred: [msg(14)], wait: { event: null, replyFrom: null, timeoutAt: 50, waitpoint: { id: 'wp', schema: {}, hasDefault: false, default: null, tags: ['t'] } } }));
  const t: TransitionRecord = { id: 7, sessionId: 's', at: 40, event: 'run.done', from: 'active.running', to: 'waiting' };

  it('is a getAgent-shaped view, never live', () => {
    expect(viewAtStep(identity, t, frame, { value: { notes: ['a'] } })).toMatchObject({
      agentId: 's', state: 'waiting', stateValue: 'waiting', userState: { notes: ['a'] }, lastSeq: 12, live: false, updatedAt: 40,
      wait: { timeoutAt: 50, waitpoint: { id: 'wp', tags: ['t'] } }, mailbox: { pending: 0, running: 0, rejected: 0, deferred: [{ seq: 14 }] },
    });
    expect(viewAtStep(identity, { ...t, to: 'active.running' }, frame, undefined)).toMatchObject({ state: 'active', stateValue: 'active.running', userState: null });
    expect(viewAtStep(identity, t, null, undefined)).toBeNull();
    expect(maxSeqOf(frame)).toBe(14);
    expect(maxSeqOf(null)).toBe(0);
  });

  it('takes the newest user state at or before the step, and the one before the previous step', () => {
    const prev: TransitionRecord = { ...t, id: 5, to: 'active.running' };
    const s = stepOf(t, frame, { transition: prev, frame }, [{ value: 'u6', transitionId: 6 }, { value: 'u2', transitionId: 2 }]);
    expect(s.userState).toEqual({ value: 'u6', transitionId: 6 });
    expect(s.previousUserState).toEqual({ value: 'u2', transitionId: 2 });
    const at = sessionAtOf(identity, s, []);
    expect(at.agent?.userState).toBe('u6');
    expect(at.previous?.agent?.userState).toBe('u2');
    expect(at.userStateRecorded).toBe(true);
    expect(sessionAtOf(identity, stepOf(t, frame, null, []), []).userStateRecorded).toBe(false);
  });

  it('the memory store keeps frames and user states and reads a step as the SQL stores do', async () => {
    const store = createMemoryStore();
    const rec = (version: number, transitions: TransitionRecord[]): CommitRecord => ({
      sessionId: 's', type: 't', status: 'idle', snapshot: { value: 'idle', context: {} }, lastSeq: 0, expectedVersion: version - 1, version,
      partition: 0, ownerEpoch: 0, wakeAt: null, wakeEvents: [], wakePriority: null, history: [], transitions, outbox: [], deadLetters: [],
    } as unknown as CommitRecord);
    const live = { notes: ['a'] };
    await store.commit([rec(1, [{ sessionId: 's', at: 1, event: 'create', from: '', to: 'idle', frame, userState: live }])]);
    live.notes.push('mutated after commit');
    await store.commit([rec(2, [{ sessionId: 's', at: 2, event: 'MESSAGE', from: 'idle', to: 'active.running', frame }])]);
    const [t1, t2] = await store.getTransitions('s');
    expect(t1).not.toHaveProperty('frame');
    expect((await store.getTransitions('s', { frames: true }))[1]!.frame).toEqual(frame);
    const step = await store.getSessionStep('s', t2!.id!);
    expect(step?.userState).toEqual({ value: { notes: ['a'] }, transitionId: t1!.id });
    expect(step?.previous?.transition.id).toBe(t1!.id);
    expect(await store.getSessionStep('s', 999)).toBeNull();
    expect(await store.getSessionStep('other', t2!.id!)).toBeNull();
  });
});

describe('inspector time-travel models', () => {
  const transitions: Transition[] = [
    { id: 1, at: 100, event: 'create', from: '', to: 'idle' },
    { id: 2, at: 200, event: 'MESSAGE', from: 'idle', to: 'active.running', frame: { event: { type: 'MESSAGE' }, context: { runId: 1, mailbox: { running: [{ seq: 11, kind: 'message' }] } } } } as Transition,
    { id: 3, at: 300, event: 'run.done', from: 'active.running', to: 'sleeping', frame: { event: { type: 'run.done' }, context: { runId: 1, mailbox: { running: [] } }, outputs: { runId: 1, items: [{ kind: 'reply', subject: 'agentry.out.s', body: 'ok' }] } } } as Transition,
  ];
  const history: HistoryMessage[] = [
    { seq: 12, kind: 'message', body: 'later', priority: 'normal', from: null, batchId: '3', outcome: 'ok', fate: 'handled', at: 350 },
    { seq: 11, kind: 'message', body: 'hi', priority: 'normal', from: null, batchId: '1', outcome: 'ok', fate: 'handled', at: 150 },
  ];

  it('a timeline entry shows the newest stored transition at or before it', () => {
    const items = timelineItems(transitions, history);
    const msg12 = items.findIndex((i) => i.seq === 12);
    expect(stepOfItem(items, msg12)).toEqual({ transition: 3, until: 350, index: msg12 + 1 });
    const msg11 = items.findIndex((i) => i.seq === 11);
    expect(stepOfItem(items, msg11)).toEqual({ transition: 1, until: 150, index: msg11 + 1 });
    expect(stepOfItem(timelineItems([{ at: 1, event: 'x', from: 'idle', to: 'active' }], []), 0)).toBeNull();
  });

  it('diffs two contexts by path', () => {
    expect(diffValues({ a: 1, b: { c: [1, 2] }, d: 'x' }, { a: 1, b: { c: [1, 2, 3] }, e: null })).toEqual([
      { path: 'b.c.2', kind: 'added', after: 3 },
      { path: 'd', kind: 'removed', before: 'x' },
      { path: 'e', kind: 'added', after: null },
    ]);
    expect(diffValues({ s: 'idle' }, { s: 'active' })).toEqual([{ path: 's', kind: 'changed', before: 'idle', after: 'active' }]);
    expect(diffValues(null, { a: 1 })).toEqual([{ path: '(root)', kind: 'changed', before: null, after: { a: 1 } }]);
    expect(diffValues({ x: [1] }, { x: [1] })).toEqual([]);
  });

  it('orders the sequence: message in, handler call, output out, rest', () => {
    const rows = sequenceOf(history, transitions);
    expect(rows.map((r) => r.kind)).toEqual(['in', 'call', 'out', 'state', 'in']);
    expect(rows[1]).toMatchObject({ kind: 'call', number: 1, runId: 1, seqs: [11] });
    expect(rows[2]).toMatchObject({ kind: 'out', body: 'ok', runId: 1 });
  });

  it('numbers handler calls 1, 2, 3 from the oldest, whatever their run ids', () => {
    const calls = groupByCall([
      { ...history[0]!, batchId: '5' }, { ...history[1]!, batchId: '3' }, { ...history[1]!, seq: 9, batchId: '1' },
    ]);
    expect(calls.map((c) => [c.number, c.batchId])).toEqual([[3, '5'], [2, '3'], [1, '1']]);
  });
});
