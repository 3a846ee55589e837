// The partition lease bucket (KV `AGENTRY_LEASES`, stream `KV_AGENTRY_LEASES`) gone: deleted by
// an operator (`nats kv rm`, a clean-up script) or lost with a nats-server whose store was wiped
// (a container without a volume) while Postgres kept everything. A lease's fencing epoch is the
// bucket's revision when it was taken, and Postgres refuses a claim older than the epoch it
// recorded (`partition_epochs`). Until 2026-11-29 nothing kept the bucket: deleted while the
// runtime ran, every renewal failed and no lease could be taken again, so every node stopped
// consuming for good; made again from revision 1 by a restart, every new lease was older than
// the recorded epochs — FENCED, partition after partition — until the revisions caught up with
// them (in a cluster that has run for a while: hours or days of renewals).
//
// Now the stream keeper keeps the bucket like the inbox and event streams: made before the
// leases bind to it, re-created when it disappears, its revisions starting past the highest
// epoch Postgres recorded. Real nats-server and Postgres.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { defineAgent } from '../../actors/index.js';
import { openStore } from '../../persistence/index.js';
import type { Store } from '../../persistence/types.js';
import type { Runtime } from '../../runtime/index.js';
import { PG_URL, dropSchema, natsClient, publish, schemaName, startNats, startRuntime, waitFor } from '../helpers.js';

const recorder = defineAgent({
  type: 'kv-recorder',
  onMessage: 'queue',
  initialState: () => ({ seen: [] as number[] }),
  handle(batch, ctx) {
    for (const m of batch) ctx.state.seen.push((m.body as { i: number }).i);
  },
});

const SESSIONS = 12;
const PARTITIONS = 8;

describe('the partition lease bucket gone', () => {
  let nats: Awaited<ReturnType<typeof startNats>>;
  let nc: NatsConnection;
  let store: Store;
  let db: pg.Client;
  const schema = schemaName('kvgone');
  let rt: Runtime | undefined;
  let next = 0;
  const sent = new Map<string, number[]>();

  const start = (): Promise<Runtime> => startRuntime(nats.url, {
    agents: [recorder], store, partitions: PARTITIONS,
    config: { defaultAgentType: 'kv-recorder', leaseTtlMs: 3_000 },
  });
  /** One message to every session. */
  const round = async (): Promise<void> => {
    for (let s = 0; s < SESSIONS; s++) {
      const sid = `kv-${s}`;
      const i = next++;
      await publish(nc, sid, { i });
      sent.set(sid, [...(sent.get(sid) ?? []), i]);
    }
  };
  /** Every session has applied exactly what was sent to it, in order. */
  const allApplied = async (r: Runtime, what: string): Promise<void> => {
    for (const [sid, want] of sent) {
      const seen = await waitFor(async () => {
        const v = await r.getAgent(sid).catch(() => null);
        const got = (v?.userState as { seen?: number[] } | undefined)?.seen ?? [];
        return got.length >= want.length ? got : null;
      }, `${sid}: ${want.length} messages applied (${what})`, 60_000, 100);
      expect(seen).toEqual(want);
    }
  };
  const maxEpoch = async (): Promise<number> => Number((await db.query<{ m: string | null }>('SELECT max(epoch)::text AS m FROM partition_epochs')).rows[0]?.m ?? 0);

  beforeAll(async () => {
    nats = await startNats(PARTITIONS);
    nc = await natsClient(nats.url);
    store = openStore({ databaseUrl: PG_URL, schema });
    db = new pg.Client({ connectionString: PG_URL, options: `-c search_path=${schema}` });
    await db.connect();
  }, 30_000);
  afterAll(async () => {
    await rt?.stop();
    await store?.close();
    await db?.end();
    await nc?.close();
    await nats?.cleanup();
    await dropSchema(schema);
  }, 60_000);

  it('wiped while every node was down (after a long run): the next start serves every partition and loses nothing', async () => {
    rt = await start();
    await round();
    await allApplied(rt, 'first start');
    await rt.stop();
    rt = undefined;
    // A cluster that has run for a while holds epochs far past a new bucket's first revisions
    // (each renewal is a revision: 4 per TTL per partition); as if this one had.
    await db.query('UPDATE partition_epochs SET epoch = epoch + 100000');
    const before = await maxEpoch();
    const jsm = await jetstreamManager(nc);
    await jsm.streams.delete('KV_AGENTRY_LEASES');

    rt = await start();
    await round();
    await allApplied(rt, 'after the bucket was wiped');
    const parts = await rt.getPartitions();
    expect(parts.filter((p) => p.nodeId === null)).toEqual([]);
    expect(Math.min(...parts.map((p) => p.epoch ?? 0))).toBeGreaterThan(before);
  }, 120_000);

  it('deleted while the runtime runs: readiness fails, the bucket comes back past the recorded epochs, and every message is applied once, in order', async () => {
    const r = rt!;
    const before = await maxEpoch();
    const jsm = await jetstreamManager(nc);
    // Watched from here: readiness goes false while the bucket is missing.
    let notReady = 0;
    const watch = setInterval(() => { if (!r.readiness().checks.streams) notReady++; }, 20);
    await jsm.streams.delete('KV_AGENTRY_LEASES');
    await round();
    await waitFor(async () => (await jsm.streams.info('KV_AGENTRY_LEASES').catch(() => null)) !== null, 'the bucket re-created', 30_000, 100);
    await waitFor(() => r.readiness().ok, 'ready again', 30_000, 50);
    clearInterval(watch);
    expect(notReady).toBeGreaterThan(0);
    await round();
    await allApplied(r, 'after the bucket was deleted');
    const parts = await waitFor(async () => {
      const ps = await r.getPartitions().catch(() => null);
      return ps && ps.every((p) => p.nodeId !== null && (p.epoch ?? 0) > before) ? ps : null;
    }, 'every partition held again under a newer epoch', 30_000, 200);
    expect(parts).toHaveLength(PARTITIONS);
    expect(await maxEpoch()).toBeGreaterThan(before);
  }, 120_000);
});
