// NATS cut under load (issue 11, item 1): the runtime reaches NATS through a TCP proxy that the
// test cuts (refused, then blackholed) while a producer, connected directly, keeps publishing.
// Deliveries in flight on the lost connection are gone; the server redelivers them only after
// the ack wait, behind newer ones. Before the fix a session applied n+1, then skipped n as a
// duplicate: lost for good. Now every message must be applied exactly once, in order, with
// nothing dead-lettered and nothing left unacked in the stream.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { headers as natsHeaders, type NatsConnection } from '@nats-io/transport-node';
import { defineAgent } from '../../actors/index.js';
import type { Runtime } from '../../runtime/index.js';
import type { Store } from '../../persistence/types.js';
import { PG_URL, dropSchema, natsClient, schemaName, sleep, startNats, startRuntime, waitFor } from '../helpers.js';
import { startTcpProxy, type TcpProxy } from './tcpProxy.js';

const SESSIONS = 40;
const PER_SESSION = 60;

const recorder = defineAgent<{ seen: number[] }>({
  type: 'recorder',
  onMessage: 'cancel-and-merge',
  maxMergeDelayMs: 200,
  initialState: () => ({ seen: [] }),
  async handle(batch, ctx) {
    await new Promise((r) => setTimeout(r, 2));
    for (const m of batch) ctx.state.seen.push((m.body as { i: number }).i);
    return undefined;
  },
});

describe('NATS cut under load', () => {
  let nats: Awaited<ReturnType<typeof startNats>>;
  let proxy: TcpProxy;
  let schema: string;
  let store: Store;
  let rt: Runtime | undefined;
  let nc: NatsConnection;

  beforeAll(async () => {
    nats = await startNats(8);
    proxy = await startTcpProxy(Number(new URL(nats.url).port));
    schema = schemaName('natscut');
    const { openStore } = await import('../../persistence/index.js');
    store = openStore({ databaseUrl: PG_URL, schema });
    rt = await startRuntime(`nats://127.0.0.1:${proxy.port}`, {
      agents: [recorder],
      store,
      // A long ack wait, as in production: a lost delivery comes back only after it.
      config: { defaultAgentType: 'recorder', ackWaitMs: 30_000, leaseTtlMs: 10_000 },
    });
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

  async function publishAll(onRound: (round: number) => Promise<void>): Promise<void> {
    const js = jetstream(nc, { timeout: 30_000 });
    for (let i = 0; i < PER_SESSION; i++) {
      const acks: Promise<unknown>[] = [];
      for (let s = 0; s < SESSIONS; s++) {
        const h = natsHeaders();
        h.set('Nats-Msg-Id', `cut-${s}-${i}`);
        acks.push(js.publish(`agentry.in.cut-${s}`, JSON.stringify({ i }), { headers: h }));
      }
      await Promise.all(acks);
      await onRound(i);
      await sleep(15);
    }
  }

  it('refused and blackholed mid-load: every message applied once, in order; nothing left unacked', async () => {
    await publishAll(async (round) => {
      if (round === 15) { proxy.cut(); await sleep(3000); proxy.restore(); }
      if (round === 35) { proxy.blackhole(); await sleep(3000); proxy.restore(); }
    });
    const expected = Array.from({ length: PER_SESSION }, (_, i) => i);
    const seenOf = async (sid: string): Promise<number[]> => {
      const rec = await store.loadSession(sid);
      return ((rec?.snapshot as { context?: { userState?: { seen?: number[] } } } | undefined)?.context?.userState?.seen) ?? [];
    };
    await waitFor(async () => {
      for (let s = 0; s < SESSIONS; s++) if ((await seenOf(`cut-${s}`)).length < PER_SESSION) return false;
      return true;
    }, 'every message applied', 120_000, 250);
    await sleep(500); // a late duplicate would show now
    const wrong: string[] = [];
    for (let s = 0; s < SESSIONS; s++) {
      const seen = await seenOf(`cut-${s}`);
      if (JSON.stringify(seen) !== JSON.stringify(expected)) wrong.push(`cut-${s}: ${JSON.stringify(seen)}`);
    }
    expect(wrong.slice(0, 3)).toEqual([]);
    expect(await store.listDeadLetters()).toEqual([]);
    const jsm = await jetstreamManager(nc);
    await waitFor(async () => (await jsm.streams.info(rt!.transport.inboxStream)).state.messages === 0, 'the inbox stream drained (everything acked)', 60_000, 250);
  }, 240_000);
});
