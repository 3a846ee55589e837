// Handoffs wait for no poll (issue 14): a node that joins gets its share, and a node that leaves
// gracefully hands over its partitions, as soon as the bucket says so. The TTL here is 10 minutes,
// so the balance timer (every quarter of it: 150 s) cannot be what moves anything within the
// deadlines below; the watch on the lease bucket is. Real nats-server KV.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NatsConnection } from '@nats-io/transport-node';
import { LeaseManager, type LeaseEvents } from '../../runtime/leases.js';
import { createLogger } from '../../runtime/logger.js';
import { natsClient, startNats, waitFor } from '../helpers.js';

const TTL = 600_000;
const log = createLogger(process.env.TEST_LOG_LEVEL ?? 'silent');
const events = (): LeaseEvents => ({ acquired: () => Promise.resolve(), released: () => Promise.resolve() });

describe('lease handoffs', () => {
  let nats: Awaited<ReturnType<typeof startNats>>;
  let nc: NatsConnection;
  beforeAll(async () => { nats = await startNats(2); nc = await natsClient(nats.url); });
  afterAll(async () => { await nc?.close(); await nats?.cleanup(); });

  it('a joining node gets its share, and a leaving one hands over everything, without waiting for the balance timer', async () => {
    const a = new LeaseManager({ nc, bucket: 'H1', nodeId: 'a', partitions: 8, ttlMs: TTL, logger: log, events: events() });
    await a.start();
    expect(a.owned()).toHaveLength(8);
    const b = new LeaseManager({ nc, bucket: 'H1', nodeId: 'b', partitions: 8, ttlMs: TTL, logger: log, events: events() });
    await b.start();
    try {
      // a sees b's heartbeat, releases its surplus (deleting the keys); b sees the deletes and takes them.
      await waitFor(() => a.owned().length === 4 && b.owned().length === 4, 'an even split', 60_000, 50);
      expect([...a.owned(), ...b.owned()].sort((x, y) => x - y)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
      await a.stop(); // graceful: releases and deletes its keys and its node key
      await waitFor(() => b.owned().length === 8, 'b holding every partition', 60_000, 50);
    } finally {
      await a.stop();
      await b.stop();
    }
  }, 180_000);
});
