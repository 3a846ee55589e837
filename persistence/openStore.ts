/** Owns the choice of backend from configuration, so the runtime never names one itself. */
import { createPgStore } from './pgStore.js';
import { createPgliteStore } from './pgliteStore.js';
import { createPgliteWorkerStore } from './pgliteWorkerStore.js';
import type { Store } from './types.js';

export interface OpenStoreConfig {
  /** Postgres URL; when set, the `pg` backend is used. */
  readonly databaseUrl?: string;
  /** PGlite data directory when no URL is set; in memory when both are unset. */
  readonly dataDir?: string;
  /** Postgres schema (ignored by PGlite, which owns its whole database). */
  readonly schema?: string;
  /**
   * Run PGlite in a worker thread (default), so Postgres-in-WASM uses another core than the
   * runtime. `false` runs it in this thread, for debugging and profiling; so does the
   * environment variable `AGENTRY_PGLITE_WORKER=0` when this is unset.
   */
  readonly pgliteInWorker?: boolean;
}

/**
 * Opens Postgres when a URL is configured, else an embedded PGlite database (in a worker
 * thread unless asked otherwise), so a single node needs no server. Call `migrate()` on the
 * result before use.
 * @example
 * const store = openStore({ databaseUrl: process.env.DATABASE_URL, dataDir: '.agentry/db' });
 */
export function openStore(config: OpenStoreConfig): Store {
  if (config.databaseUrl) return createPgStore({ connectionString: config.databaseUrl, schema: config.schema });
  const inWorker = config.pgliteInWorker ?? !/^(0|false|no|off)$/i.test(process.env.AGENTRY_PGLITE_WORKER ?? '');
  return inWorker ? createPgliteWorkerStore({ dataDir: config.dataDir }) : createPgliteStore({ dataDir: config.dataDir });
}
