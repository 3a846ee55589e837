// A partition feed restarting its consumer (after a NATS reconnect) confirms its lease first
// (`LeaseManager.confirm`). Chaos seed 11 (2026-11-28, a nats-server restart) found the lease
// suspended while that confirmation was on its way: the feed was paused (`suspended`), then the
// confirmation succeeded and cleared the suspension without a `resumed` event — the restart
// expects to consume again itself, but it saw the pause and stopped. The lease was usable and
// renewed, the feed paused, and nothing resumed it: two partitions handled nothing for 45 s,
// until the next fault took their leases away. Here, against a real NATS, a confirmation is sent
// and, before its answer can arrive (the node's clock having moved past 90 % of the TTL since the
// last renewal), the lease check of the next renewal tick runs (driven at once, as a late tick
// would): the lease is suspended while the confirmation is on its way. The confirmation succeeds, and a `resumed`
// must follow the suspension.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NatsConnection } from '@nats-io/transport-node';
import { LeaseManager } from '../../runtime/leases.js';
import { createLogger } from '../../runtime/logger.js';
import { natsClient, startNats, waitFor } from '../helpers.js';
import { recorder } from './leaseRecorder.js';

const TTL = 3000;
const log = createLogger(process.env.TEST_LOG_LEVEL ?? 'silent');

describe('a lease confirmed while suspended', () => {
  let nats: Awaited<ReturnType<typeof startNats>>;
  let nc: NatsConnection;
  beforeAll(async () => {
    nats = await startNats(2);
    nc = await natsClient(nats.url);
  });
  afterAll(async () => {
    await nc?.close().catch(() => undefined);
    await nats?.cleanup();
  });

  it('emits `resumed` when the confirmation clears the suspension, so the paused feed consumes again', async () => {
    const ev = recorder();
    let skew = 0; // the node's clock, moved on below (the fake clock of this test)
    const lm = new LeaseManager({ nc, bucket: 'CONFIRM1', nodeId: 'a', partitions: 1, ttlMs: TTL, logger: log, events: ev, now: () => Date.now() + skew });
    await lm.start();
    try {
      expect(lm.owned()).toEqual([0]);
      const epoch = lm.epochOf(0);
      skew = TTL; // the node's clock moves on: its last renewal looks a TTL old
      const confirmed = lm.confirm(0); // a feed restart's confirmation, on its way
      (lm as unknown as { expireStale(): void }).expireStale(); // the renewal tick's check suspends the lease meanwhile
      expect(ev.log).toContain('suspended 0');
      expect(await confirmed).toBe(true);
      expect(lm.fenceOf(0, epoch)).toBe('ok');
      // The feed paused at `suspended 0` consumes again only when it hears `resumed 0`.
      await waitFor(() => ev.log.lastIndexOf('resumed 0') > ev.log.lastIndexOf('suspended 0') || null,
        `a resumed after the suspension (events: ${ev.log.join(', ')})`, 15_000, 50);
      expect(ev.log.filter((e) => e.startsWith('released'))).toEqual([]);
    } finally {
      await lm.stop();
    }
  }, 90_000);
});
