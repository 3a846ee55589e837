// A reply committed while the node's NATS connection is down. Replies go out on core NATS
// (`agentry.out.<id>`) from the outbox, after the commit; a core publish has no acknowledgement.
// nats.js (3.4) clears a connection's outbound buffer at every reconnect attempt, so a publish
// made while the connection was down never left the process — and the outbox, taking the
// publish call's return for success, deleted the row: the reply was lost for good (found by
// helper hcut, 2026-11-29). Now a core row is not published while the connection is down, and is
// deleted only once a flush confirms the server has it; otherwise the retry sweep sends it.
// Real nats-server (the node's connections through a TCP proxy that refuses) and Postgres.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NatsConnection } from '@nats-io/transport-node';
import { defineAgent } from '../../actors/index.js';
import { openStore } from '../../persistence/index.js';
import type { Store } from '../../persistence/types.js';
import type { Runtime } from '../../runtime/index.js';
import { startTcpProxy, type TcpProxy } from './tcpProxy.js';
import { PG_URL, dropSchema, natsClient, publish, schemaName, sleep, startNats, startRuntime, waitFor } from '../helpers.js';

let release: () => void = () => {};
const gate = new Promise<void>((r) => { release = r; });
let started = false;

const replier = defineAgent({
  type: 'cut-replier',
  onMessage: 'queue',
  async handle(batch, ctx) {
    started = true;
    await gate;
    for (const m of batch) ctx.reply({ echo: (m.body as { i: number }).i });
  },
});

describe('a reply committed while NATS is cut off', () => {
  let nats: Awaited<ReturnType<typeof startNats>>;
  let proxy: TcpProxy;
  let direct: NatsConnection;
  let store: Store;
  let rt: Runtime;
  const schema = schemaName('replycut');

  beforeAll(async () => {
    nats = await startNats();
    proxy = await startTcpProxy(Number(new URL(nats.url).port));
    direct = await natsClient(nats.url);
    store = openStore({ databaseUrl: PG_URL, schema });
    rt = await startRuntime(`nats://127.0.0.1:${proxy.port}`, { agents: [replier], store });
  }, 30_000);
  afterAll(async () => {
    release();
    proxy?.restore();
    await rt?.stop();
    await store?.close();
    await direct?.close();
    await proxy?.close();
    await nats?.cleanup();
    await dropSchema(schema);
  }, 60_000);

  it('reaches its subscriber once the connection is back', async () => {
    const got: string[] = [];
    const sub = direct.subscribe('agentry.out.rc-1', { callback: (_e, m) => { got.push(m.string()); } });
    await direct.flush();
    await rt.createAgent('rc-1', 'cut-replier');
    const seq = await publish(direct, 'rc-1', { i: 1 });
    await waitFor(() => started, 'the turn running');

    proxy.cut(); // every connection of the node reset, new ones refused
    await waitFor(() => !rt.transport.isConnected() || null, 'the node to see its connection down', 10_000, 20);
    release(); // the turn ends and commits (Postgres is fine); its reply goes to the outbox
    await waitFor(async () => ((await store.loadSession('rc-1'))?.lastSeq ?? 0) >= seq || null, 'the turn committed', 20_000, 50);
    await sleep(1_000);
    proxy.restore();

    await waitFor(() => got.length > 0 || null, 'the reply', 30_000, 100);
    expect(got.map((b) => JSON.parse(b) as unknown)).toEqual([{ echo: 1 }]);
    sub.unsubscribe();
  }, 90_000);
});
