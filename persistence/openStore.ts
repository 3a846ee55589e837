/** Owns the choice of backend from configuration, so the runtime never names one itself. */
import { createPgStore } from './pgStore.js';
import { createPgliteStore } from './pgliteStore.js';
import type { Store } from './types.js';

export interface OpenStoreConfig {
  /** Postgres URL; when set, the `pg` backend is used. */
  readonly databaseUrl?: string;
  /** PGlite data directory when no URL is set; in memory when both are unset. */
  readonly dataDir?: string;
  /** Postgres schema (ignored by PGlite, which owns its whole database). */
  readonly schema?: string;
}

/**
 * Opens Postgres when a URL is configured, else an embedded PGlite database, so a single
 * node needs no server. Call `migrate()` on the result before use.
 * @example
 * const store = openStore({ databaseUrl: process.env.DATABASE_URL, dataDir: '.agentry/db' });
 */
export function openStore(config: OpenStoreConfig): Store {
  if (config.databaseUrl) return createPgStore({ connectionString: config.databaseUrl, schema: config.schema });
  return createPgliteStore({ dataDir: config.dataDir });
}
