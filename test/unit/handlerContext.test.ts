// The handler context of one run (runtime/host/handlerContext.ts): its functions are made on
// first use (issue 12: no twenty closures per run), yet behave as plain properties — a
// destructured `reply` still buffers its output, and `history` is made from the stored rows.
import { describe, expect, it } from 'vitest';
import { createHandlerContext, type RunHandle } from '../../runtime/host/handlerContext.js';
import type { PendingOutput } from '../../runtime/host/commitRecord.js';
import { historyItemsOf } from '../../runtime/host/liveSession.js';
import type { HistoryEntry } from '../../persistence/types.js';

const entry = (seq: number): HistoryEntry => ({
  sessionId: 's1', seq, kind: 'message', body: { n: seq }, priority: 'normal', from: null, batchId: String(seq), outcome: 'ok', fate: 'handled', at: seq,
});

function make(userState: unknown = { n: 1 }) {
  const outputs: PendingOutput[] = [];
  const run: RunHandle = { runId: 3, ctl: null, aborted: false };
  const rc = createHandlerContext({
    input: { sessionId: 's1', agentType: 't', runId: 3, attempt: 1, batch: [], userState },
    run, outputs, now: () => 42, log: () => { throw new Error('no log in this test'); },
    history: () => historyItemsOf([entry(1), entry(2)]), tenant: null,
    budget: () => { throw new Error('no budget'); }, publishChunk: () => undefined,
  });
  return { ...rc, outputs, run };
}

describe('handler context', () => {
  it('a destructured reply and mail still buffer outputs; each function is made once', () => {
    const { ctx, outputs } = make();
    // Destructuring is what this test is about (user code may do it).
    // eslint-disable-next-line @typescript-eslint/unbound-method
    const { reply, mail } = ctx;
    reply({ text: 'a' });
    mail('other', { x: 1 }, { priority: 'high' });
    // eslint-disable-next-line @typescript-eslint/unbound-method
    expect(ctx.reply).toBe(ctx.reply);
    expect(outputs.map((o) => [o.kind, o.subject, o.headers['Agentry-Kind']])).toEqual([['reply', 'agentry.out.s1', 'reply'], ['mail', 'agentry.in.other', 'mail']]);
    expect(ctx.now()).toBe(42);
    expect(ctx.sleep({ durationMs: 10 })).toBeTruthy();
  });

  it('history is made from the stored rows on first read, with the fields handlers see', () => {
    const { ctx } = make();
    expect(ctx.history).toEqual([
      { seq: 1, kind: 'message', body: { n: 1 }, from: null, batchId: '1', outcome: 'ok', at: 1 },
      { seq: 2, kind: 'message', body: { n: 2 }, from: null, batchId: '2', outcome: 'ok', at: 2 },
    ]);
    expect(ctx.history).toBe(ctx.history);
  });

  it('state: untouched hands on the same object; read or set is copied as JSON; signal is made on demand', () => {
    const start = { n: 1 };
    const a = make(start);
    expect(a.finalState()).toBe(start);
    const b = make(start);
    (b.ctx.state as { n: number }).n = 5;
    expect(b.finalState()).toEqual({ n: 5 });
    expect(start).toEqual({ n: 1 });
    expect(b.run.ctl).toBeNull();
    expect(b.ctx.signal.aborted).toBe(false);
    expect(b.run.ctl).not.toBeNull();
    expect('finalStateOf' in b.ctx).toBe(false);
  });
});
