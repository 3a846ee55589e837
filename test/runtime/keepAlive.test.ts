// Messages a node holds unacked while they wait for a handler slot are kept alive (`working()`,
// every ackWait/3, in slices across event-loop turns): none is redelivered however long it waits.
// 1,200 messages to 1,200 sessions with one handler slot and a 1.5 s ack wait, held for several
// ack waits: a keep-alive round that skipped any of them would show as a redelivery (a duplicate
// the host skips), and every message is still handled exactly once. Real nats-server.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NatsConnection } from '@nats-io/transport-node';
import { defineAgent } from '../../actors/index.js';
import { natsClient, publish, sleep, startStack, waitFor, type Stack } from '../helpers.js';

const N = 1_200; // more than two keep-alive slices (500 each)
let gate: () => void = () => undefined;
const opened = new Promise<void>((r) => { gate = r; });
const handled = new Map<string, number>();

const slow = defineAgent({
  type: 'slow',
  async handle(batch, ctx) {
    await opened; // the first turn holds the only slot until the test opens the gate
    handled.set(ctx.sessionId, (handled.get(ctx.sessionId) ?? 0) + batch.length);
    return undefined;
  },
});

let stack: Stack;
let nc: NatsConnection;
beforeAll(async () => {
  stack = await startStack('keepalive', { agents: [slow], config: { defaultAgentType: 'slow', maxActiveSessions: 1, ackWaitMs: 1_500 } });
  nc = await natsClient(stack.nats.url);
});
afterAll(async () => {
  gate();
  await nc?.close();
  await stack?.stop();
});

describe('ack keep-alive', () => {
  it('1,200 held messages outlive several ack waits without one redelivery', async () => {
    for (let i = 0; i < N; i += 100) await Promise.all(Array.from({ length: 100 }, (_, k) => publish(nc, `ka-${i + k}`, { i: i + k })));
    await waitFor(() => stack.rt.host.waitingForSlot() + stack.rt.host.activeCount() >= N - 1 ? true : null, 'all held for the one slot', 60_000);
    await sleep(3 * 1_500 + 500); // three ack waits: without working() every held message would come again
    expect(stack.rt.host.stats.duplicatesSkipped).toBe(0);
    gate();
    await waitFor(() => handled.size === N, 'every session handled', 120_000);
    expect([...handled.values()].every((n) => n === 1)).toBe(true);
    expect(stack.rt.host.stats.duplicatesSkipped).toBe(0);
  }, 240_000);
});
