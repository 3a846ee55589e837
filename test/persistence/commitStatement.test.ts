/**
 * A store commit is one statement, `agentry_commit(doc, now)` (migration 0005), on Postgres,
 * PGlite and PGlite in its worker thread. What the suite pins down:
 * - one call to the database per commit, in autocommit (it used to be nine statements in a
 *   transaction);
 * - a fenced partition, a fenced row or a stale version anywhere in a multi-record commit names
 *   the same record as before and leaves nothing of any record written, in any table;
 * - session rows are locked in id order whatever the order of the records (no deadlock between
 *   commits that share sessions), and a new session created concurrently between the check and
 *   the insert rolls everything back and is reported stale (Postgres: it needs two connections);
 * - subscriptions changed by several records of one commit end as the memory store leaves them;
 * - migration 0005 applied to a database the previous release created and wrote.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { PGlite } from '@electric-sql/pglite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createMemoryStore, createPgStore, createPgliteStore, FencedError, StaleVersionError, type CommitRecord, type HistoryEntry, type OutboxRecord, type Store,
} from '../../persistence/index.js';
import { bundledMigrations, migrate } from '../../persistence/migrate.js';
import { createPgliteDb } from '../../persistence/pgliteStore.js';
import { createPgliteWorkerStore } from '../../persistence/pgliteWorkerStore.js';
import { createPgDb } from '../../persistence/pgStore.js';
import type { SqlDb } from '../../persistence/sqlDb.js';
import { createSqlStore } from '../../persistence/sqlStore.js';
import { PG_URL, dropSchema, waitFor } from '../helpers.js';

const schemaOf = (): string => `t_commit_${randomBytes(5).toString('hex')}`;

function rec(sessionId: string, version: number, over: Partial<CommitRecord> = {}): CommitRecord {
  return {
    sessionId, type: 'chat', status: 'idle', snapshot: { value: 'idle', context: { n: version } },
    lastSeq: version * 10, version, partition: 1, ownerEpoch: 1, wakeAt: null, wakeEvents: [],
    wakePriority: null, history: [], transitions: [], outbox: [], ...over,
  };
}

function hist(sessionId: string, seq: number): HistoryEntry {
  return { sessionId, seq, kind: 'message', body: { text: `m${seq}` }, priority: 'normal', from: 'user:1', batchId: `b${seq}`, outcome: 'ok', at: seq };
}

function reply(sessionId: string, id: string): OutboxRecord {
  return { id, sessionId, subject: `agentry.out.${sessionId}`, headers: { 'Agentry-Kind': 'reply' }, body: JSON.stringify({ id }), createdAt: 1 };
}

/** A record that writes a row in every table a commit touches. */
function full(sessionId: string, version: number, over: Partial<CommitRecord> = {}): CommitRecord {
  return rec(sessionId, version, {
    history: [hist(sessionId, version)],
    transitions: [{ sessionId, at: version, event: 'MESSAGE', from: 'idle', to: 'active' }],
    outbox: [reply(sessionId, `${sessionId}:v${version}`)],
    subscribe: [`topic.${sessionId}`],
    ...over,
  });
}

/** Everything a commit could have written for `sessionId`, as the store reads it back. */
async function written(store: Store, sessionId: string): Promise<unknown> {
  return {
    session: (await store.loadSession(sessionId))?.version ?? null,
    history: (await store.getHistory(sessionId)).length,
    transitions: (await store.getTransitions(sessionId)).length,
    outbox: (await store.pendingOutbox(10_000)).filter((o) => o.sessionId === sessionId).length,
    log: (await store.readLog(sessionId, 0, 1000)).length,
    subscribed: (await store.eventRecipients(`topic.${sessionId}`)).includes(sessionId),
  };
}

const nothing = { session: null, history: 0, transitions: 0, outbox: 0, log: 0, subscribed: false };

interface Backend {
  store: Store;
  /** A store on the same database whose adapter counts what reaches the database. */
  counted: { store: Store; calls: { query: number; exec: number; transaction: number } };
  done(): Promise<void>;
}

/** Wraps an adapter so a test can see how many calls one store method makes. */
function counting(db: SqlDb): { db: SqlDb; calls: { query: number; exec: number; transaction: number } } {
  const calls = { query: 0, exec: 0, transaction: 0 };
  return {
    calls,
    db: {
      query: (text, params) => { calls.query++; return db.query(text, params); },
      exec: (text) => { calls.exec++; return db.exec(text); },
      transaction: (fn) => { calls.transaction++; return db.transaction(fn); },
      close: () => db.close(),
    },
  };
}

