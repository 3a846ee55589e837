// Partition leases when NATS KV answers slowly (an overloaded server, found in a chaos run at load
// ~20: KV answered slower than the lease request deadline for minutes and no node could hold a
// lease). Here every answer of the server reaches the node 1 s late (a TCP proxy holds them back,
// in order), more than the old fixed deadline of a quarter of the 3 s TTL (750 ms). The requests
// themselves are applied at once, so a renewal the node gave up on lands anyway: its next
// compare-and-set fails, and the read that should find its own write timed out as well — the
// node dropped every lease it held and, its node list timing out too, took none again. Now the
// deadline follows the server's answer times (up to half the TTL) and an unanswered read leaves
// the lease suspended, not lost.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Kvm } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { LeaseManager } from '../../runtime/leases.js';
import { createLogger } from '../../runtime/logger.js';
import { startTcpProxy, type TcpProxy } from '../durability/tcpProxy.js';
import { natsClient, startNats, waitFor } from '../helpers.js';

const TTL = 3000;
const DELAY_MS = 1000;
import { recorder } from './leaseRecorder.js';
const log = createLogger(process.env.TEST_LOG_LEVEL ?? 'silent');


describe('partition leases with a slow NATS KV', () => {
  let nats: Awaited<ReturnType<typeof startNats>>;
  let proxy: TcpProxy;
  let slow: NatsConnection;
  let direct: NatsConnection;
  beforeAll(async () => {
    nats = await startNats(2);
    proxy = await startTcpProxy(Number(new URL(nats.url).port));
    slow = await connect({ servers: `127.0.0.1:${proxy.port}`, maxReconnectAttempts: -1, reconnectTimeWait: 250 });
    direct = await natsClient(nats.url);
  });
  afterAll(async () => {
    proxy?.restore();
    await slow?.close().catch(() => undefined);
    await direct?.close();
    await proxy?.close();
    await nats?.cleanup();
  });

  it('keeps the leases it holds, renewing them, while every answer comes 1 s late (a third of the TTL)', async () => {
    const ev = recorder();
    const a = new LeaseManager({ nc: slow, bucket: 'SLOW1', nodeId: 'a', partitions: 2, ttlMs: TTL, logger: log, events: ev });
    await a.start();
    try {
      expect(a.owned()).toEqual([0, 1]);
      const epochs = [a.epochOf(0), a.epochOf(1)];
      proxy.delayAnswers(DELAY_MS);
      // Renewals go on through the slowness: the lease key's revision moves on several times.
      const kv = await new Kvm(direct).open('SLOW1');
      const rev0 = (await kv.get('part.0'))!.revision;
      await waitFor(async () => {
        if (ev.log.some((e) => e.startsWith('released'))) throw new Error(`a lease was dropped: ${ev.log.join(', ')}`);
        return ((await kv.get('part.0'))?.revision ?? 0) >= rev0 + 6 || null;
      }, 'six renewals of partition 0 through the slow server', 60_000, 100);
      expect(ev.log.filter((e) => e.startsWith('released')), `events: ${ev.log.join(', ')}`).toEqual([]);
      expect(a.owned()).toEqual([0, 1]);
      expect([a.epochOf(0), a.epochOf(1)]).toEqual(epochs); // the same leases: no handler runs twice
      await waitFor(() => (a.fenceOf(0, epochs[0]!) === 'ok' && a.fenceOf(1, epochs[1]!) === 'ok') || null, 'both leases usable', 30_000);
      expect(a.requestMs).toBeGreaterThan(TTL / 4);
      expect(a.requestMs).toBeLessThanOrEqual(TTL / 2);
    } finally {
      proxy.restore();
      await a.stop();
    }
  }, 120_000);

  it('takes free partitions while every answer comes 1 s late', async () => {
    const ev = recorder();
    proxy.delayAnswers(DELAY_MS);
    const b = new LeaseManager({ nc: slow, bucket: 'SLOW2', nodeId: 'b', partitions: 2, ttlMs: TTL, logger: log, events: ev });
    try {
      await b.start();
      await waitFor(() => (b.owned().length === 2 && b.fenceOf(0, b.epochOf(0)) === 'ok' && b.fenceOf(1, b.epochOf(1)) === 'ok') || null,
        `both partitions taken and usable through the slow server (owned: ${b.owned().join(',')}; events: ${ev.log.join(', ')})`, 60_000, 50);
    } finally {
      proxy.restore();
      await b.stop();
    }
  }, 120_000);
});
