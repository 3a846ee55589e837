// maxActiveSessions: 100 simultaneous wakes with 5 slots never run more than 5 handlers at
// once, and urgent wakes overtake the queue (real NATS, real Postgres, real time).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineAgent } from '../../actors/index.js';
import { abortableDelay } from '../../examples/slowWriter.js';
import type { Store } from '../../persistence/types.js';
import type { Runtime } from '../../runtime/index.js';
import { startNats, startStack, type Stack, waitFor, stateOf } from '../helpers.js';

type Nats = Awaited<ReturnType<typeof startNats>>;
let nats: Nats;
let stack: Stack;
let store: Store;
let rt: Runtime;

// Admission test: records concurrency; each run takes 100 ms.
let running = 0;
let maxRunning = 0;
const starts: string[] = [];
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
    try { await abortableDelay(100, ctx.signal); } finally { running--; }
    return undefined;
  },
});

beforeAll(async () => {
  stack = await startStack('admission', { agents: [worker], config: { maxActiveSessions: 5 } });
  ({ nats, store, rt } = stack);
});

afterAll(async () => {
  await stack?.stop();
});

describe('load-based wake', () => {
  it('maxActiveSessions = 5: 100 simultaneous wakes never run more than 5 handlers at once; urgent wakes go first', async () => {
    const at = Date.now() + 2500;
    for (let i = 0; i < 100; i++) await rt.createAgent(`w-${i}`, 'worker');
    for (let i = 0; i < 5; i++) await rt.createAgent(`u-${i}`, 'worker');
    for (let i = 0; i < 100; i++) await rt.sendMessage(`w-${i}`, { sleepUntil: at });
    for (let i = 0; i < 5; i++) await rt.sendMessage(`u-${i}`, { sleepUntil: at + 3_600_000 });
    await waitFor(async () => (await stateOf(rt, 'w-99')) === 'sleeping' && (await stateOf(rt, 'u-4')) === 'sleeping', 'all asleep', 60_000);
    await waitFor(async () => (await store.eventRecipients('go')).length === 5 + 100, 'wake events committed', 60_000);
    starts.length = 0; maxRunning = 0;
    await waitFor(() => starts.length >= 10, 'first time wakes', 20_000, 5);
    // 90 time wakes are queued now; urgent events for the u-* sessions must overtake them.
    for (let i = 0; i < 5; i++) await rt.sendMessage(`u-${i}`, { go: true }, { kind: 'event', eventType: 'go', priority: 'urgent' });
    await waitFor(() => starts.filter((s) => s.startsWith('w-')).length === 100 && starts.filter((s) => s.startsWith('u-')).length >= 5, 'all ran', 60_000);
    expect(maxRunning).toBeLessThanOrEqual(5);
    const lastUrgent = Math.max(...[0, 1, 2, 3, 4].map((i) => starts.indexOf(`u-${i}`)));
    const normalsAfterUrgent = starts.slice(lastUrgent + 1).filter((s) => s.startsWith('w-')).length;
    expect(normalsAfterUrgent).toBeGreaterThan(50); // the urgent ones did not wait behind the queue
    expect(rt.host.stats.heldForCapacity).toBeGreaterThan(0);
  }, 120_000);
});