const backends: [string, () => Promise<Backend>][] = [
  ['pg', async () => {
    const schema = schemaOf();
    const store = createPgStore({ connectionString: PG_URL, schema });
    await store.migrate();
    const pool = new pg.Pool({ connectionString: PG_URL, max: 2, options: `-c search_path=${schema}` });
    const c = counting(createPgDb(pool));
    return {
      store, counted: { store: createSqlStore(c.db, 'pg'), calls: c.calls },
      done: async () => { await store.close(); await pool.end(); await dropSchema(schema); },
    };
  }],
  ['pglite', async () => {
    const db = await PGlite.create();
    const store = createSqlStore(createPgliteDb(Promise.resolve(db)), 'pglite');
    await store.migrate();
    const c = counting(createPgliteDb(Promise.resolve(db)));
    return { store, counted: { store: createSqlStore(c.db, 'pglite'), calls: c.calls }, done: () => db.close() };
  }],
];

describe.each(backends)('one statement per commit (%s)', (_name, open) => {
  let b: Backend;
  beforeAll(async () => { b = await open(); });
  afterAll(async () => { await b?.done(); });

  it('a commit of many records and every table is one database call, outside any transaction', async () => {
    const { store, calls } = b.counted;
    await store.commit([full('one-a', 1), full('one-b', 1), full('one-a', 2)]);
    expect(calls).toEqual({ query: 1, exec: 0, transaction: 0 });
    expect(await written(b.store, 'one-a')).toEqual({ session: 2, history: 2, transitions: 2, outbox: 2, log: 4, subscribed: true });
    expect(await written(b.store, 'one-b')).toEqual({ session: 1, history: 1, transitions: 1, outbox: 1, log: 2, subscribed: true });
    // A refused commit is one call too: the answer carries what names the record.
    calls.query = 0;
    await expect(store.commit([rec('one-b', 1)])).rejects.toMatchObject({ name: 'StaleVersionError', sessionId: 'one-b', expected: 0 });
    expect(calls).toEqual({ query: 1, exec: 0, transaction: 0 });
    calls.query = 0;
    await expect(store.commit([rec('one-c', 1), rec('one-missing', 2)])).rejects.toMatchObject({ name: 'StaleVersionError', sessionId: 'one-missing', expected: 1 });
    expect(calls).toEqual({ query: 1, exec: 0, transaction: 0 });
  });
});

const storeBackends: [string, () => Promise<{ store: Store; done: () => Promise<void> }>][] = [
  ['pg', async () => {
    const schema = schemaOf();
    const store = createPgStore({ connectionString: PG_URL, schema });
    await store.migrate();
    return { store, done: async () => { await store.close(); await dropSchema(schema); } };
  }],
  ['pglite', async () => { const store = createPgliteStore(); await store.migrate(); return { store, done: () => store.close() }; }],
  ['pglite (worker)', async () => { const store = createPgliteWorkerStore(); await store.migrate(); return { store, done: () => store.close() }; }],
];

describe.each(storeBackends)('a refused record in a multi-record commit writes nothing (%s)', (_name, open) => {
  let store: Store;
  let done: () => Promise<void>;
  beforeAll(async () => { ({ store, done } = await open()); });
  afterAll(async () => { await done(); });

  it('a fenced partition: FencedError names the first record of it; no record of the commit wrote anything', async () => {
    expect(await store.claimPartition(2, 5, 'n', 2000)).toBe(true);
    await store.commit([full('fp-old', 1, { partition: 2, ownerEpoch: 5 })]);
    const err = await store.commit([
      full('fp-new', 1),
      full('fp-old', 2, { partition: 2, ownerEpoch: 5 }),
      full('fp-x', 1, { partition: 2, ownerEpoch: 4 }),
      full('fp-y', 1, { partition: 2, ownerEpoch: 3 }),
    ]).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(FencedError);
    expect(err).toMatchObject({ sessionId: 'fp-x', epoch: 4, code: 'FENCED' });
    for (const id of ['fp-new', 'fp-x', 'fp-y']) expect(await written(store, id), id).toEqual(nothing);
    expect(await written(store, 'fp-old')).toEqual({ session: 1, history: 1, transitions: 1, outbox: 1, log: 2, subscribed: true });
    // The same records without the fenced ones land.
    await store.commit([full('fp-new', 1), full('fp-old', 2, { partition: 2, ownerEpoch: 5 })]);
    expect((await store.loadSession('fp-old'))?.version).toBe(2);
  });

  it('a row with a newer owner epoch: FencedError; new and existing sessions of the commit are untouched', async () => {
    await store.commit([full('fr-a', 1, { ownerEpoch: 7 }), full('fr-b', 1)]);
    const err = await store.commit([
      full('fr-b', 2), full('fr-c', 1), full('fr-a', 2, { ownerEpoch: 6 }),
    ]).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(FencedError);
    expect(err).toMatchObject({ sessionId: 'fr-a', epoch: 6 });
    expect(await written(store, 'fr-b')).toEqual({ session: 1, history: 1, transitions: 1, outbox: 1, log: 2, subscribed: true });
    expect(await written(store, 'fr-c')).toEqual(nothing);
    expect((await store.loadSession('fr-a'))).toMatchObject({ version: 1, ownerEpoch: 7 });
  });

  it('a stale version after good records: StaleVersionError names it; nothing of the commit is written', async () => {
    await store.commit([full('sv-a', 1), full('sv-b', 1)]);
    const err = await store.commit([
      full('sv-new', 1), full('sv-a', 2), full('sv-a', 3), full('sv-b', 1), full('sv-z', 1),
    ]).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(StaleVersionError);
    expect(err).toMatchObject({ sessionId: 'sv-b', expected: 0, code: 'STALE_VERSION' });
    expect(await written(store, 'sv-new')).toEqual(nothing);
    expect(await written(store, 'sv-z')).toEqual(nothing);
    expect(await written(store, 'sv-a')).toEqual({ session: 1, history: 1, transitions: 1, outbox: 1, log: 2, subscribed: true });
    // A session row expected but missing is stale too.
    await expect(store.commit([full('sv-c', 1), full('sv-missing', 4)])).rejects.toMatchObject({ name: 'StaleVersionError', sessionId: 'sv-missing', expected: 3 });
    expect(await written(store, 'sv-c')).toEqual(nothing);
  });
});

