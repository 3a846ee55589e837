// The event router acks an event only once the inbox stored every recipient's copy. Here the
// inbox refuses part of a fan-out (its stream is made to hold at most 20 messages, discard new):
// the route fails, the event is routed again after its nak, the copies already stored are
// de-duplicated by their msg id, and once the inbox takes them every subscriber has handled the
// event exactly once. A router that acked the event after sending its copies without waiting
// for every acknowledgement would lose the refused ones for good. Real nats-server + Postgres.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstreamManager } from '@nats-io/jetstream';
import { pino } from 'pino';
import { defineAgent } from '../../actors/defineAgent.js';
import { natsClient, startStack, waitFor, type Stack } from '../helpers.js';

const SUBSCRIBERS = 300;
const handled = new Map<string, number>();

const sub = defineAgent({
  type: 'refused-sub',
  onMessage: 'queue',
  subscribe: ['refuse.*'],
  handle(batch, ctx) {
    for (const m of batch) if (m.kind === 'event') handled.set(ctx.sessionId, (handled.get(ctx.sessionId) ?? 0) + 1);
  },
});

describe('event routing when the inbox refuses part of a fan-out', () => {
  let stack: Stack;
  const warnings: string[] = [];
  beforeAll(async () => {
    const logger = pino({ level: 'warn' }, { write(line: string) { warnings.push(line); } });
    stack = await startStack('evrefused', { agents: [sub], logger });
  }, 60_000);
  afterAll(async () => { await stack?.stop(); });

  it('routes the event again until every copy is stored; each subscriber handles it once', async () => {
    const { rt } = stack;
    const ids = Array.from({ length: SUBSCRIBERS }, (_, i) => `rr-${i}`);
    for (let i = 0; i < ids.length; i += 50) await Promise.all(ids.slice(i, i + 50).map((id) => rt.createAgent(id, 'refused-sub')));

    const nc = await natsClient(stack.nats.url);
    try {
      const jsm = await jetstreamManager(nc);
      const stream = rt.transport.inboxStream;
      const cfg = (await jsm.streams.info(stream)).config;
      await jsm.streams.update(stream, { ...cfg, max_msgs: 20 });
      const r = await rt.publishEvent('refuse.now', { n: 1 });
      expect(r.recipients).toBe(SUBSCRIBERS);
      const refused = (): boolean => warnings.some((l) => l.includes('event routing failed'));
      await waitFor(() => refused() || null, 'a refused route', 15_000).catch(() => null); // asserted below
      await jsm.streams.update(stream, { ...cfg, max_msgs: -1 });
      await waitFor(() => ids.every((id) => handled.get(id) === 1) || null, `every subscriber to handle the event (${[...handled.values()].filter((n) => n === 1).length} did)`, 60_000);
      // Nothing arrives twice after the re-routes.
      await new Promise((res) => setTimeout(res, 1_500));
      expect(ids.filter((id) => handled.get(id) !== 1)).toEqual([]);
      expect(refused()).toBe(true); // the inbox did refuse part of the fan-out: the re-route was exercised
    } finally {
      await nc.close();
    }
  }, 180_000);
});
