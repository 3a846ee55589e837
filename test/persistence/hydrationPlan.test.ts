// The batched hydration read must reach each session's history through the history primary
// key, on Postgres 15 and on PGlite. It once compared history.session_id with sessions.id (COLLATE
// "C") as they were: the implicit collations conflict, the index cannot serve the comparison, and
// every session scanned all of history (50x slower at 60k rows, and growing with the table).
// Sequential scans are turned off here, so only a plan that cannot use the index shows one.
import { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPgStore } from '../../persistence/index.js';
import type { CommitRecord, Store } from '../../persistence/index.js';
import { createPgliteDb } from '../../persistence/pgliteStore.js';
import { selectSessionsWithHistory } from '../../persistence/queries.js';
import type { Queryable } from '../../persistence/sqlDb.js';
import { createSqlStore } from '../../persistence/sqlStore.js';
import { PG_URL, dropSchema, schemaName } from '../helpers.js';

const records = (): CommitRecord[] => Array.from({ length: 20 }, (_, i): CommitRecord => ({
  sessionId: `hp-${i}`, type: 'chat', status: 'idle', snapshot: { i }, lastSeq: 5, version: 1, partition: 0, ownerEpoch: 1,
  wakeAt: null, wakeEvents: [], wakePriority: null, transitions: [], outbox: [],
  history: Array.from({ length: 5 }, (_, k) => ({
    sessionId: `hp-${i}`, seq: k + 1, kind: 'message', body: { k }, priority: 'normal', from: null, batchId: `b${k}`, outcome: 'ok', at: k,
  })),
}));

/** The plan of the hydration query as run through `explain` (a Queryable that prefixes EXPLAIN). */
async function planOf(explain: Queryable): Promise<string> {
  const rows = (await selectSessionsWithHistory(explain, ['hp-1', 'hp-2', 'hp-3'], { chat: 3 }, 2)) as unknown as Record<string, string>[];
  return rows.map((r) => r['QUERY PLAN']).join('\n');
}

describe('loadSessions reads history through its primary key', () => {
  const schema = schemaName('hyplan');
  let pgStore: Store;
  let client: pg.Client;
  let lite: PGlite;

  beforeAll(async () => {
    pgStore = createPgStore({ connectionString: PG_URL, schema });
    await pgStore.migrate();
    await pgStore.commit(records());
    client = new pg.Client({ connectionString: PG_URL, options: `-c search_path=${schema}` });
    await client.connect();
    lite = await PGlite.create();
    const liteStore = createSqlStore(createPgliteDb(Promise.resolve(lite)), 'pglite');
    await liteStore.migrate();
    await liteStore.commit(records());
  }, 60_000);

  afterAll(async () => {
    await client?.end();
    await pgStore?.close();
    await lite?.close();
    await dropSchema(schema);
  });

  it('on Postgres', async () => {
    await client.query('SET enable_seqscan = off');
    const plan = await planOf({
      query: async (text, params) => ({ rows: (await client.query(`EXPLAIN ${text}`, params as unknown[])).rows as never[] }),
      exec: () => Promise.resolve(),
    });
    expect(plan).toContain('history_pkey');
    expect(plan).not.toMatch(/Seq Scan on history/);
    // And the read itself, for the record: newest first, limit by type.
    const got = await pgStore.loadSessions(['hp-1', 'hp-2'], { byType: { chat: 3 }, fallback: 1 });
    expect(got.get('hp-2')!.history.map((e) => e.seq)).toEqual([5, 4, 3]);
  });

  it('on PGlite', async () => {
    await lite.query('SET enable_seqscan = off');
    const plan = await planOf({
      query: async (text, params) => ({ rows: (await lite.query(`EXPLAIN ${text}`, params as unknown[])).rows as never[] }),
      exec: () => Promise.resolve(),
    });
    expect(plan).toContain('history_pkey');
    expect(plan).not.toMatch(/Seq Scan on history/);
  });
});
