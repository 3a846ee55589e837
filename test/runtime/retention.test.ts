// Retention of sessions' stored past (issue 16, §2): an agent type bounds its history and
// transitions; the runtime prunes the sessions its commits touched, in the background, and never
// the newest maxHistory history messages a hydration reads. A type without retention keeps all.
// Real nats-server and Postgres.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineAgent } from '../../actors/index.js';
import { natsClient, publish, startStack, waitFor, type Stack } from '../helpers.js';

const seenInHandler: number[] = [];
const bounded = defineAgent({
  type: 'bounded',
  onMessage: 'queue',
  maxHistory: 2,
  retention: { history: { maxCount: 3 }, transitions: { maxCount: 4 } },
  initialState: () => ({ n: 0 }),
  handle(batch, ctx) {
    ctx.state.n += batch.length;
    seenInHandler.push(ctx.history.length);
    return undefined;
  },
});
const aged = defineAgent({
  type: 'aged',
  onMessage: 'queue',
  maxHistory: 1,
  retention: { history: { maxAgeMs: 300 } },
  initialState: () => ({ n: 0 }),
  handle(batch, ctx) { ctx.state.n += batch.length; return undefined; },
});
const keeper = defineAgent({ type: 'keeper', onMessage: 'queue', initialState: () => ({}), handle: () => undefined });

let stack: Stack;
beforeAll(async () => {
  stack = await startStack('retention', { agents: [bounded, aged, keeper], config: { retentionEveryMs: 100 } });
});
afterAll(async () => { await stack?.stop(); });

describe('retention', () => {
  it('keeps the newest history and transitions of a bounded type, everything of the others', async () => {
    await stack.rt.createAgent('ret-b-1', 'bounded');
    await stack.rt.createAgent('ret-k-1', 'keeper');
    const nc = await natsClient(stack.nats.url);
    try {
      for (let i = 1; i <= 10; i++) {
        await publish(nc, 'ret-b-1', { i });
        await publish(nc, 'ret-k-1', { i });
        // One at a time: a turn sees the history its predecessors committed, so the next one
        // starts after this one's commit (a turn started before it sees one row fewer).
        await waitFor(async () => ((await stack.store.loadSession('ret-b-1'))?.snapshot as { context: { userState: { n: number } } } | undefined)?.context.userState.n === i, `message ${i} committed`, 60_000, 20);
      }
    } finally { await nc.close(); }
    const count = async (sid: string) => (await stack.store.getHistory(sid, { limit: 1000 })).length;
    await waitFor(async () => ((await stack.store.loadSession('ret-b-1'))?.snapshot as { context: { userState: { n: number } } } | undefined)?.context.userState.n === 10, 'ten messages applied', 60_000, 50);
    await waitFor(async () => (await count('ret-k-1')) === 10, 'the keeper\'s ten history rows', 60_000, 50);
    // The bounded session is pruned to 3 history rows (≥ its maxHistory 2) and 4 transitions.
    await waitFor(async () => (await count('ret-b-1')) === 3, 'the bounded history pruned to 3', 60_000, 50);
    await waitFor(async () => (await stack.store.getTransitions('ret-b-1')).length <= 4, 'transitions pruned to 4', 60_000, 50);
    expect((await stack.store.getHistory('ret-b-1', { limit: 10 })).map((e) => (e.body as { i: number }).i)).toEqual([10, 9, 8]);
    expect(await count('ret-k-1')).toBe(10);
    expect((await stack.store.getTransitions('ret-k-1')).length).toBeGreaterThan(4);
    expect(stack.rt.host.retentionCounts.history).toBeGreaterThanOrEqual(7);
    // The handler's own view never shrank below what it had: it always saw up to maxHistory messages.
    expect(Math.max(...seenInHandler)).toBe(2);
  }, 180_000);

  it('an age bound reaches sessions that commit nothing any more (the idle walk)', async () => {
    await stack.rt.createAgent('ret-a-1', 'aged');
    const nc = await natsClient(stack.nats.url);
    try { for (let i = 1; i <= 4; i++) await publish(nc, 'ret-a-1', { i }); } finally { await nc.close(); }
    await waitFor(async () => ((await stack.store.loadSession('ret-a-1'))?.snapshot as { context: { userState: { n: number } } } | undefined)?.context.userState.n === 4, 'four messages applied', 60_000, 50);
    // Its last commit's round found nothing old enough; nothing commits for it again. Only the
    // walk over idle sessions can take it down to its newest message (maxHistory 1).
    await waitFor(async () => (await stack.store.getHistory('ret-a-1', { limit: 100 })).length === 1, 'the idle session pruned to its newest message', 60_000, 50);
    expect((await stack.store.getHistory('ret-a-1', { limit: 10 })).map((e) => (e.body as { i: number }).i)).toEqual([4]);
  }, 180_000);

  it('refuses retention options that are not positive integers, or unknown', () => {
    const handle = (): undefined => undefined;
    expect(() => defineAgent({ type: 'r1', handle, retention: { history: { maxCount: 0 } } })).toThrow(/retention.history.maxCount must be a positive integer/);
    expect(() => defineAgent({ type: 'r2', handle, retention: { transitions: { maxAgeMs: 1.5 } } })).toThrow(/positive integer/);
    expect(() => defineAgent({ type: 'r3', handle, retention: { history: { keep: 3 } as never } })).toThrow(/has no option keep/);
    expect(defineAgent({ type: 'r4', handle, retention: {} }).retention).toBeUndefined();
    expect(defineAgent({ type: 'r5', handle, retention: { history: { maxAgeMs: 60_000 } } }).retention).toEqual({ history: { maxAgeMs: 60_000 } });
  });
});
