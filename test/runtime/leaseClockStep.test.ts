// A wall clock set back while a node's NATS is gone (an NTP step, a VM resumed and re-synced).
// A lease's age was measured on the wall clock, so an hour's step back made a lease nobody had
// renewed look fresh for an hour: the node kept consuming and went on committing under it,
// long after the server expired it and another node could take the partition (only Postgres'
// epoch check would then stop its commits). Lease ages are now measured on a clock that never
// steps: the lease is suspended within its TTL, whatever the wall clock does. Real nats-server,
// cut off through a TCP proxy.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { LeaseManager } from '../../runtime/leases.js';
import { createLogger } from '../../runtime/logger.js';
import { startTcpProxy, type TcpProxy } from '../durability/tcpProxy.js';
import { startNats, waitFor } from '../helpers.js';
import { recorder } from './leaseRecorder.js';

const TTL = 2000;
const log = createLogger(process.env.TEST_LOG_LEVEL ?? 'silent');

describe('partition leases and a wall clock set back', () => {
  let nats: Awaited<ReturnType<typeof startNats>>;
  let proxy: TcpProxy;
  let nc: NatsConnection;
  beforeAll(async () => {
    nats = await startNats(2);
    proxy = await startTcpProxy(Number(new URL(nats.url).port));
    nc = await connect({ servers: `127.0.0.1:${proxy.port}`, maxReconnectAttempts: -1, reconnectTimeWait: 250 });
  });
  afterAll(async () => {
    proxy?.restore();
    await nc?.close().catch(() => undefined);
    await proxy?.close();
    await nats?.cleanup();
  });

  it('an hour set back while NATS is gone: the unrenewed lease is still suspended within its TTL', async () => {
    const ev = recorder();
    // The wall clock as the process sees it, set back by `back` ms (installed before the lease
    // manager exists: code that kept a reference to Date.now sees the step too).
    const realNow = Date.now;
    let back = 0;
    Date.now = () => realNow() - back;
    const a = new LeaseManager({ nc, bucket: 'STEP1', nodeId: 'a', partitions: 2, ttlMs: TTL, logger: log, events: ev });
    try {
      await a.start();
      expect(a.owned()).toEqual([0, 1]);
      const epoch = a.epochOf(0);
      expect(a.fenceOf(0, epoch)).toBe('ok');
      proxy.blackhole(); // no renewal gets through from here on
      back = 3_600_000;
      // Up to ten TTLs of real time (a loaded machine's stalls): a lease not renewed for most of its
      // TTL must not be usable; with the clock set back an hour, the old code kept it usable throughout.
      await waitFor(() => (a.fenceOf(0, epoch) !== 'ok' && ev.log.includes('suspended 0')) || null, 'the unrenewed lease suspended', 10 * TTL, 50)
        .catch((e: unknown) => { throw new Error(`${(e as Error).message}: fence ${a.fenceOf(0, epoch)} with the wall clock set back (events: ${ev.log.join(', ')})`); });
    } finally {
      Date.now = realNow;
      proxy.restore();
      await a.stop();
    }
  }, 60_000);
});
