/**
 * Picks the store for a configuration: memory when asked for, Postgres when DATABASE_URL is
 * set, otherwise PGlite under the data directory (the zero-setup default).
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { createMemoryStore } from '../persistence/memoryStore.js';
import type { Store } from '../persistence/types.js';
import type { RuntimeConfig } from './config.js';

/** Opens (but does not migrate) the store the configuration names. */
export async function openStoreFor(config: RuntimeConfig): Promise<Store> {
  if (config.store === 'memory') return createMemoryStore();
  const { openStore } = await import('../persistence/index.js');
  // PGlite does not create missing parent directories.
  if (!config.databaseUrl) mkdirSync(join(config.dataDir, 'pglite'), { recursive: true });
  return openStore({
    ...(config.databaseUrl ? { databaseUrl: config.databaseUrl } : { dataDir: join(config.dataDir, 'pglite') }),
    ...(config.databaseSchema ? { schema: config.databaseSchema } : {}),
  });
}
