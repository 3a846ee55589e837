// An ambiguous commit: Postgres committed a run (its reply stored in the outbox), but the answer
// never reached the runtime. Its query timeout fired on work that was done, the retry was refused
// (the stored version had moved on), the session was dropped, and the redelivered message was
// rightly skipped as applied; so nothing on the normal path would ever publish that reply. Before
// the outbox sweep it waited in the outbox until some node restarted (35–500 of 15,000 replies in
// the scale-out bench). Now the owner's periodic sweep publishes it. The fault is real: a TCP
// proxy between the runtime and Postgres forwards the commit and drops Postgres' answers.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NatsConnection } from '@nats-io/transport-node';
import { defineAgent } from '../../actors/index.js';
import type { Runtime } from '../../runtime/index.js';
import type { Store } from '../../persistence/types.js';
import { createPgStore } from '../../persistence/pgStore.js';
import { PG_URL, dropSchema, natsClient, publish, schemaName, sleep, startNats, startRuntime, waitFor } from '../helpers.js';
import { startTcpProxy, type TcpProxy } from './tcpProxy.js';

let release: () => void = () => undefined;
const gate = new Promise<void>((r) => { release = r; });
let started = false;

const replier = defineAgent<{ n: number[] }>({
  type: 'replier',
  onMessage: 'queue',
  initialState: () => ({ n: [] }),
  async handle(batch, ctx) {
    for (const m of batch) {
      const n = (m.body as { n: number }).n;
      if (n === 1) { started = true; await gate; }
      ctx.state.n.push(n);
      ctx.reply({ n });
    }
    return undefined;
  },
});

describe('a commit Postgres completed but never answered', () => {
  let nats: Awaited<ReturnType<typeof startNats>>;
  let proxy: TcpProxy;
  let schema: string;
  let direct: Store;
  let rt: Runtime | undefined;
  let nc: NatsConnection;

  beforeAll(async () => {
    nats = await startNats(8);
    schema = schemaName('ambiguous');
    direct = createPgStore({ connectionString: PG_URL, schema });
    await direct.migrate();
    proxy = await startTcpProxy(Number(new URL(PG_URL).port || 5432), new URL(PG_URL).hostname);
    const viaProxy = new URL(PG_URL);
    viaProxy.port = String(proxy.port);
    viaProxy.hostname = '127.0.0.1';
    const store = createPgStore({ connectionString: viaProxy.toString(), schema, queryTimeoutMs: 3_000 });
    rt = await startRuntime(nats.url, { agents: [replier], store, config: { ackWaitMs: 5_000 } });
    await rt.createAgent('amb-1', 'replier');
    nc = await natsClient(nats.url);
  });

  afterAll(async () => {
    proxy?.restore();
    await rt?.stop();
    await nc?.close();
    await direct?.close();
    await proxy?.close();
    await nats?.cleanup();
    if (schema) await dropSchema(schema);
  });

  it('its reply is published by the outbox sweep, once, without a restart', async () => {
    const replies: number[] = [];
    const sub = nc.subscribe('agentry.out.amb-1', { callback: (err, m) => { if (!err) replies.push(m.json<{ n: number }>().n); } });
    await nc.flush();
    await publish(nc, 'amb-1', { n: 1 });
    await waitFor(() => started, 'the handler to start', 30_000);
    proxy.deafen();
    release();
    // Postgres has the commit (read past the proxy); the runtime never hears of it.
    await waitFor(async () => ((await direct.loadSession('amb-1'))?.lastSeq ?? 0) > 0, 'the commit in Postgres', 30_000, 50);
    expect((await direct.pendingOutbox(10)).filter((o) => o.sessionId === 'amb-1')).toHaveLength(1);
    await sleep(4_000); // past the 3 s query timeout: the runtime retries on a connection that cannot answer
    expect(replies).toEqual([]);
    proxy.restore();
    // The retry is refused (stale version), the session re-hydrates, the redelivery is skipped as
    // applied: only the sweep can publish the stored reply now.
    await waitFor(() => replies.length > 0, 'the stranded reply', 90_000, 100);
    await waitFor(async () => (await direct.pendingOutbox(10)).filter((o) => o.sessionId === 'amb-1').length === 0, 'the outbox row deleted', 30_000, 100);
    // Applied once: the session's state holds the message once, and a later message still flows.
    await publish(nc, 'amb-1', { n: 2 });
    await waitFor(() => replies.includes(2), 'the reply to the next message', 30_000, 50);
    const rec = await direct.loadSession('amb-1');
    expect((rec!.snapshot as { context: { userState: { n: number[] } } }).context.userState.n).toEqual([1, 2]);
    expect(replies).toEqual([1, 2]);
    expect(rt!.host.outboxSwept()).toBeGreaterThanOrEqual(1);
    sub.unsubscribe();
  }, 180_000);
});
