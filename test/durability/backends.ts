// The two durable stores every durability suite runs against: CI's real Postgres (a fresh
// schema, dropped afterwards) and PGlite on disk (a temp data directory, removed afterwards).
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import { openStore } from '../../persistence/index.js';
import type { Store } from '../../persistence/types.js';
import { PG_URL, dropSchema, schemaName, tempDir } from '../helpers.js';

export interface StoreBackend {
  readonly name: 'postgres' | 'pglite';
  /** Opens a new handle on the same database (call `migrate()` or hand it to a runtime). PGlite: one open handle at a time. */
  open(): Store;
  /** The store part of a runtime child's configuration (see childRuntime.ts). */
  readonly childConfig: { databaseUrl?: string; schema?: string; dataDir?: string };
  /**
   * Every row of `sessions` and `history`, read with plain SQL (snapshots as jsonb text), for
   * comparing whole tables. PGlite: only while no store has the directory open.
   */
  dumpTables(): Promise<TableDump>;
  cleanup(): Promise<void>;
}

export interface TableDump {
  readonly sessions: readonly Record<string, unknown>[];
  readonly history: readonly Record<string, unknown>[];
}

const DUMP_SESSIONS = `SELECT id, type, status, snapshot::text AS snapshot, last_seq::text AS last_seq, version::text AS version,
  partition, owner_epoch::text AS owner_epoch, wake_at::text AS wake_at, wake_events, wake_priority,
  created_at::text AS created_at, updated_at::text AS updated_at FROM sessions ORDER BY id`;
const DUMP_HISTORY = `SELECT session_id, seq::text AS seq, batch_id, kind, body::text AS body, priority, "from", outcome, at::text AS at
  FROM history ORDER BY history.session_id, history.seq, history.batch_id`; // qualified: the bigint, not the text alias

function postgres(tag: string): StoreBackend {
  const schema = schemaName(tag);
  return {
    name: 'postgres',
    open: () => openStore({ databaseUrl: PG_URL, schema }),
    childConfig: { databaseUrl: PG_URL, schema },
    async dumpTables() {
      const c = new pg.Client({ connectionString: PG_URL, options: `-c search_path=${schema}` });
      await c.connect();
      try {
        return { sessions: (await c.query(DUMP_SESSIONS)).rows, history: (await c.query(DUMP_HISTORY)).rows };
      } finally { await c.end(); }
    },
    cleanup: () => dropSchema(schema),
  };
}

function pglite(tag: string): StoreBackend {
  const t = tempDir(`agentry-${tag}-pglite-`);
  return {
    name: 'pglite',
    // A runtime configured with dataDir keeps PGlite under <dataDir>/pglite.
    open: () => openStore({ dataDir: join(t.dir, 'pglite') }),
    childConfig: { dataDir: t.dir },
    async dumpTables() {
      const db = await PGlite.create({ dataDir: join(t.dir, 'pglite') });
      try {
        return { sessions: (await db.query<Record<string, unknown>>(DUMP_SESSIONS)).rows, history: (await db.query<Record<string, unknown>>(DUMP_HISTORY)).rows };
      } finally { await db.close(); }
    },
    cleanup: () => { t.cleanup(); return Promise.resolve(); },
  };
}

/** `describe.each(storeBackends('tag'))('… on %s', (_name, make) => …)`. */
export function storeBackends(tag: string): [string, () => StoreBackend][] {
  return [['postgres', () => postgres(tag)], ['pglite', () => pglite(tag)]];
}
