// Operator faults on JetStream while the runtime runs: someone deletes the event router's durable
// consumer, or a partition's consumer (`nats consumer rm`). Neither may lose an acknowledged
// message: events published after the delete still reach their subscribers (once each), and a
// partition's messages published after the delete are applied once and in order.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { defineAgent } from '../../actors/defineAgent.js';
import { partitionOf } from '../../runtime/partition.js';
import { ROUTER_MARK, routerAckedThrough, routerMarkOf } from '../../runtime/wakeups.js';
import { natsClient, publish, sleep, startRuntime, startStack, waitFor, type Stack } from '../helpers.js';

const handled = new Map<string, number[]>();

const sub = defineAgent({
  type: 'del-sub',
  onMessage: 'queue',
  subscribe: ['opdel.*'],
  handle(batch, ctx) {
    for (const m of batch) {
      const n = (m.body as { n?: number } | null)?.n ?? -1;
      handled.set(ctx.sessionId, [...(handled.get(ctx.sessionId) ?? []), m.kind === 'event' ? 1000 + n : n]);
    }
  },
});

describe('where a re-created event router resumes', () => {
  // The server reports ack floor 0 until a consumer's first ack; resuming from 1 would route the
  // whole event history (7 days) again, duplicating every event older than the inbox's 2 min window.
  it('before the first ack: the sequence before the first delivery, not the start of the history', () => {
    // Created over 5 stored events ("new only"), 3 delivered since, none acked (nats-server 2.9).
    expect(routerAckedThrough({ ack_floor: { stream_seq: 0 }, delivered: { stream_seq: 8, consumer_seq: 3 }, num_ack_pending: 3 })).toBe(5);
    // Created over 5 stored events, nothing delivered yet.
    expect(routerAckedThrough({ ack_floor: { stream_seq: 0 }, delivered: { stream_seq: 5, consumer_seq: 0 }, num_ack_pending: 0 })).toBe(5);
  });
  it('after acks: the ack floor; everything delivered when nothing awaits an ack', () => {
    expect(routerAckedThrough({ ack_floor: { stream_seq: 6 }, delivered: { stream_seq: 8, consumer_seq: 3 }, num_ack_pending: 2 })).toBe(6);
    expect(routerAckedThrough({ ack_floor: { stream_seq: 6 }, delivered: { stream_seq: 8, consumer_seq: 3 }, num_ack_pending: 0 })).toBe(8);
  });
});

describe('JetStream consumers deleted by an operator while the runtime runs', () => {
  let stack: Stack;
  beforeAll(async () => { stack = await startStack('opdel', { agents: [sub], config: { defaultAgentType: 'del-sub' } }); }, 60_000);
  afterAll(async () => { await stack?.stop(); });

  it('the event router’s consumer: events published afterwards still reach every subscriber once', async () => {
    const { rt } = stack;
    const ids = ['od-1', 'od-2', 'od-3'];
    for (const id of ids) await rt.createAgent(id, 'del-sub');
    await rt.publishEvent('opdel.x', { n: 1 });
    await waitFor(() => ids.every((id) => handled.get(id)?.includes(1001)) || null, 'the first event handled', 30_000);
    const nc = await natsClient(stack.nats.url);
    try {
      const jsm = await jetstreamManager(nc);
      // nats-server 2.9 sometimes deletes the consumer and still answers "unlinkat …: directory not
      // empty" (its file store raced a write into the consumer's directory): the delete happened.
      await jsm.consumers.delete(rt.transport.eventStream, 'router').catch((e: unknown) => {
        if (!String(e).includes('directory not empty')) throw e;
      });
      await rt.publishEvent('opdel.x', { n: 2 });
      await waitFor(() => ids.every((id) => handled.get(id)?.includes(1002)) || null,
        `every subscriber to handle the event published after the delete (${ids.filter((id) => handled.get(id)?.includes(1002)).length} of ${ids.length} did)`, 60_000);
      expect(ids.map((id) => handled.get(id))).toEqual(ids.map(() => [1001, 1002]));
    } finally {
      await nc.close();
    }
  }, 120_000);

  it('a partition’s consumer: messages published afterwards are applied once, in order', async () => {
    const { rt } = stack;
    const sid = 'od-p';
    const nc = await natsClient(stack.nats.url);
    try {
      await publish(nc, sid, { n: 1 });
      await waitFor(() => handled.get(sid)?.includes(1) || null, 'the first message applied', 30_000);
      const jsm = await jetstreamManager(nc);
      const name = rt.transport.consumerName(partitionOf(sid, 8));
      expect(name).not.toBeNull();
      await jsm.consumers.delete(rt.transport.inboxStream, name!);
      for (let n = 2; n <= 20; n++) await publish(nc, sid, { n });
      await waitFor(() => (handled.get(sid)?.length ?? 0) >= 20 || null, `every message applied (${handled.get(sid)?.length ?? 0} of 20)`, 60_000);
      expect(handled.get(sid)).toEqual(Array.from({ length: 20 }, (_, k) => k + 1));
    } finally {
      await nc.close();
    }
  }, 120_000);

  it('the event router’s consumer deleted while every node is down: the restarted runtime routes what was published meanwhile, once', async () => {
    // Before the floor was stored in Postgres, a router consumer missing at start was created
    // "new events only": the events published while it was gone were acked to their producer
    // and never delivered.
    const ids = ['odd-1', 'odd-2'];
    for (const id of ids) await stack.rt.createAgent(id, 'del-sub');
    await stack.rt.publishEvent('opdel.x', { n: 3 });
    await waitFor(() => ids.every((id) => handled.get(id)?.includes(1003)) || null, 'the event before the stop handled', 30_000);
    await stack.rt.stop(); // the last node leaves: it stores the router's floor
    const mark = routerMarkOf(await stack.store.loadMark(`${ROUTER_MARK}:${stack.rt.transport.eventStream}`));
    expect(mark?.seq).toBeGreaterThan(0);
    const nc = await natsClient(stack.nats.url);
    let rt2: Awaited<ReturnType<typeof startRuntime>> | undefined;
    try {
      const jsm = await jetstreamManager(nc);
      await jsm.consumers.delete(stack.rt.transport.eventStream, 'router').catch((e: unknown) => {
        if (!String(e).includes('directory not empty')) throw e;
      });
      // Producers go on publishing events straight to the stream while no node runs.
      const js = jetstream(nc, { timeout: 30_000 });
      for (const n of [4, 5]) await js.publish('agentry.events.opdel.x', JSON.stringify({ n }), { msgID: `odd-ev-${n}` });
      rt2 = await startRuntime(stack.nats.url, { agents: [sub], store: stack.store, config: { defaultAgentType: 'del-sub' } });
      await waitFor(() => ids.every((id) => handled.get(id)?.includes(1005)) || null,
        `every subscriber to handle the events published while no node ran (${ids.filter((id) => handled.get(id)?.includes(1005)).length} of ${ids.length} did)`, 60_000);
      await rt2.publishEvent('opdel.x', { n: 6 });
      await waitFor(() => ids.every((id) => handled.get(id)?.includes(1006)) || null, 'an event after the restart handled', 30_000);
      await sleep(500);
      expect(ids.map((id) => handled.get(id))).toEqual(ids.map(() => [1003, 1004, 1005, 1006]));
    } finally {
      await rt2?.stop();
      await nc.close();
    }
  }, 180_000);
});
