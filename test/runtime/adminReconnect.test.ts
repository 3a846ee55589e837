// A partition consumer re-created while the admin connection is still reconnecting. nats.js (3.4)
// clears a connection's outbound buffer at every (re)connect attempt: a request sent while the
// connection is down is never sent, and waits out its whole deadline. The runtime restarts every
// feed the moment its data connection is back, and its admin connection (consumers listed,
// deleted, created) reconnects on its own, often a little later: each feed's first API request
// was lost and the feeds held their 4 open slots for the 15 s API deadline before anything
// opened (natsCut with a 6 s lease, 2026-11-29: recovery 17 s after a 5 s cut). Here the restart
// is asked while the connections are cut (as a reconnect of the data connection a moment before
// the admin one does); real nats-server behind a TCP proxy. The restart must not fail: its
// requests wait for the admin connection instead of being lost.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Writable } from 'node:stream';
import pino from 'pino';
import type { NatsConnection } from '@nats-io/transport-node';
import { jetstream, type JsMsg } from '@nats-io/jetstream';
import { createTransport, type Transport } from '../../runtime/transport.js';
import { natsClient, startNats, waitFor } from '../helpers.js';
import { startTcpProxy, type TcpProxy } from '../durability/tcpProxy.js';

describe('a feed restarted while the admin connection reconnects', () => {
  let nats: Awaited<ReturnType<typeof startNats>>;
  let nc: NatsConnection;
  let proxy: TcpProxy;
  beforeAll(async () => {
    nats = await startNats(8);
    nc = await natsClient(nats.url);
    proxy = await startTcpProxy(nats.port);
  });
  afterAll(async () => {
    await nc?.close().catch(() => undefined);
    await proxy?.close();
    await nats?.cleanup();
  });

  it('opens once the admin connection is back: no API request lost, no failed restart', async () => {
    const lines: string[] = [];
    const sink = new Writable({ write(chunk: Buffer, _enc, cb) { lines.push(chunk.toString()); cb(); } });
    const logger = pino({ level: 'warn' }, sink);
    const t: Transport = await createTransport({
      url: `nats://127.0.0.1:${proxy.port}`, partitions: 8, streamPrefix: 'AGENTRY', ackWaitMs: 30_000,
      consumerBuffer: 64, maxPayloadBytes: 1 << 20, logger, name: 'adminre',
    });
    try {
      await t.ensureStreams();
      const got: string[] = [];
      await t.startPartition(0, 1, (_p, m: JsMsg) => { got.push(m.string()); m.ack(); }, { confirm: () => Promise.resolve(true) });
      const js = jetstream(nc);
      await js.publish('agentry.part.0.s1', 'before');
      await waitFor(() => got.includes('before') || null, 'the message before the cut');

      proxy.setMode('refuse'); // every connection of the node reset, new ones refused
      await waitFor(() => !t.isConnected() || null, 'the transport to see the cut');
      t.restartPartition(0, 'restarted while the connections are down');
      await js.publish('agentry.part.0.s1', 'after');
      proxy.setMode('pass');
      await waitFor(() => got.includes('after') || null, 'the message published while the node was cut off', 45_000, 50);
      const failed = lines.filter((l) => l.includes('partition consumer restart failed'));
      expect(failed.map((l) => (JSON.parse(l) as { err?: { message?: string } }).err?.message ?? l), 'restarts that failed (an API request lost while the admin connection was down)').toEqual([]);
    } finally {
      await t.close();
    }
  }, 90_000);
});
