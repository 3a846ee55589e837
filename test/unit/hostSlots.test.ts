// The session host's two admission schemes, alone (runtime/host/activeSlots.ts, liveSlots.ts):
// who may run a handler now, and which sessions may stay in memory. Real XState actors of the
// session statechart stand in for live sessions (quiescence reads their snapshot).
import { describe, expect, it, vi } from 'vitest';
import { createActor } from 'xstate';
import { sessionMachine } from '../../actors/sessionMachine.js';
import { ActiveSlots } from '../../runtime/host/activeSlots.js';
import type { LiveSession } from '../../runtime/host/liveSession.js';
import { EVICT_SCAN, LiveSlots } from '../../runtime/host/liveSlots.js';

describe('ActiveSlots', () => {
  it('bounds active sessions overall and per tenant; queued work runs as slots free, tenants in turn', () => {
    const slots = new ActiveSlots(() => ({ maxActiveSessions: 3, maxActivePerTenant: 2 }));
    const ran: string[] = [];
    slots.delta('A', 1);
    slots.delta('A', 1);
    expect(slots.hasCapacity()).toBe(true);
    expect(slots.hasCapacity('A')).toBe(false); // A is at its own bound
    expect(slots.hasCapacity('B')).toBe(true);
    for (let i = 0; i < 3; i++) slots.enqueue('normal', i, () => { ran.push(`A${i}`); slots.delta('A', 1); }, 'A');
    for (let i = 0; i < 3; i++) slots.enqueue('normal', 10 + i, () => { ran.push(`B${i}`); slots.delta('B', 1); }, 'B');
    slots.pump();
    expect(ran).toEqual(['B0']); // A's lane is skipped while A is at its bound; B takes the free slot
    expect(slots.activeCount).toBe(3);
    slots.delta('A', -1);
    slots.pump();
    expect(ran).toEqual(['B0', 'A0']);
    slots.delta('B', -1);
    slots.delta('A', -1);
    slots.pump();
    expect(ran).toEqual(['B0', 'A0', 'B1', 'A1']); // round robin between the tenants
    expect(slots.waiting).toBe(2);
    expect(Object.fromEntries(slots.tenantLoad().active)).toEqual({ A: 2, B: 1 });
  });

  it('a due wake holds a slot while its session loads; within a lane, urgent first, then oldest', () => {
    const slots = new ActiveSlots(() => ({ maxActiveSessions: 1, maxActivePerTenant: 0 }));
    slots.reserveWake();
    expect(slots.hasCapacity()).toBe(false);
    const ran: string[] = [];
    slots.enqueue('normal', 1, () => { ran.push('old'); });
    slots.enqueue('low', 0, () => { ran.push('low'); });
    slots.enqueue('urgent', 5, () => { ran.push('urgent'); });
    slots.pump();
    expect(ran).toEqual([]);
    slots.unreserveWake();
    slots.pump(); // nothing becomes active here, so every entry runs
    expect(ran).toEqual(['urgent', 'old', 'low']);
  });
});

/** A live-session record around a real actor, with the fields quiescence reads. */
function live(id: string): LiveSession {
  const actor = createActor(sessionMachine, {
    input: { sessionId: id, agentType: 't', userState: {}, at: 0, limits: { policy: 'queue', maxMerge: 1, maxMergeDelayMs: 0, maxAttempts: 1, retryBaseMs: 0, retryCapMs: 0 } },
  } as never);
  actor.start();
  return {
    id, type: 't', partition: 0, agentVersion: 1, actor: actor, log: null as never, acks: new Map(), outputs: new Map(), historyView: [], seenEvents: [],
    maxEnqueuedSeq: 0, committedLastSeq: 0, storeVersion: 0, submittedVersion: 0, lastCompletedRunId: 0, lastPath: 'idle', sending: null, lastRunId: 0,
    transitions: [], open: null, wakeHold: false, run: null, chain: Promise.resolve(), inflight: 0, lastActivity: Date.now(), updatedAt: null, broken: false, pins: 0,
    held: [], queued: false, expired: new Map(),
  };
}

