// Outputs of a committed run survive a NATS outage without a restart (issue 12, outbox). A run
// commits its mail to Postgres while NATS is blackholed: the publish times out and its bytes are
// lost with the connection. Before, the outbox row then waited for the next start of the runtime;
// now the outbox re-flushes stored rows after a failed publish until they go out, so the mail
// arrives once NATS is back, exactly once (Nats-Msg-Id is the row id).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NatsConnection } from '@nats-io/transport-node';
import { defineAgent } from '../../actors/index.js';
import type { Runtime } from '../../runtime/index.js';
import type { Store } from '../../persistence/types.js';
import { PG_URL, dropSchema, natsClient, publish, schemaName, sleep, startNats, startRuntime, waitFor } from '../helpers.js';
import { startTcpProxy, type TcpProxy } from './tcpProxy.js';

let started = false;
let release: () => void = () => undefined;
const gate = new Promise<void>((r) => { release = r; });

const sender = defineAgent<Record<string, never>>({
  type: 'sender',
  onMessage: 'queue',
  initialState: () => ({}),
  async handle(batch, ctx) {
    started = true;
    await gate;
    for (const m of batch) ctx.mail('rcv-1', { n: (m.body as { n: number }).n });
    return undefined;
  },
});

const receiver = defineAgent<{ got: number[] }>({
  type: 'receiver',
  onMessage: 'queue',
  initialState: () => ({ got: [] }),
  handle(batch, ctx) {
    for (const m of batch) if (m.kind === 'mail') ctx.state.got.push((m.body as { n: number }).n);
    return undefined;
  },
});

describe('outbox after a NATS outage', () => {
  let nats: Awaited<ReturnType<typeof startNats>>;
  let proxy: TcpProxy;
  let schema: string;
  let store: Store;
  let rt: Runtime | undefined;
  let nc: NatsConnection;

  beforeAll(async () => {
    nats = await startNats(8);
    proxy = await startTcpProxy(Number(new URL(nats.url).port));
    schema = schemaName('outboxcut');
    const { openStore } = await import('../../persistence/index.js');
    store = openStore({ databaseUrl: PG_URL, schema });
    rt = await startRuntime(`nats://127.0.0.1:${proxy.port}`, { agents: [sender, receiver], store, config: { leaseTtlMs: 30_000 } });
    await rt.createAgent('snd-1', 'sender');
    await rt.createAgent('rcv-1', 'receiver');
    nc = await natsClient(nats.url);
  });

  afterAll(async () => {
    proxy?.restore();
    await rt?.stop();
    await nc?.close();
    await store?.close();
    await proxy?.close();
    await nats?.cleanup();
    if (schema) await dropSchema(schema);
  });

  it('mail committed while NATS was blackholed is delivered once NATS is back, without a restart', async () => {
    await publish(nc, 'snd-1', { n: 7 });
    await waitFor(() => started, 'the sender handler to start', 30_000);
    proxy.blackhole();
    release();
    // The run commits (Postgres is reachable) and its outbox publish goes into the void.
    await waitFor(async () => (await store.pendingOutbox(10)).length > 0, 'the mail stored in the outbox', 30_000, 50);
    await sleep(7_000); // past the JetStream publish timeout (5 s): the publish failed
    expect((await store.pendingOutbox(10)).length).toBe(1);
    proxy.restore();
    const got = async (): Promise<number[]> => {
      const rec = await store.loadSession('rcv-1');
      return (rec?.snapshot as { context?: { userState?: { got?: number[] } } } | undefined)?.context?.userState?.got ?? [];
    };
    await waitFor(async () => (await got()).length > 0, 'the mail to reach the receiver', 60_000, 250);
    await sleep(2_500); // a second copy would show now
    expect(await got()).toEqual([7]);
    await waitFor(async () => (await store.pendingOutbox(10)).length === 0, 'the outbox row deleted', 10_000, 100);
  }, 120_000);
});
