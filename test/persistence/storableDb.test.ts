// Against real Postgres 15 and PGlite: each kind of poison (NUL in a string or a key, a lone
// surrogate, deep nesting) is refused by the database with a data exception that normalizes to
// StoreDataError (STORE_DATA, never retryable), through raw SQL and through the store; and
// toStorable()/storableText() of the same poison is stored and reads back as written, so a dead
// letter of a poison message can itself be stored.
import { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createPgliteStore, openStore, storableProblem, storableText, StoreDataError, toStorable, type DeadLetter, type Store,
} from '../../persistence/index.js';
import { normalizePgError } from '../../persistence/normalizePgError.js';
import { PG_URL, dropSchema, schemaName } from '../helpers.js';

const deep = (n: number): unknown => JSON.parse(`${'['.repeat(n)}"x"${']'.repeat(n)}`);

/** Every kind of poison, as a JS value a producer could have sent. */
const POISON: Readonly<Record<string, unknown>> = {
  'NUL in a string': { text: 'a\u0000b' },
  'NUL in a key': { ['k\u0000']: 1 },
  'raw NUL text': 'raw\u0000bytes',
  'lone high surrogate': { text: 'x\ud800' },
  'lone low surrogate': ['\udc00'],
  '20,000 levels deep': deep(20_000),
  'deep, with a NUL at the bottom': JSON.parse(`${'{"a":'.repeat(5000)}"\\u0000"${'}'.repeat(5000)}`),
};

interface Raw {
  query(sql: string, params?: unknown[]): Promise<{ rows: Record<string, unknown>[] }>;
}

interface Backend {
  readonly name: string;
  raw: Raw;
  store: Store;
}

/** Runs `fn` and returns the normalized error it throws (fails the test when it does not throw). */
async function refusal(fn: () => Promise<unknown>): Promise<unknown> {
  try {
    await fn();
  } catch (e) {
    return normalizePgError(e);
  }
  throw new Error('expected the database to refuse');
}

const backends: Backend[] = [];
let pgClient: pg.Client;
let pglite: PGlite;
const schema = schemaName('storable_db');

beforeAll(async () => {
  pgClient = new pg.Client({ connectionString: PG_URL });
  await pgClient.connect();
  await pgClient.query(`CREATE SCHEMA ${schema}`);
  await pgClient.query(`SET search_path TO ${schema}`);
  await pgClient.query('CREATE TABLE t (id serial PRIMARY KEY, j jsonb, s text)');
  const pgStore = openStore({ databaseUrl: PG_URL, schema });
  await pgStore.migrate();
  backends.push({ name: 'postgres', raw: { query: (q, p) => pgClient.query(q, p) }, store: pgStore });

  pglite = await PGlite.create();
  await pglite.query('CREATE TABLE t (id serial PRIMARY KEY, j jsonb, s text)');
  const liteStore = createPgliteStore();
  await liteStore.migrate();
  backends.push({ name: 'pglite', raw: { query: async (q, p) => ({ rows: (await pglite.query(q, p)).rows as Record<string, unknown>[] }) }, store: liteStore });
}, 60_000);

afterAll(async () => {
  for (const b of backends) await b.store.close();
  await pglite?.close();
  await pgClient?.end();
  await dropSchema(schema);
});

describe.each(['postgres', 'pglite'])('%s', (name) => {
  const b = (): Backend => backends.find((x) => x.name === name)!;

  it('refuses a NUL in jsonb (22P05), a NUL in text (22021) and a lone surrogate in jsonb (22P02) as STORE_DATA, not retryable', async () => {
    const cases: [string, string, unknown[]][] = [
      ['22P05', 'INSERT INTO t (j) VALUES ($1::jsonb)', [JSON.stringify({ a: 'a\u0000b' })]],
      ['22P05', 'INSERT INTO t (j) VALUES ($1::jsonb)', [JSON.stringify({ ['k\u0000']: 1 })]],
      ['22021', 'INSERT INTO t (s) VALUES ($1)', ['a\u0000b']],
      ['22P02', 'INSERT INTO t (j) VALUES ($1::jsonb)', [JSON.stringify({ a: 'x\ud800' })]],
    ];
    for (const [sqlState, sql, params] of cases) {
      const e = await refusal(() => b().raw.query(sql, params));
      expect(e, `${sqlState}: ${String(e)}`).toBeInstanceOf(StoreDataError);
      expect(e).toMatchObject({ code: 'STORE_DATA', retryable: false, sqlState });
    }
  });

  it('refuses a NUL in a dead letter through the store with StoreDataError (a retry cannot help)', async () => {
    const dl: DeadLetter = { id: `poison-${name}`, sessionId: 's', reason: 'test', error: null, attempts: 0, payload: { text: 'a\u0000b' }, createdAt: 1, replayedAt: null };
    const e = await refusal(() => b().store.addDeadLetter(dl));
    expect(e).toBeInstanceOf(StoreDataError);
    expect(e).toMatchObject({ code: 'STORE_DATA', retryable: false });
    // A NUL in a query's text parameter (listAgents' type filter) too.
    await expect(b().store.listSessions({ type: 'a\u0000b', limit: 10 })).rejects.toBeInstanceOf(StoreDataError);
  });

  it('stores toStorable() of every poison kind in jsonb and reads it back as written', async () => {
    for (const [kind, value] of Object.entries(POISON)) {
      const safe = toStorable(value);
      expect(storableProblem(safe, 64), kind).toBeNull();
      const { rows } = await b().raw.query('INSERT INTO t (j) VALUES ($1::jsonb) RETURNING j::text AS j', [JSON.stringify(safe)]);
      expect(JSON.parse(rows[0]!.j as string), kind).toEqual(safe);
    }
  });

  it('stores a dead letter of each poison kind through the store, with storableText ids', async () => {
    for (const [kind, value] of Object.entries(POISON)) {
      const sid = storableText(`bad\u0000id-${kind}`);
      const dl: DeadLetter = {
        id: `${sid}:1`, sessionId: sid, reason: 'unstorable', error: storableText(`poison: ${kind} \u0000`), attempts: 0,
        payload: toStorable(value), createdAt: 1, replayedAt: null,
      };
      await b().store.addDeadLetter(dl);
      const [got] = await b().store.listDeadLetters({ sessionId: sid, limit: 1 });
      expect(got, kind).toMatchObject({ id: dl.id, sessionId: sid, reason: 'unstorable', error: dl.error });
      expect(got!.payload, kind).toEqual(dl.payload);
    }
  });
});

describe('postgres only', () => {
  it('refuses 20,000 levels of jsonb with 54001 (stack depth), as STORE_DATA', async () => {
    const e = await refusal(() => pgClient.query('INSERT INTO t (j) VALUES ($1::jsonb)', [`${'['.repeat(20_000)}1${']'.repeat(20_000)}`]));
    expect(e).toBeInstanceOf(StoreDataError);
    expect(e).toMatchObject({ sqlState: '54001', retryable: false });
  });

  it('a value the driver cannot serialize (deeper than JSON.stringify goes) is STORE_DATA too', async () => {
    const e = await refusal(() => pgClient.query('INSERT INTO t (j) VALUES ($1)', [deep(200_000)]));
    expect(e).toBeInstanceOf(StoreDataError);
    expect((e as StoreDataError).sqlState).toBeUndefined();
  });
});
