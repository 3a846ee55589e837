// maxActiveSessions: 100 wakes falling due at the same instant with 5 slots never run more than
// 5 handlers at once, and urgent wakes overtake the queued ones (real NATS, real Postgres; the
// scheduler's clock is a fake one, so the 100 wakes are due together however long it took to put
// 105 sessions to sleep on a busy machine). The handlers hold their slots until the test lets
// them go, so the queue cannot drain before the urgent events are in it: the order of the runs
// after that, not their timing, is what is checked.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineAgent } from '../../actors/index.js';
import type { Store } from '../../persistence/types.js';
import type { Runtime } from '../../runtime/index.js';
import { FakeClock } from '../fakeClock.js';
import { startNats, startStack, type Stack, waitFor, stateOf } from '../helpers.js';

type Nats = Awaited<ReturnType<typeof startNats>>;
let nats: Nats;
let stack: Stack;
let store: Store;
let rt: Runtime;
const clock = new FakeClock(Date.now());

// Records concurrency and the order in which runs start; every run waits for the gate.
let running = 0;
let maxRunning = 0;
const starts: string[] = [];
let openGate: () => void = () => undefined;
const gate = new Promise<void>((r) => { openGate = r; });
const worker = defineAgent({
  type: 'worker',
  onMessage: 'queue',
  async handle(batch, ctx) {
    if (batch[0]?.kind === 'message' && (batch[0].body as { sleepUntil?: number }).sleepUntil !== undefined) {
      return ctx.sleep({ until: (batch[0].body as { sleepUntil: number }).sleepUntil, wakeEvents: ['go'] });
    }
    running++;
    maxRunning = Math.max(maxRunning, running, rt.host.activeCount());
    starts.push(ctx.sessionId);
    try {
      await Promise.race([gate, new Promise((r) => { ctx.signal.addEventListener('abort', r, { once: true }); })]);
    } finally { running--; }
    return undefined;
  },
});

beforeAll(async () => {
  stack = await startStack('admission', { agents: [worker], clock, config: { maxActiveSessions: 5 } });
  ({ nats, store, rt } = stack);
});

afterAll(async () => {
  openGate();
  await stack?.stop();
});

describe('load-based wake', () => {
  it('maxActiveSessions = 5: 100 simultaneous wakes never run more than 5 handlers at once; urgent wakes go first', async () => {
    const at = clock.now() + 10_000;
    for (let i = 0; i < 100; i++) await rt.createAgent(`w-${i}`, 'worker');
    for (let i = 0; i < 5; i++) await rt.createAgent(`u-${i}`, 'worker');
    for (let i = 0; i < 100; i++) await rt.sendMessage(`w-${i}`, { sleepUntil: at });
    for (let i = 0; i < 5; i++) await rt.sendMessage(`u-${i}`, { sleepUntil: at + 3_600_000 });
    await waitFor(async () => (await stateOf(rt, 'w-99')) === 'sleeping' && (await stateOf(rt, 'u-4')) === 'sleeping', 'all asleep', 120_000);
    await waitFor(async () => (await store.eventRecipients('go')).length === 5 + 100, 'wake events committed', 120_000);
    expect(starts).toEqual([]);

    // The 100 time wakes fall due at once: 5 take the slots (and hold them), 95 queue.
    await clock.advanceTo(at);
    await waitFor(() => running === 5 && rt.host.waitingForSlot() === 95, '5 running, 95 queued', 120_000);
    // Urgent events for the u-* sessions join the queue...
    for (let i = 0; i < 5; i++) await rt.sendMessage(`u-${i}`, { go: true }, { kind: 'event', eventType: 'go', priority: 'urgent' });
    await waitFor(() => rt.host.waitingForSlot() === 100, 'the 5 urgent wakes queued too', 120_000);
    expect(starts.filter((s) => s.startsWith('u-'))).toEqual([]);
    // ...and overtake the 95 queued before them once the slots free up.
    openGate();
    // A woken u-* session runs twice (its wake, then the event as the next batch): count sessions.
    await waitFor(() => starts.filter((s) => s.startsWith('w-')).length === 100 && new Set(starts.filter((s) => s.startsWith('u-'))).size === 5, 'all ran', 120_000);
    expect(maxRunning).toBe(5);
    expect(starts.slice(0, 5).every((s) => s.startsWith('w-'))).toBe(true);
    expect(starts.slice(5, 10).sort()).toEqual(['u-0', 'u-1', 'u-2', 'u-3', 'u-4']);
    expect(starts.slice(10).filter((s) => s.startsWith('w-'))).toHaveLength(95);
    expect(rt.host.stats.heldForCapacity).toBeGreaterThanOrEqual(100);
  }, 300_000);
});