describe.each<[string, () => Promise<{ store: Store; done: () => Promise<void> }>]>([
  ['memory', () => Promise.resolve({ store: createMemoryStore(), done: () => Promise.resolve() })],
  ...storeBackends.slice(0, 2),
])('subscriptions in a commit of several records (%s)', (_name, open) => {
  it('follow the records in order, as the memory store applies them: the last change of a pattern wins', async () => {
    const { store, done } = await open();
    try {
      await store.commit([
        rec('sub-1', 1, { subscribe: ['a.x', 'b.*'] }),
        rec('sub-2', 1, { subscribe: ['c.x'] }),
        rec('sub-1', 2, { unsubscribe: ['a.x'] }),
        rec('sub-2', 2, { unsubscribe: ['c.x'] }),
        rec('sub-2', 3, { subscribe: ['c.x'] }),
      ]);
      expect(await store.eventRecipients('a.x')).toEqual([]);
      expect(await store.eventRecipients('b.y')).toEqual(['sub-1']);
      expect(await store.eventRecipients('c.x')).toEqual(['sub-2']);
    } finally {
      await done();
    }
  });
});

describe('locking and races on Postgres', () => {
  const schema = schemaOf();
  let store: Store;
  let pool: pg.Pool;
  beforeAll(async () => {
    store = createPgStore({ connectionString: PG_URL, schema });
    await store.migrate();
    pool = new pg.Pool({ connectionString: PG_URL, max: 4, options: `-c search_path=${schema}` });
  });
  afterAll(async () => {
    await store?.close();
    await pool?.end();
    await dropSchema(schema);
  });

  /** Resolves once a backend of this schema's store waits for a lock. */
  const someoneWaits = (): Promise<true> => waitFor(async () => {
    const { rows } = await pool.query<{ n: number }>(
      "SELECT count(*)::integer AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%agentry_commit%' AND datname = current_database()",
    );
    return rows[0]!.n > 0 || null;
  }, 'a commit waiting for a lock');

  it('locks the session rows in id order, whatever the order of the records', async () => {
    await store.commit([rec('lk-a', 1), rec('lk-b', 1), rec('lk-c', 1)]);
    const holder = await pool.connect();
    try {
      await holder.query('BEGIN');
      await holder.query("SELECT 1 FROM sessions WHERE id = 'lk-b' FOR UPDATE");
      const commit = store.commit([rec('lk-c', 2), rec('lk-b', 2), rec('lk-a', 2)]);
      await someoneWaits();
      // It waits at lk-b having locked lk-a, and has not touched lk-c.
      const probe = await pool.connect();
      try {
        await probe.query('BEGIN');
        await expect(probe.query("SELECT 1 FROM sessions WHERE id = 'lk-a' FOR UPDATE NOWAIT")).rejects.toMatchObject({ code: '55P03' });
        await probe.query('ROLLBACK');
        await probe.query('BEGIN');
        await probe.query("SELECT 1 FROM sessions WHERE id = 'lk-c' FOR UPDATE NOWAIT");
        await probe.query('ROLLBACK');
      } finally {
        probe.release();
      }
      await holder.query('COMMIT');
      await commit;
    } finally {
      holder.release();
    }
    for (const id of ['lk-a', 'lk-b', 'lk-c']) expect((await store.loadSession(id))?.version).toBe(2);
  });

  it('a new session created by another writer between the check and the insert: stale, and nothing else written', async () => {
    await store.commit([rec('rc-old', 1)]);
    const other = await pool.connect();
    try {
      await other.query('BEGIN');
      await other.query(
        `INSERT INTO sessions (id, type, status, snapshot, last_seq, version, partition, owner_epoch, created_at, updated_at)
         VALUES ('rc-new', 'chat', 'idle', '{}', 0, 1, 1, 1, 0, 0)`,
      );
      const commit = store.commit([full('rc-old', 2), full('rc-new', 1), full('rc-z', 1)]).then(() => null, (e: unknown) => e);
      await someoneWaits(); // its insert of rc-new waits for the other writer
      await other.query('COMMIT');
      const err = await commit;
      expect(err).toBeInstanceOf(StaleVersionError);
      expect(err).toMatchObject({ sessionId: 'rc-new', expected: 0 });
    } finally {
      other.release();
    }
    expect(await written(store, 'rc-old')).toEqual({ ...nothing, session: 1 });
    expect(await written(store, 'rc-z')).toEqual(nothing);
    expect(await written(store, 'rc-new')).toEqual({ ...nothing, session: 1 });
  });

  it('commits sharing sessions in opposite record orders all finish, without a deadlock', async () => {
    const ids = Array.from({ length: 40 }, (_, i) => `dl-${String(i).padStart(2, '0')}`);
    await store.commit(ids.map((id) => rec(id, 1)));
    for (let v = 2; v <= 6; v++) {
      const forward = ids.map((id) => rec(id, v));
      const results = await Promise.allSettled([store.commit(forward), store.commit([...forward].reverse())]);
      // One of the two wins each round; the other finds the versions moved (stale), never a deadlock.
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      const lost = results.find((r) => r.status === 'rejected');
      expect(lost?.reason).toBeInstanceOf(StaleVersionError);
    }
    expect((await store.loadSession('dl-39'))?.version).toBe(6);
  });
});

