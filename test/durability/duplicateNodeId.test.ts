// Two processes started with the same node id (an operator's copy-paste of AGENTRY_NODE_ID, a pod
// duplicated by a forced delete), under load. A node restarted under its id reclaims its own
// leases at once (a crashed predecessor's); the twins did that to each other at every balance
// round, for as long as both ran: on the old code the partitions' owners changed hundreds of
// times in 12 s (each a new fencing epoch, a consumer re-made, unacked messages redelivered).
// Now each sees the other write (a heartbeat or a renewal after its own start), leaves the
// other's leases alone and says so. Postgres' epoch fencing kept the data right either way:
// every message applied once, in order.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstream } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { headers as natsHeaders, type NatsConnection } from '@nats-io/transport-node';
import { openStore } from '../../persistence/index.js';
import type { Store } from '../../persistence/types.js';
import type { Runtime } from '../../runtime/index.js';
import { committedSeen, recorder } from './recorder.js';
import { PG_URL, dropSchema, natsClient, schemaName, sleep, startNats, startRuntime, waitFor } from '../helpers.js';

const PARTS = 8;
const SESSIONS = 16;
const ROUNDS = 150;

describe('two processes with one node id', () => {
  let nats: Awaited<ReturnType<typeof startNats>>;
  let schema: string;
  let storeA: Store;
  let storeB: Store;
  let a: Runtime | undefined;
  let b: Runtime | undefined;
  let nc: NatsConnection;

  beforeAll(async () => {
    nats = await startNats(PARTS);
    schema = schemaName('dupnode');
    storeA = openStore({ databaseUrl: PG_URL, schema });
    storeB = openStore({ databaseUrl: PG_URL, schema });
    const config = { nodeId: 'twin', leaseTtlMs: 2000, defaultAgentType: 'recorder', ackWaitMs: 3000 };
    a = await startRuntime(nats.url, { agents: [recorder], store: storeA, partitions: PARTS, config });
    b = await startRuntime(nats.url, { agents: [recorder], store: storeB, partitions: PARTS, config });
    nc = await natsClient(nats.url);
  });

  afterAll(async () => {
    await a?.stop();
    await b?.stop();
    await nc?.close();
    await storeA?.close();
    await storeB?.close();
    await nats?.cleanup();
    if (schema) await dropSchema(schema);
  });

  it('each keeps what it holds: ownership settles, both report the twin, nothing lost, doubled or reordered', async () => {
    // Every change of a partition's owning process, as the lease bucket records it.
    const kv = await new Kvm(nc).open(`${a!.config.streamPrefix}_LEASES`);
    const ownerOf = new Map<string, string>();
    let ownerChanges = 0;
    const watch = await kv.watch({ key: 'part.>' });
    void (async () => {
      for await (const e of watch) {
        if (e.operation !== 'PUT') continue;
        const inst = e.json<{ inst?: string }>().inst ?? '';
        if (ownerOf.get(e.key) !== inst) { ownerChanges++; ownerOf.set(e.key, inst); }
      }
    })();
    const ids = Array.from({ length: SESSIONS }, (_, n) => `d-${n}`);
    const js = jetstream(nc, { timeout: 30_000 });
    const samples: string[] = [];
    const sampler = setInterval(() => { samples.push(`${a!.leases.owned().length}/${b!.leases.owned().length}`); }, 250);
    for (let i = 0; i < ROUNDS; i++) {
      await Promise.all(ids.map(async (id) => {
        const h = natsHeaders();
        h.set('Nats-Msg-Id', `${id}-${i}`);
        await js.publish(`agentry.in.${id}`, JSON.stringify({ i }), { headers: h });
      }));
      await sleep(40);
    }
    const expected = Array.from({ length: ROUNDS }, (_, i) => i);
    const seenOf = (sid: string): Promise<number[]> => committedSeen(storeA, sid);
    await waitFor(async () => {
      for (const id of ids) if ((await seenOf(id)).length < ROUNDS) return false;
      return true;
    }, 'every message applied', 120_000, 250).catch(() => undefined);
    clearInterval(sampler);
    watch.stop();
    console.log(`[dup] owner changes ${ownerChanges}; owned a/b every 250 ms: ${samples.join(' ')}`);
    const wrong: string[] = [];
    for (const id of ids) {
      const seen = await seenOf(id);
      if (JSON.stringify(seen) !== JSON.stringify(expected)) wrong.push(`${id}: ${seen.length} seen, first diff at ${seen.findIndex((x, k) => x !== k)}`);
    }
    expect(wrong).toEqual([]);
    // Each partition taken once or twice (the twin started second may reclaim what the first took
    // before it saw the first write), not over and over.
    expect(ownerChanges).toBeLessThanOrEqual(2 * PARTS);
    expect(a!.leases.twins()).toHaveLength(1);
    expect(b!.leases.twins()).toHaveLength(1);
    expect(a!.leases.owned().length + b!.leases.owned().length).toBe(PARTS);
  }, 240_000);
});
