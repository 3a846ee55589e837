/**
 * Fencing by partition epoch (issue 11, item 3), against real Postgres, PGlite and the memory
 * store. A deposed owner's commit transaction that already passed its epoch check and then sat
 * paused (GC, SIGSTOP, a VM freeze) used to commit after the new owner took over: the epoch was
 * checked when its UPDATE ran, not at COMMIT. Now every commit share-locks its partitions' epoch
 * rows first, and the new owner's claim waits for those transactions: the old one commits before
 * the new owner starts, or is refused. A paused transaction is ended by
 * idle_in_transaction_session_timeout, so the claim does not wait for the pause to end.
 */
import { createPgliteWorkerStore } from '../../persistence/pgliteWorkerStore.js';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMemoryStore, createPgStore, createPgliteStore, FencedError, type CommitRecord, type Store } from '../../persistence/index.js';
import { PG_URL, dropSchema } from '../helpers.js';

function rec(sessionId: string, version: number, partition: number, ownerEpoch: number): CommitRecord {
  return {
    sessionId, type: 'chat', status: 'idle', snapshot: { value: 'idle', context: { n: version } },
    lastSeq: version * 10, version, partition, ownerEpoch, wakeAt: null, wakeEvents: [],
    wakePriority: null, history: [], transitions: [], outbox: [],
  };
}

const backends: [string, () => Promise<{ store: Store; done: () => Promise<void> }>][] = [
  ['memory', () => Promise.resolve({ store: createMemoryStore(), done: () => Promise.resolve() })],
  ['pglite', async () => { const store = createPgliteStore({}); await store.migrate(); return { store, done: () => store.close() }; }],
  ['pglite (worker)', async () => { const store = createPgliteWorkerStore(); await store.migrate(); return { store, done: () => store.close() }; }],
  ['pg', async () => {
    const schema = `t_fence_${randomBytes(5).toString('hex')}`;
    const store = createPgStore({ connectionString: PG_URL, schema });
    await store.migrate();
    return { store, done: async () => { await store.close(); await dropSchema(schema); } };
  }],
];

describe.each(backends)('partition epochs (%s)', (_name, open) => {
  let store: Store;
  let done: () => Promise<void>;
  beforeAll(async () => { ({ store, done } = await open()); });
  afterAll(async () => { await done(); });

  it('a claim never lowers the epoch; commits of older epochs are refused, newer ones land', async () => {
    expect(await store.claimPartition(3, 10, 'a', 2000)).toBe(true);
    await store.commit([rec('s-fence', 1, 3, 10)]);
    expect(await store.claimPartition(3, 20, 'b', 2000)).toBe(true);
    expect(await store.claimPartition(3, 15, 'a', 2000)).toBe(false);
    await expect(store.commit([rec('s-fence', 2, 3, 10)])).rejects.toBeInstanceOf(FencedError);
    await store.commit([rec('s-fence', 2, 3, 20)]);
    expect((await store.loadSession('s-fence'))?.version).toBe(2);
    // A session never committed before is fenced too: the partition, not the row, decides.
    await expect(store.commit([rec('s-new', 1, 3, 10)])).rejects.toBeInstanceOf(FencedError);
    // Claiming the same epoch again (a retried claim) is fine.
    expect(await store.claimPartition(3, 20, 'b', 2000)).toBe(true);
  });
});

describe('a paused commit transaction cannot commit after the takeover (Postgres)', () => {
  const schema = `t_fencep_${randomBytes(5).toString('hex')}`;
  let store: Store;
  let old: pg.Client;
  beforeAll(async () => {
    store = createPgStore({ connectionString: PG_URL, schema });
    await store.migrate();
  });
  afterAll(async () => {
    await old?.end().catch(() => undefined);
    await store?.close();
    await dropSchema(schema);
  });

  it('the new owner waits for the old transaction; once it is ended by the idle timeout, the old one is refused', async () => {
    expect(await store.claimPartition(5, 1, 'old', 2000)).toBe(true);
    await store.commit([rec('p-sess', 1, 5, 1)]);
    // The old owner's commit, as the store runs it, stopped half way: epoch checked under a
    // share lock, session row updated, then the process pauses inside the transaction.
    old = new pg.Client({ connectionString: PG_URL, options: `-c search_path=${schema} -c idle_in_transaction_session_timeout=1500` });
    old.on('error', () => undefined);
    await old.connect();
    await old.query('BEGIN');
    const { rows } = await old.query<{ epoch: string }>('SELECT epoch FROM partition_epochs WHERE partition = ANY($1::integer[]) FOR SHARE', [[5]]);
    expect(Number(rows[0]!.epoch)).toBe(1);
    await old.query("UPDATE sessions SET version = 2, last_seq = 20 WHERE id = 'p-sess' AND version = 1");

    // The new owner's claim cannot pass while that transaction lives (lock timeout), …
    await expect(store.claimPartition(5, 2, 'new', 300)).rejects.toThrow();
    // … and passes once Postgres has ended the idle transaction.
    let claimed = false;
    for (let i = 0; i < 50 && !claimed; i++) {
      claimed = await store.claimPartition(5, 2, 'new', 500).catch(() => false);
      if (!claimed) await new Promise((r) => setTimeout(r, 200));
    }
    expect(claimed).toBe(true);
    // The old owner wakes up and commits: too late, nothing of it landed.
    await expect(old.query('COMMIT')).rejects.toThrow();
    expect((await store.loadSession('p-sess'))?.version).toBe(1);
    // And any later commit of the old epoch is refused.
    await expect(store.commit([rec('p-sess', 2, 5, 1)])).rejects.toBeInstanceOf(FencedError);
    await store.commit([rec('p-sess', 2, 5, 2)]);
  });
});
