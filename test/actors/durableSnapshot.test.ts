// The durable snapshot a commit stores: built in one pass from the live snapshot's fields
// (stampedDurableSnapshotOf) and equal to the two-step form the runtime wrote before (issue 12),
// and a snapshot stored by that earlier code (commit 167ab06) still hydrates and runs.
import { createActor } from 'xstate';
import { describe, expect, it } from 'vitest';
import { defineAgent, durableSnapshotOf, migrateSnapshot, sessionMachine, stamped, stampedDurableSnapshotOf, type SessionContext } from '../../actors/index.js';

/** A session snapshot as commit 167ab06 stored it (one message handled; captured from that build). */
const STORED_BY_167AB06 = {"status":"active","value":"idle","historyValue":{},"context":{"sessionId":"old-1","agentType":"echo","limits":{"policy":"queue","maxMerge":1,"maxMergeDelayMs":0,"maxAttempts":3,"retryBaseMs":10,"retryCapMs":100},"userState":{"turns":1},"pending":[],"deferred":[],"batch":[],"rejected":[],"batchStartedAt":1001,"clock":1002,"runId":1,"attempt":0,"lastSeq":7,"version":1,"completed":null,"wake":null,"wait":null,"sleepRequested":null,"lastError":null},"children":{},"agentry":{"type":"echo","version":1,"machine":"99305ac2"}};

const limits = { policy: 'queue' as const, maxMerge: 1, maxMergeDelayMs: 0, maxAttempts: 3, retryBaseMs: 10, retryCapMs: 100 };
const machine = sessionMachine.provide({ actions: { startRun: () => undefined, cancelRun: () => undefined } });
const msg = (seq: number) => ({ seq, kind: 'message' as const, body: { text: `m${seq}` }, priority: 'normal' as const, at: 1000 + seq });

describe('durable snapshot (issue 12)', () => {
  it('stampedDurableSnapshotOf gives the same JSON, key for key, as stamped(durableSnapshotOf()) in idle, running and sleeping', () => {
    const a = createActor(machine, { input: { sessionId: 's', agentType: 't', userState: { n: 1 }, at: 1, limits } });
    a.start();
    const same = (): void => {
      const snap = a.getSnapshot();
      expect(JSON.stringify(stampedDurableSnapshotOf(snap, 't', 2))).toBe(JSON.stringify(stamped(durableSnapshotOf(snap), 't', 2)));
    };
    same();
    a.send({ type: 'MESSAGE', message: msg(1), at: 1001 });
    expect(a.getSnapshot().value).toEqual({ active: 'running' });
    same();
    a.send({ type: 'RUN_DONE', runId: 1, output: { userState: { n: 2 }, next: { type: 'sleep', wake: { until: 5000, events: ['x'], mailPriority: 'high' } }, finishedAt: 1002 } });
    expect(a.getSnapshot().value).toBe('sleeping');
    same();
    a.stop();
  });

  it('a snapshot stored by the code before issue 12 hydrates, runs a message, and is stored again in the same shape', () => {
    // The runtime's own gate first (hydration migrates every stored snapshot): it takes it as it is.
    const gate = migrateSnapshot('old-1', defineAgent({ type: 'echo', handle: () => undefined }), STORED_BY_167AB06);
    expect(gate).toMatchObject({ ok: true, changed: false });
    const a = createActor(machine, { snapshot: STORED_BY_167AB06 } as never);
    a.start();
    expect(a.getSnapshot().value).toBe('idle');
    expect(a.getSnapshot().context.lastSeq).toBe(7);
    a.send({ type: 'MESSAGE', message: msg(8), at: 2000 });
    expect(a.getSnapshot().context.batch.map((m) => m.seq)).toEqual([8]);
    a.send({ type: 'RUN_DONE', runId: a.getSnapshot().context.runId, output: { userState: { turns: 2 }, next: { type: 'idle' }, finishedAt: 2001 } });
    const ctx: SessionContext = a.getSnapshot().context;
    expect(ctx).toMatchObject({ lastSeq: 8, version: 2, userState: { turns: 2 }, runId: 2 });
    const again = JSON.parse(JSON.stringify(stampedDurableSnapshotOf(a.getSnapshot(), 'echo', 1))) as typeof STORED_BY_167AB06;
    expect(Object.keys(again)).toEqual(Object.keys(STORED_BY_167AB06));
    expect(Object.keys(again.context).sort()).toEqual(Object.keys(STORED_BY_167AB06.context).sort());
    expect(again.agentry).toMatchObject({ type: 'echo', version: 1 }); // its machine hash is the current statechart's
    a.stop();
  });
});
