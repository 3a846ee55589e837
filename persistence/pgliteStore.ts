/**
 * Owns the PGlite backend: Postgres compiled to WASM, in process, for single-node installs
 * and tests. It shares every query with the `pg` backend through the `SqlDb` adapter below.
 */
import { PGlite } from '@electric-sql/pglite';
import type { Transaction } from '@electric-sql/pglite';
import { normalizePgError } from './normalizePgError.js';
import type { Queryable, SqlDb } from './sqlDb.js';
import { createSqlStore } from './sqlStore.js';
import type { Store } from './types.js';

export interface PgliteStoreOptions {
  /** Directory holding the database; in memory (lost on close) when undefined. */
  readonly dataDir?: string;
  /** Clock for created_at/updated_at; defaults to `Date.now`. */
  readonly now?: () => number;
}

/**
 * Creates a store on an embedded PGlite database. Opening is asynchronous and happens in the
 * background; every method waits for it, so a failure to open surfaces from the first call.
 * @example
 * const store = createPgliteStore({ dataDir: '.agentry/db' });
 * await store.migrate();
 */
export function createPgliteStore(opts: PgliteStoreOptions = {}): Store {
  return createSqlStore(createPgliteDb(PGlite.create({ dataDir: opts.dataDir })), 'pglite', { now: opts.now });
}

/**
 * Adapts PGlite to `SqlDb`. PGlite has one connection and serialises callers itself: its
 * `transaction()` holds a mutex that plain queries also wait for, so a query issued while a
 * commit is open runs after it, never inside it (covered by the concurrency test).
 */
export function createPgliteDb(opening: Promise<PGlite>): SqlDb {
  opening.catch(() => undefined); // reported by the first call that awaits it, not as unhandled
  const wrap = (db: PGlite | Transaction): Queryable => ({
    async query(text, params) {
      try {
        const res = await db.query(text, params as unknown[] | undefined);
        return { rows: res.rows as never[] };
      } catch (err) {
        throw normalizePgError(err);
      }
    },
    async exec(text: string) {
      try {
        await db.exec(text);
      } catch (err) {
        throw normalizePgError(err);
      }
    },
  });
  const open = async (): Promise<PGlite> => {
    try {
      return await opening;
    } catch (err) {
      throw normalizePgError(err);
    }
  };
  return {
    query: async (text, params) => wrap(await open()).query(text, params),
    exec: async (text) => wrap(await open()).exec(text),
    async transaction(fn) {
      const db = await open();
      try {
        return await db.transaction((tx) => fn(wrap(tx)));
      } catch (err) {
        throw normalizePgError(err);
      }
    },
    async close() {
      const db = await opening.catch(() => undefined);
      if (db && !db.closed) await db.close();
    },
  };
}
