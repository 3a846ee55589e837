// A lease confirmation asked while the control connection is down. nats.js (3.4) clears a
// connection's outbound buffer at every (re)connect attempt, so a request made while it is down
// is never sent and only times out. A partition feed restarts (and confirms its lease first) the
// moment the data connection is back, while the control connection, reconnecting on its own, may
// still be down: the confirmation was lost, answered "no answer" (null) after its deadline, and
// the feed backed off and tried again (natsCut runs of 2026-11-29: `could not confirm the
// partition lease (NATS did not answer)` for every feed of the cut node, each time). Real
// nats-server behind a TCP proxy: the confirmation asked during the cut must wait for the
// connection and succeed.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { LeaseManager } from '../../runtime/leases.js';
import { createLogger } from '../../runtime/logger.js';
import { startNats, waitFor } from '../helpers.js';
import { startTcpProxy, type TcpProxy } from '../durability/tcpProxy.js';
import { recorder } from './leaseRecorder.js';

const TTL = 6000;
const log = createLogger(process.env.TEST_LOG_LEVEL ?? 'silent');

describe('a lease confirmed while the control connection is down', () => {
  let nats: Awaited<ReturnType<typeof startNats>>;
  let proxy: TcpProxy;
  let nc: NatsConnection;
  let up = true;
  beforeAll(async () => {
    nats = await startNats(2);
    proxy = await startTcpProxy(nats.port);
    nc = await connect({ servers: `nats://127.0.0.1:${proxy.port}`, maxReconnectAttempts: -1, reconnectTimeWait: 200 });
    void (async () => { for await (const s of nc.status()) { if (s.type === 'disconnect') up = false; if (s.type === 'reconnect') up = true; } })();
  });
  afterAll(async () => {
    await nc?.close().catch(() => undefined);
    await proxy?.close();
    await nats?.cleanup();
  });

  it('waits for the connection and confirms the lease, instead of losing the request', async () => {
    const ev = recorder();
    const lm = new LeaseManager({ nc, bucket: 'CONFIRMRC', nodeId: 'a', partitions: 1, ttlMs: TTL, logger: log, events: ev });
    await lm.start();
    try {
      expect(lm.owned()).toEqual([0]);
      proxy.setMode('refuse');
      await waitFor(() => !up || null, 'the client to see the cut');
      const confirmed = lm.confirm(0); // a feed restart's confirmation, asked while the connection is down
      await new Promise((r) => setTimeout(r, 300)); // a refused connect attempt or two
      proxy.setMode('pass');
      expect(await confirmed).toBe(true);
      expect(ev.log.filter((e) => e.startsWith('released'))).toEqual([]);
    } finally {
      await lm.stop();
    }
  }, 60_000);
});
