// Messages a tenant's rate deferred survive a NATS outage of their node (issue 17 §3): the node
// reaches NATS through a TCP proxy; a tenant's flood published straight to JetStream is deferred
// by a slow rate; while the node holds deferred messages the proxy refuses and resets every
// connection for a while. The acks of the commits made meanwhile are lost, the feeds restart from
// their ack floor on reconnect and hand every unacked message out again: the deferred ones only
// replace their ack handles, the applied ones are skipped as committed. Every message is applied
// once, in publish order per session. Real nats-server and Postgres. On the code before deferral
// nothing is deferred (the check that the node held deferred messages at the cut fails there).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NatsConnection } from '@nats-io/transport-node';
import { defineAgent } from '../../actors/index.js';
import type { Runtime } from '../../runtime/index.js';
import type { Store } from '../../persistence/types.js';
import { PG_URL, dropSchema, natsClient, publish, schemaName, sleep, startNats, startRuntime, waitFor } from '../helpers.js';
import { startTcpProxy, type TcpProxy } from './tcpProxy.js';

const rec = defineAgent<{ seen: number[] }>({
  type: 'rec',
  onMessage: 'queue',
  initialState: () => ({ seen: [] }),
  handle(batch, ctx) {
    for (const m of batch) ctx.state.seen.push((m.body as { i: number }).i);
    return undefined;
  },
});

const SESSIONS = ['cut-0', 'cut-1'];
const N = 24;

describe('deferred messages across a NATS outage', () => {
  let nats: Awaited<ReturnType<typeof startNats>>;
  let proxy: TcpProxy;
  let schema: string;
  let store: Store;
  let rt: Runtime | undefined;
  let nc: NatsConnection;

  beforeAll(async () => {
    nats = await startNats(8);
    proxy = await startTcpProxy(Number(new URL(nats.url).port));
    schema = schemaName('tratecut');
    const { openStore } = await import('../../persistence/index.js');
    store = openStore({ databaseUrl: PG_URL, schema });
    rt = await startRuntime(`nats://127.0.0.1:${proxy.port}`, {
      agents: [rec], store, config: { leaseTtlMs: 30_000, ackWaitMs: 2000, tenantRatePerSec: 4, tenantBurst: 2 },
    });
    for (const id of SESSIONS) await rt.createAgent(id, 'rec', undefined, { tenant: 'N' });
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

  it('applies every deferred message once, in order, after the connection comes back', async () => {
    const r = rt!;
    const committed = async (id: string): Promise<number[]> => {
      const row = await store.loadSession(id);
      return (row?.snapshot as { context?: { userState?: { seen?: number[] } } } | undefined)?.context?.userState?.seen ?? [];
    };
    const applied = async (): Promise<number> => (await Promise.all(SESSIONS.map(committed))).reduce((n, s) => n + s.length, 0);
    await Promise.all(Array.from({ length: N }, (_, i) => publish(nc, SESSIONS[i % SESSIONS.length]!, { i })));
    await waitFor(async () => (await applied()) >= 2, 'the first messages applied', 60_000, 50);
    expect(await applied(), 'applied before the cut').toBeLessThan(N);
    expect(r.host.tenantDeferred().get('N') ?? 0, 'deferred at the cut').toBeGreaterThan(0);
    proxy.cut();
    await sleep(4_000); // past ack_wait; commits go on (Postgres is there), their acks are lost
    proxy.restore();
    await waitFor(async () => (await applied()) >= N, 'the flood applied after the outage', 90_000, 100);
    await sleep(1_000); // a message applied twice would show by now
    for (let k = 0; k < SESSIONS.length; k++) {
      expect(await committed(SESSIONS[k]!), SESSIONS[k]).toEqual(Array.from({ length: N }, (_, i) => i).filter((i) => i % SESSIONS.length === k));
    }
    expect(await r.listDeadLetters({})).toEqual([]);
  }, 150_000);
});