describe('LiveSlots', () => {
  function make(max: number): { slots: LiveSlots; stopped: string[] } {
    const stopped: string[] = [];
    const slots = new LiveSlots({ maxLiveSessions: () => max, idleTimeoutMs: () => 60_000, stop: (s) => { stopped.push(s.id); s.actor.stop(); }, evicted: () => undefined });
    return { slots, stopped };
  }

  it('evicts the least recently used quiescent session for a hydration; never a pinned, busy or unacked one', async () => {
    const { slots, stopped } = make(3);
    const [a, b, c] = ['a', 'b', 'c'].map(live) as [LiveSession, LiveSession, LiveSession];
    for (const s of [a, b, c]) slots.live.set(s.id, s);
    slots.pin(a); // a hydration has not handed it its work yet
    b.acks.set(1, null as never); // holds an unacked message
    slots.touch(c); // c is the most recently used, but the only quiescent one
    await slots.admit();
    expect(stopped).toEqual(['c']);
    expect([...slots.live.keys()]).toEqual(['a', 'b']);
    slots.release();
  });

  it('a hydration waits (FIFO) while nothing can be evicted, and gets the slot an unpin frees', async () => {
    const { slots, stopped } = make(1);
    const a = live('a');
    slots.live.set('a', slots.pin(a));
    const order: string[] = [];
    const first = slots.admit().then(() => { order.push('first'); });
    const second = slots.admit().then(() => { order.push('second'); });
    await new Promise((r) => setImmediate(r));
    expect(order).toEqual([]);
    slots.unpin(a); // quiescent now: the first waiter evicts it and takes the slot
    await first;
    expect(stopped).toEqual(['a']);
    expect(order).toEqual(['first']);
    slots.release(); // the first gives its slot back (its session was not made): the second gets it
    await second;
    expect(order).toEqual(['first', 'second']);
  });

  it('passivates only sessions idle past the timeout, and a stopping node sends waiters away', async () => {
    const { slots, stopped } = make(1);
    const old = live('old');
    old.lastActivity = Date.now() - 120_000;
    slots.live.set('old', old);
    slots.pin(old);
    slots.passivateIdle();
    expect(stopped).toEqual([]); // pinned
    const waiting = slots.admit();
    slots.stopping = true;
    slots.wakeAll();
    await expect(waiting).rejects.toThrow(/shutting down/);
    slots.unpin(old);
    slots.passivateIdle();
    expect(stopped).toEqual(['old']);
  });

  it(`an eviction attempt looks at ${EVICT_SCAN} sessions at most per turn, goes on where it stopped, and finds a quiescent one deeper in later turns`, async () => {
    const n = EVICT_SCAN * 4;
    const { slots, stopped } = make(n);
    const all = Array.from({ length: n }, (_, i) => live(`s${i}`));
    for (const s of all) slots.live.set(s.id, s);
    for (const s of all.slice(0, n - 1)) slots.pin(s); // busy: woken sessions not settled yet
    // Quiescence checks per event-loop turn (the old scan looked at all of them at once, on every attempt).
    const perTurn: number[] = [0];
    const quiescent = slots.quiescent.bind(slots);
    slots.quiescent = (x: LiveSession): boolean => { perTurn[perTurn.length - 1]!++; return quiescent(x); };
    let done = false;
    const got = slots.admit().then(() => { done = true; });
    for (let i = 0; i < 10 && !done; i++) { perTurn.push(0); await new Promise((r) => setImmediate(r)); }
    await got;
    expect(stopped).toEqual([`s${n - 1}`]);
    expect(Math.max(...perTurn)).toBeLessThanOrEqual(EVICT_SCAN + 1);
    expect(perTurn.reduce((a, b) => a + b, 0)).toBe(n); // each session looked at once
    slots.release();
  });

  it('with every session busy it stops looking after one round (no spinning) and looks again when one is unpinned', async () => {
    const n = EVICT_SCAN + 44;
    const { slots, stopped } = make(n);
    const all = Array.from({ length: n }, (_, i) => live(`b${i}`));
    for (const s of all) slots.live.set(s.id, slots.pin(s));
    const check = vi.spyOn(slots, 'quiescent');
    let done = false;
    const got = slots.admit().then(() => { done = true; });
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    const afterRound = check.mock.calls.length;
    expect(afterRound).toBeLessThanOrEqual(n + EVICT_SCAN);
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
    expect(check.mock.calls.length).toBe(afterRound); // waiting, not spinning
    expect(done).toBe(false);
    const last = [...slots.live.values()].at(-1)!; // the far end from where the next attempt starts
    slots.unpin(last);
    await got;
    expect(stopped).toEqual([last.id]);
    slots.release();
  });

  it('after a round that found every session busy, a change is checked alone: a still-busy one wakes no waiter, a freed one is evicted without a walk', async () => {
    const n = EVICT_SCAN * 4;
    const { slots, stopped } = make(n);
    const all = Array.from({ length: n }, (_, i) => live(`c${i}`));
    for (const s of all) slots.live.set(s.id, slots.pin(s));
    slots.pin(all[7]!); // pinned twice: its first unpin leaves it busy
    const check = vi.spyOn(slots, 'quiescent');
    let done = false;
    const got = slots.admit().then(() => { done = true; });
    for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
    expect(done).toBe(false);
    const afterRound = check.mock.calls.length;
    slots.unpin(all[7]!); // still pinned once: busy
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    expect(check.mock.calls.length - afterRound).toBe(1); // that session alone, and no walk
    expect(done).toBe(false);
    slots.unpin(all[2 * EVICT_SCAN]!); // freed, far from the hand
    await got;
    expect(stopped).toEqual([`c${2 * EVICT_SCAN}`]);
    expect(check.mock.calls.length - afterRound).toBeLessThanOrEqual(3); // the two unpins and the eviction's check
    slots.release();
  });
});
