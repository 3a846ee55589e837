// Partition feeds find their stale consumers by name (CONSUMER.NAMES), never by CONSUMER.LIST:
// the server answers a LIST by counting every consumer's pending messages, a scan of the inbox
// each, so with a backlog every feed start or restart (all of them at once after a NATS
// reconnect) kept the JetStream API busy for minutes, and a node in front of 100k messages
// gave up starting. Real nats-server; the test watches the API requests on the wire.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { AckPolicy, DeliverPolicy, jetstreamManager } from '@nats-io/jetstream';
import { defineAgent } from '../../actors/defineAgent.js';
import type { Runtime } from '../../runtime/runtime.js';
import { natsClient, publish, startNats, startRuntime, waitFor } from '../helpers.js';

const echo = defineAgent({ type: 'echo', handle(batch, ctx) { for (const m of batch) ctx.reply({ got: m.body }); } });

describe('partition consumers are found by name', () => {
  let nats: Awaited<ReturnType<typeof startNats>>;
  let nc: NatsConnection;
  let spy: Subscription;
  const lists: string[] = [];
  const names: string[] = [];
  beforeAll(async () => {
    nats = await startNats(8);
    nc = await natsClient(nats.url);
    spy = nc.subscribe('$JS.API.CONSUMER.>', {
      callback: (_e, m) => {
        if (m.subject.startsWith('$JS.API.CONSUMER.LIST.')) lists.push(m.subject);
        if (m.subject.startsWith('$JS.API.CONSUMER.NAMES.')) names.push(m.subject);
      },
    });
    await nc.flush();
  });
  afterAll(async () => { spy?.unsubscribe(); await nc?.close(); await nats?.cleanup(); });

  it('starting, restarting every feed, and a second node taking over list no consumer state', async () => {
    let rt: Runtime | undefined = await startRuntime(nats.url, { agents: [echo], config: { defaultAgentType: 'echo' } });
    try {
      await nc.flush();
      expect(names.length).toBeGreaterThanOrEqual(8); // one per partition start
      // Every feed restarts (what a NATS reconnect does), and messages still flow.
      for (let p = 0; p < 8; p++) rt.transport.restartPartition(p, 'test');
      const sub = nc.subscribe('agentry.out.cn-1', { max: 1 });
      const got = (async () => { for await (const m of sub) return m.json<{ got: unknown }>(); })();
      await publish(nc, 'cn-1', { n: 1 });
      expect(await got).toEqual({ got: { n: 1 } });
      await waitFor(() => names.length >= 16 || null, 'every restarted feed to look for its stale consumers');
      await rt.stop();
      // A new owner (higher epoch) removes the consumers the previous one left.
      rt = await startRuntime(nats.url, { agents: [echo], config: { defaultAgentType: 'echo' } });
      await nc.flush();
      expect(lists).toEqual([]);
      const jsm = await jetstreamManager(nc);
      const left: string[] = [];
      for await (const ci of jsm.consumers.list(rt.transport.inboxStream)) left.push(ci.name);
      expect(left.filter((n) => n.startsWith('part-'))).toHaveLength(8); // one per partition, the new owner's
    } finally {
      await rt?.stop();
    }
  }, 120_000);

  it("a consumer of someone else's that filters a partition is removed, so the partition's own can start", async () => {
    const jsm = await jetstreamManager(nc);
    // Made while no runtime runs (the stream exists from the test above), in place of the one the
    // last owner left (a work-queue stream takes one consumer per filter).
    for await (const ci of jsm.consumers.list('AGENTRY_INBOX')) if (ci.name.startsWith('part-3-')) await jsm.consumers.delete('AGENTRY_INBOX', ci.name);
    await jsm.consumers.add('AGENTRY_INBOX', {
      durable_name: 'someone-else', filter_subject: 'agentry.part.3.>', ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All,
    });
    const rt = await startRuntime(nats.url, { agents: [echo], config: { defaultAgentType: 'echo' } });
    try {
      const all: string[] = [];
      for await (const ci of jsm.consumers.list(rt.transport.inboxStream)) all.push(ci.name);
      expect(all).not.toContain('someone-else');
      expect(all.filter((n) => n.startsWith('part-3-'))).toHaveLength(1);
    } finally {
      await rt.stop();
    }
  }, 120_000);
});
