// Partition leases against a real nats-server KV (issue 11, item 2): renewal on its own timer,
// suspension when a renewal is late (a stalled or paused process), resumption when the lease's
// compare-and-set still holds, loss when another node took it. The clock each manager reads is
// shifted by the test to stand for a stall; KV, TTLs and revisions are the server's own.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { LeaseManager, type LeaseEvents } from '../../runtime/leases.js';
import { createLogger } from '../../runtime/logger.js';
import { natsClient, startNats, waitFor } from '../helpers.js';

const TTL = 3000;
import { recorder } from './leaseRecorder.js';
const log = createLogger(process.env.TEST_LOG_LEVEL ?? 'silent');


describe('partition leases', () => {
  let nats: Awaited<ReturnType<typeof startNats>>;
  let nc: NatsConnection;
  beforeAll(async () => { nats = await startNats(2); nc = await natsClient(nats.url); });
  afterAll(async () => { await nc?.close(); await nats?.cleanup(); });

  it('a late renewal suspends the lease (commits wait) and an intact CAS resumes it: nothing is released', async () => {
    let skew = 0;
    const ev = recorder();
    const a = new LeaseManager({ nc, bucket: 'L1', nodeId: 'a', partitions: 2, ttlMs: TTL, logger: log, events: ev, now: () => Date.now() + skew });
    await a.start();
    expect(a.owned()).toEqual([0, 1]);
    const epoch = a.epochOf(0);
    expect(a.fenceOf(0, epoch)).toBe('ok');
    skew = TTL; // as if the event loop had stalled for a whole TTL since the last renewal
    await waitFor(() => ev.log.includes('suspended 0') && ev.log.includes('resumed 0'), 'suspend, then resume');
    expect(a.fenceOf(0, epoch)).toBe('ok');
    expect(a.epochOf(0)).toBe(epoch); // same lease, same epoch: no handler has to run twice
    expect(ev.log.filter((e) => e.startsWith('released'))).toEqual([]);
    await a.stop();
    expect(ev.log.filter((e) => e.startsWith('released')).sort()).toEqual(['released 0 graceful', 'released 1 graceful']);
  });

  it('a lease taken by another node while this one was stalled is lost, and the old epoch is fenced', async () => {
    let skew = 0;
    const ev = recorder();
    const a = new LeaseManager({ nc, bucket: 'L2', nodeId: 'a', partitions: 2, ttlMs: TTL, logger: log, events: ev, now: () => Date.now() + skew });
    await a.start();
    const epoch = a.epochOf(1);
    // Another node takes partition 1 (as it would after the key expired): a new revision.
    const kv = await new Kvm(nc).open('L2');
    await kv.delete('part.1');
    const taken = await kv.create('part.1', JSON.stringify({ node: 'b' }));
    expect(taken).toBeGreaterThan(epoch);
    skew = TTL;
    await waitFor(() => ev.log.includes('released 1 lost'), 'partition 1 released as lost');
    expect(a.fenceOf(1, epoch)).toBe('lost');
    expect(a.owns(1)).toBe(false);
    // Partition 0 was nobody else's: it came back.
    await waitFor(() => a.fenceOf(0, a.epochOf(0)) === 'ok', 'partition 0 resumed');
    await a.stop();
  });

  it('renewal is not held up by a slow takeover: a partition start that takes longer than the TTL keeps the others alive', async () => {
    const ev = recorder();
    let slow = true;
    const events: LeaseEvents = {
      ...ev,
      acquired: async (p, e) => { ev.log.push(`acquired ${p}@${e}`); if (p === 1 && slow) { slow = false; await new Promise((r) => setTimeout(r, TTL * 2)); } },
    };
    const a = new LeaseManager({ nc, bucket: 'L3', nodeId: 'a', partitions: 2, ttlMs: TTL, logger: log, events });
    const started = a.start();
    await waitFor(() => ev.log.some((e) => e.startsWith('acquired 1')), 'the slow start began');
    // While partition 1 takes 2 TTLs to start, partition 0's lease is renewed on its own timer.
    await new Promise((r) => setTimeout(r, TTL * 1.5));
    expect(a.fenceOf(0, a.epochOf(0))).toBe('ok');
    expect(ev.log.filter((e) => e.startsWith('suspended') || e.startsWith('released'))).toEqual([]);
    await started;
    await a.stop();
  });
});
