// Commit coalescing: the record a session submits after several changes merged while its
// previous commit was in flight. Pure functions, real statechart snapshots (no store).
import { describe, expect, it } from 'vitest';
import { createActor } from 'xstate';
import { DEFAULT_LIMITS, withRunner, type CompletedRun, type InboxMessage } from '../../actors/index.js';
import { addCompletedRun, commitRecordOf, newPendingCommit } from '../../runtime/host/commitRecord.js';

const msg = (seq: number, body: unknown): InboxMessage => ({ seq, kind: 'message', body, priority: 'normal', at: seq });
const run = (runId: number, seqs: number[], outcome: CompletedRun['outcome'] = 'ok'): CompletedRun => ({
  runId, batch: seqs.map((q) => msg(q, `m${q}`)), outcome, attempts: 1, error: outcome === 'ok' ? null : { message: 'boom', code: 'HANDLER', terminal: false },
});

function snapshot() {
  const actor = createActor(withRunner((input) => Promise.resolve({ userState: input.userState, next: { type: 'idle' }, finishedAt: 0 })), {
    input: { sessionId: 's1', agentType: 't', limits: DEFAULT_LIMITS, userState: { n: 1 }, at: 0 },
  });
  actor.start();
  return actor.getSnapshot();
}

describe('commit record (coalescing)', () => {
  it('merges runs in order: history and outbox concatenated, outbox ids name the submitted version, last snapshot wins', () => {
    const first = snapshot();
    const p = newPendingCommit(first, 7);
    addCompletedRun(p, 's1', run(1, [1]), [{ kind: 'reply', subject: 'agentry.out.s1', headers: {}, body: 'r1' }], 100);
    addCompletedRun(p, 's1', run(2, [2, 3]), [
      { kind: 'mail', subject: 'agentry.in.s2', headers: {}, body: { hi: 1 } },
      { kind: 'subscribe', subject: '', headers: {}, body: 'orders.*' },
    ], 101);
    const last = { ...first, context: { ...first.context, lastSeq: 3, userState: { n: 3 } } };
    p.snap = last;
    const rec = commitRecordOf(p, { id: 's1', type: 't', partition: 4 }, 5, ['boot']);
    expect(rec.history.map((h) => [h.seq, h.batchId])).toEqual([[1, '1'], [2, '2'], [3, '2']]);
    expect(rec.outbox.map((o) => [o.id, o.body])).toEqual([['s1:5:0', '"r1"'], ['s1:5:1', '{"hi":1}']]);
    expect(rec.subscribe).toEqual(['orders.*']); // the agent's own subscriptions only on version 1
    expect(rec.lastSeq).toBe(3);
    expect((rec.snapshot as { context: { userState: unknown } }).context.userState).toEqual({ n: 3 });
    expect(rec.ownerEpoch).toBe(7);
    expect(commitRecordOf(p, { id: 's1', type: 't', partition: 4 }, 1, ['boot']).subscribe).toEqual(['boot', 'orders.*']);
  });

  it('keeps a failed run as one dead letter with its batch range and drops its outputs', () => {
    const p = newPendingCommit(snapshot(), 1);
    addCompletedRun(p, 's1', run(3, [8, 9], 'dead-letter'), [{ kind: 'reply', subject: 'agentry.out.s1', headers: {}, body: 'never' }], 5);
    expect(p.outbox).toEqual([]);
    expect(p.deadLetters.map((d) => [d.id, d.reason, d.error])).toEqual([['s1:8-9', 'handler-failed', 'boom']]);
    expect(p.history.map((h) => h.outcome)).toEqual(['dead-letter', 'dead-letter']);
  });
});
