// Two nodes on one NATS server and one Postgres: partitions are split by lease, any node serves
// commands for any session (routed over agentry.ctl.<id>), and when one node is SIGKILLed the
// other takes its partitions after the lease TTL and finishes its work: nothing lost or doubled,
// order kept, and the new owner's fencing epoch is on the sessions.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NatsConnection } from '@nats-io/transport-node';
import { defineAgent } from '../../actors/index.js';
import { openStore } from '../../persistence/index.js';
import type { Store } from '../../persistence/types.js';
import { partitionOf, type Runtime } from '../../runtime/index.js';
import { assertBuildIsFresh, startChild, type ChildRuntime } from '../durability/childRuntime.js';
import { PG_URL, dropSchema, natsClient, publish, schemaName, sleep, startNats, startRuntime, tempDir, waitFor } from '../helpers.js';

type Nats = Awaited<ReturnType<typeof startNats>>;
const PARTS = 8;
let nats: Nats;
let nc: NatsConnection;
let schema: string;
let store: Store;
let a: Runtime;
let b: ChildRuntime | undefined;
const logs = tempDir('agentry-multinode-');

// The same agent type as the child fixture's `rec-queue`: records each message's `i` in user state.
const recQueue = defineAgent<{ seen: unknown[] }>({
  type: 'rec-queue',
  onMessage: 'queue',
  initialState: () => ({ seen: [] }),
  handle(batch, ctx) {
    for (const m of batch) ctx.state.seen.push(m.kind === 'wake' ? `wake:${(m.body as { reason: string }).reason}` : (m.body as { i: number }).i);
    return undefined;
  },
});

const seenOf = async (sid: string): Promise<unknown[]> =>
  ((await store.loadSession(sid))?.snapshot as { context: { userState: { seen: unknown[] } } } | undefined)?.context.userState.seen ?? [];

beforeAll(async () => {
  assertBuildIsFresh();
  nats = await startNats(PARTS);
  nc = await natsClient(nats.url);
  schema = schemaName('multinode');
  store = openStore({ databaseUrl: PG_URL, schema });
  a = await startRuntime(nats.url, {
    agents: [recQueue], store, partitions: PARTS,
    config: { nodeId: 'node-a', leaseTtlMs: 2000, defaultAgentType: 'rec-queue', ackWaitMs: 3000 },
  });
  expect(a.leases.owned()).toHaveLength(PARTS); // alone, it takes every partition
  b = await startChild(nc, {
    natsUrl: nats.url, partitions: PARTS, ctlSubject: `test.ctl.${schema}`, databaseUrl: PG_URL, schema,
    defaultAgentType: 'rec-queue', extra: { nodeId: 'node-b', leaseTtlMs: 2000 },
  }, join(logs.dir, 'node-b.log'));
});

afterAll(async () => {
  if (b && !b.exited()) await b.kill();
  await a?.stop();
  await store?.close();
  await nc?.close();
  await nats?.cleanup();
  await dropSchema(schema);
  logs.cleanup();
});

describe('two nodes', () => {
  it('split the partitions, serve each other\'s sessions, and fail over after a SIGKILL with nothing lost or doubled', async () => {
    await waitFor(() => a.leases.owned().length === PARTS / 2, 'node-a to hand half its partitions to node-b', 20_000, 100);
    const sessions = Array.from({ length: 40 }, (_, i) => `mn-${i}`);
    const onB = sessions.filter((sid) => !a.leases.owns(partitionOf(sid, PARTS)));
    expect(onB.length).toBeGreaterThan(0);

    // Any node serves any client: node-a creates, sleeps, reads and wakes a session node-b owns.
    await a.createAgent('routed-1', 'rec-queue').catch(() => undefined);
    const remote = onB[0]!;
    await a.createAgent(remote, 'rec-queue');
    await expect(a.createAgent(remote, 'rec-queue')).rejects.toMatchObject({ code: 'SESSION_EXISTS' });
    expect((await a.sleepAgent(remote, { durationMs: 60_000 })).state).toBe('sleeping');
    expect((await a.getAgent(remote)).state).toBe('sleeping');
    expect((await a.wakeAgent(remote)).state).not.toBe('sleeping');
    await waitFor(async () => (await seenOf(remote)).includes('wake:manual'), 'the remote session handled its wake');

    // Load across both nodes, then SIGKILL node-b mid-stream.
    const pub = await natsClient(nats.url);
    const send = async (from: number, to: number): Promise<void> => {
      for (let i = from; i < to; i++) await Promise.all(sessions.map((sid) => publish(pub, sid, { i })));
    };
    await send(0, 20);
    const more = send(20, 40);
    await sleep(150);
    await b!.kill();
    await more;
    await pub.close();

    await waitFor(() => a.leases.owned().length === PARTS, 'node-a to take node-b\'s partitions after the lease TTL', 20_000, 100);
    const takeoverEpoch = new Map(a.leases.owned().map((p) => [p, a.leases.epochOf(p)]));
    const expected = Array.from({ length: 40 }, (_, i) => i);
    await waitFor(async () => {
      for (const sid of sessions) {
        const seen = (await seenOf(sid)).filter((x) => typeof x === 'number');
        if (seen.length < 40) return false;
      }
      return true;
    }, 'every message applied', 60_000, 250);
    for (const sid of sessions) {
      expect((await seenOf(sid)).filter((x) => typeof x === 'number'), sid).toEqual(expected);
    }
    // The new owner's (higher) fencing epoch is on the sessions it took over.
    // (A lease renewed late under load is re-taken with a newer epoch still, so compare with the takeover.)
    const probe = onB[1] ?? onB[0]!;
    await a.sendMessage(probe, { i: 40 });
    await waitFor(async () => (await seenOf(probe)).includes(40), 'a commit by the new owner');
    const rec = (await store.loadSession(probe))!;
    expect(rec.ownerEpoch).toBeGreaterThanOrEqual(takeoverEpoch.get(rec.partition)!);
    expect(rec.ownerEpoch).toBeLessThanOrEqual(a.leases.epochOf(rec.partition));
  }, 120_000);
});