describe.each(['pg', 'pglite'])('migration 0005 on a database the previous release created (%s)', (name) => {
  const schema = schemaOf();
  let db: SqlDb;
  let pool: pg.Pool | undefined;
  let lite: PGlite | undefined;
  beforeAll(async () => {
    if (name === 'pg') {
      pool = new pg.Pool({ connectionString: PG_URL, max: 2, options: `-c search_path=${schema}` });
      db = createPgDb(pool);
    } else {
      lite = await PGlite.create();
      db = createPgliteDb(Promise.resolve(lite));
    }
  });
  afterAll(async () => {
    await pool?.end();
    await lite?.close();
    if (name === 'pg') await dropSchema(schema);
  });

  it('applies only 0005, and commits continue the sessions the old schema holds', async () => {
    const files = await bundledMigrations();
    const previous = files.filter((f) => f.version < 5);
    const opts = name === 'pg' ? { schema } : {};
    expect((await migrate(db, { ...opts, files: previous })).current).toBe(4);
    // What the previous release wrote: a session at version 3 under epoch 2, its partition claimed.
    await db.exec(`INSERT INTO partition_epochs (partition, epoch, node, claimed_at) VALUES (1, 2, 'old', 0);
      INSERT INTO sessions (id, type, status, snapshot, last_seq, version, partition, owner_epoch, created_at, updated_at)
      VALUES ('mg-1', 'chat', 'idle', '{"v": 3}', 30, 3, 1, 2, 0, 0);
      INSERT INTO history (session_id, seq, batch_id, kind, body, priority, outcome, at)
      VALUES ('mg-1', 3, 'b3', 'message', '{}', 'normal', 'ok', 0)`);
    const store = createSqlStore(db, name === 'pg' ? 'pg' : 'pglite', { schema: name === 'pg' ? schema : undefined, logPruneEveryMs: 0 });
    expect(await store.migrate()).toEqual({ applied: files.filter((f) => f.version >= 5).map((f) => f.version), current: files.at(-1)!.version });
    await expect(store.commit([rec('mg-1', 4, { ownerEpoch: 1 })])).rejects.toBeInstanceOf(FencedError);
    await store.commit([full('mg-1', 4, { ownerEpoch: 2 }), full('mg-2', 1, { ownerEpoch: 2 })]);
    expect(await store.loadSession('mg-1')).toMatchObject({ version: 4, lastSeq: 40, ownerEpoch: 2 });
    expect((await store.getHistory('mg-1')).map((h) => h.seq)).toEqual([4, 3]);
    expect(await written(store, 'mg-2')).toEqual({ session: 1, history: 1, transitions: 1, outbox: 1, log: 2, subscribed: true });
  });
});
