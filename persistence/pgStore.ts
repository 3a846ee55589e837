/**
 * Owns the Postgres backend: a `pg.Pool` wrapped as a `SqlDb`, with every driver error
 * passed through `normalizePgError` on its way out. The queries live in `queries.ts`.
 */
import pg from 'pg';
import { normalizePgError } from './normalizePgError.js';
import type { Queryable, SqlDb } from './sqlDb.js';
import { createSqlStore } from './sqlStore.js';
import type { Store } from './types.js';

export interface PgStoreOptions {
  readonly connectionString: string;
  /** Schema for all tables (created by `migrate()`); set as the search_path of every connection. */
  readonly schema?: string;
  /** Pool size; default 10. */
  readonly poolSize?: number;
  /** Server-side statement_timeout in ms; a timed-out query surfaces as `StoreUnavailableError`. */
  readonly statementTimeoutMs?: number;
  /**
   * Client-side deadline of every query (default 15 s): a blackholed server (packets dropped,
   * no RST) would otherwise hold a query, and the connection, forever.
   */
  readonly queryTimeoutMs?: number;
  /**
   * Server-side idle_in_transaction_session_timeout (default 10 s): a process paused inside a
   * commit transaction (GC, SIGSTOP, VM freeze) loses it, and its locks, instead of blocking
   * the partition's new owner until it wakes up and commits late.
   */
  readonly idleInTransactionTimeoutMs?: number;
  /** Clock for created_at/updated_at; defaults to `Date.now`. */
  readonly now?: () => number;
  /** Called when an idle pooled connection fails (the pool drops it and reconnects on demand). */
  readonly onIdleError?: (err: unknown) => void;
}

/** Plain identifiers only: the schema goes into a startup option, where quoting is fragile. */
const SCHEMA_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

/**
 * Creates a store on Postgres 15+. Connects lazily: a wrong URL or a down server shows up as
 * `StoreUnavailableError` from the first call (typically `migrate()` or `ping()`).
 * @example
 * const store = createPgStore({ connectionString: process.env.DATABASE_URL! });
 * await store.migrate();
 */
export function createPgStore(opts: PgStoreOptions): Store {
  if (opts.schema !== undefined && !SCHEMA_NAME.test(opts.schema)) {
    throw new TypeError(`schema must be a plain identifier ([A-Za-z_][A-Za-z0-9_]*), got ${JSON.stringify(opts.schema)}`);
  }
  const pool = new pg.Pool({
    connectionString: opts.connectionString,
    max: opts.poolSize ?? 10,
    connectionTimeoutMillis: 10_000,
    // Startup parameters apply to every connection the pool opens, before any query runs.
    ...(opts.schema !== undefined ? { options: `-c search_path=${opts.schema}` } : {}),
    ...(opts.statementTimeoutMs !== undefined ? { statement_timeout: opts.statementTimeoutMs } : {}),
    query_timeout: opts.queryTimeoutMs ?? 15_000,
    idle_in_transaction_session_timeout: opts.idleInTransactionTimeoutMs ?? 10_000,
    keepAlive: true,
  });
  // Without a listener an idle client's error (server restart) would crash the process.
  pool.on('error', (err) => opts.onIdleError?.(err));
  return createSqlStore(createPgDb(pool), 'pg', { schema: opts.schema, now: opts.now });
}

/** Adapts a pool to `SqlDb`; exported for tests that need two stores on one pool. */
export function createPgDb(pool: pg.Pool): SqlDb {
  const wrap = (client: pg.Pool | pg.PoolClient): Queryable => ({
    async query(text, params) {
      try {
        const res = await client.query(text, params as unknown[] | undefined);
        return { rows: res.rows as never[] };
      } catch (err) {
        throw normalizePgError(err);
      }
    },
    async exec(text: string) {
      try {
        await client.query(text); // no parameters: simple protocol, several statements allowed
      } catch (err) {
        throw normalizePgError(err);
      }
    },
  });
  const poolQueryable = wrap(pool);
  return {
    ...poolQueryable,
    async transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
      let client: pg.PoolClient;
      try {
        client = await pool.connect();
      } catch (err) {
        throw normalizePgError(err);
      }
      // A checked-out client that loses its socket emits 'error' (the pool only listens while
      // it is idle); unhandled, that event would crash the process. The failing query rejects
      // too, so remembering the error to destroy the client on release is all we need.
      let broken: Error | undefined;
      const onError = (err: Error): void => {
        broken = err;
      };
      client.on('error', onError);
      const tx = wrap(client);
      try {
        await tx.exec('BEGIN');
        const result = await fn(tx);
        await tx.exec('COMMIT');
        return result;
      } catch (err) {
        if (!broken) {
          try {
            await client.query('ROLLBACK');
          } catch (rollbackErr) {
            // The connection is unusable: destroy it rather than return it to the pool.
            broken = rollbackErr instanceof Error ? rollbackErr : new Error(String(rollbackErr));
          }
        }
        throw normalizePgError(err);
      } finally {
        client.off('error', onError);
        client.release(broken);
      }
    },
    close: () => pool.end(),
  };
}
