// A session row whose snapshot the statechart cannot restore (a hand edit, a bad data fix) —
// with every session on one partition, so a stall would show on its neighbours. Such a session
// is blocked like one whose snapshot does not migrate: a typed MIGRATION_FAILED error
// (`invalid-state`), its messages held unacked, the row read again by itself until it is put
// right, then its messages applied once, in order. Before 2026-11-29 a state value the
// statechart lacks reached XState, which keeps a restore's error in the snapshot: the actor took
// every message and committed none, and the partition's consumer restarted ~125 times a second
// for good (its neighbours stalled); a snapshot with no context threw a TypeError in the host and
// its messages came back at every ack wait.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NatsConnection } from '@nats-io/transport-node';
import pg from 'pg';
import { openStore } from '../../persistence/index.js';
import type { Store } from '../../persistence/types.js';
import type { Runtime } from '../../runtime/index.js';
import { committedSeen, recorder } from './recorder.js';
import { PG_URL, dropSchema, natsClient, publish, schemaName, startNats, startRuntime, waitFor } from '../helpers.js';

describe('a corrupt snapshot row', () => {
  let nats: Awaited<ReturnType<typeof startNats>>;
  let schema: string;
  let store: Store;
  let rt: Runtime | undefined;
  let nc: NatsConnection;
  let direct: pg.Client;

  beforeAll(async () => {
    nats = await startNats(1);
    schema = schemaName('corrupt');
    store = openStore({ databaseUrl: PG_URL, schema });
    rt = await startRuntime(nats.url, { agents: [recorder], store, partitions: 1, config: { defaultAgentType: 'recorder', ackWaitMs: 2000 } });
    nc = await natsClient(nats.url);
    direct = new pg.Client({ connectionString: PG_URL, options: `-c search_path=${schema}` });
    await direct.connect();
  });

  afterAll(async () => {
    await rt?.stop();
    await nc?.close();
    await direct?.end();
    await store?.close();
    await nats?.cleanup();
    if (schema) await dropSchema(schema);
  });

  it.each([
    ['not a snapshot at all', `'{"nonsense": true}'::jsonb`, 'blocked'],
    ['a state the statechart does not have', `jsonb_set(snapshot, '{value}', '"flying"')`, 'blocked'],
    ['user state of another shape', `jsonb_set(snapshot, '{context,userState}', '"a string"')`, 'handler-fails'],
  ])('%s: the other sessions of its partition go on; nothing of it is lost', async (what, expr, outcome) => {
    const tag = what.replace(/\W+/g, '-').slice(0, 12);
    const ids = Array.from({ length: 5 }, (_, n) => `${tag}-${n}`);
    for (const id of ids) await publish(nc, id, { i: 0 });
    const seenOf = (sid: string): Promise<number[]> => committedSeen(store, sid);
    await waitFor(async () => { for (const id of ids) if ((await seenOf(id)).length < 1) return false; return true; }, 'first messages');
    const bad = ids[2]!;
    // Changed while no node holds it (a restart): the next message hydrates it from the row.
    await rt!.stop();
    const { rows: [original] } = await direct.query<{ snapshot: unknown }>('SELECT snapshot FROM sessions WHERE id = $1', [bad]);
    await direct.query(`UPDATE sessions SET snapshot = ${expr} WHERE id = $1`, [bad]);
    rt = await startRuntime(nats.url, { agents: [recorder], store, partitions: 1, config: { defaultAgentType: 'recorder', ackWaitMs: 2000 } });
    for (let i = 1; i <= 3; i++) for (const id of ids) await publish(nc, id, { i });

    // One partition: on the old code the corrupt session stalled it (thousands of consumer
    // restarts a minute) or had its messages redelivered at every ack wait, for good.
    const good = ids.filter((id) => id !== bad);
    await waitFor(async () => { for (const id of good) if ((await seenOf(id)).length < 4) return false; return true; }, 'the other sessions to go on', 60_000);
    for (const id of good) expect({ id, seen: await seenOf(id) }).toEqual({ id, seen: [0, 1, 2, 3] });

    if (outcome === 'handler-fails') {
      // Restorable: the agent's own handler fails on the state it finds; each message becomes a
      // dead letter after its attempts, replayable once the state is fixed.
      await waitFor(async () => (await store.listDeadLetters()).filter((d) => d.sessionId === bad).length === 3, 'three dead letters', 60_000, 100);
      expect((await store.listDeadLetters()).filter((d) => d.sessionId === bad).every((d) => d.reason === 'handler-failed')).toBe(true);
      return;
    }
    // Blocked with a typed error, its messages held unacked (not dead-lettered, not dropped).
    await waitFor(() => rt!.host.blocked.heldCount(bad) === 3, 'the corrupt session\'s messages to be held', 30_000, 50);
    // getAgent says why: the stored view with its `migrationError`, or the error itself when
    // the row has no view to show.
    const seen = await rt.getAgent(bad).then((v) => v.migrationError, (e: unknown) => (e as { toJSON(): unknown }).toJSON());
    expect(seen).toMatchObject({ code: 'MIGRATION_FAILED', reason: 'invalid-state' });
    expect((await store.listDeadLetters()).filter((d) => d.sessionId === bad)).toEqual([]);
    // The row is put right (by hand, or `agentry migrate`): the node reads it again by itself
    // and the held messages are applied, in order, once.
    await direct.query('UPDATE sessions SET snapshot = $2 WHERE id = $1', [bad, JSON.stringify(original!.snapshot)]);
    await waitFor(async () => (await seenOf(bad)).length === 4, 'the held messages once the row is right', 60_000, 100);
    expect(await seenOf(bad)).toEqual([0, 1, 2, 3]);
    expect((await rt.getAgent(bad)).state).toBe('idle');
  }, 180_000);
});
