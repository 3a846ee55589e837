// A runtime refuses to start against a database migrated by a newer release, with a clear
// SCHEMA_TOO_NEW error, on Postgres and on PGlite. (Running the migrations three times is a
// no-op: covered per backend by test/persistence/store.test.ts, not repeated here.)
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import { createRuntime } from '../../runtime/index.js';
import { createLogger } from '../../runtime/logger.js';
import { PG_URL, startNats, waitFor } from '../helpers.js';
import { storeBackends, type StoreBackend } from './backends.js';

const FUTURE = 9999;

describe.each(storeBackends('schema'))('schema newer than the code on %s', (name, makeBackend) => {
  let nats: Awaited<ReturnType<typeof startNats>>;
  let backend: StoreBackend;

  beforeAll(async () => {
    nats = await startNats(8);
    backend = makeBackend();
    const store = backend.open();
    const { current } = await store.migrate();
    await store.close();
    expect(current).toBeGreaterThan(0);
    expect(current).toBeLessThan(FUTURE);
    // What a newer release would have left behind.
    const insert = `INSERT INTO agentry_migrations (version, name, applied_at) VALUES (${FUTURE}, 'from_the_future', 0)`;
    if (name === 'postgres') {
      const c = new pg.Client({ connectionString: PG_URL, options: `-c search_path=${backend.childConfig.schema!}` });
      await c.connect();
      try { await c.query(insert); } finally { await c.end(); }
    } else {
      const db = await PGlite.create({ dataDir: join(backend.childConfig.dataDir!, 'pglite') });
      try { await db.query(insert); } finally { await db.close(); }
    }
  });

  afterAll(async () => {
    await nats?.cleanup();
    await backend?.cleanup();
  });

  it('createRuntime fails with SCHEMA_TOO_NEW naming both versions, closes what it opened, and leaves the database alone', async () => {
    // Tagged so the test can see the runtime's own Postgres connections.
    const appName = `agentry_schema_${process.pid}_${Date.now()}`;
    const url = new URL(PG_URL);
    url.searchParams.set('application_name', appName);
    const err = await createRuntime({
      agents: [],
      logger: createLogger('silent'),
      // The runtime opens the store from its configuration, as `agentry start` does.
      config: { natsUrl: nats.url, partitions: 8, ...(name === 'postgres' ? { databaseUrl: url.toString(), databaseSchema: backend.childConfig.schema! } : { dataDir: backend.childConfig.dataDir! }) },
    }).then(async (rt) => { await rt.stop(); return null; }, (e: unknown) => e);
    expect(err).toMatchObject({ code: 'SCHEMA_TOO_NEW', found: FUTURE, retryable: false });
    expect((err as Error).message).toMatch(new RegExp(`schema version ${FUTURE} is newer than this release supports \\(\\d+\\)`));
    if (name === 'postgres') {
      // The refused runtime closed its pool (before the fix it kept a connection for the pool's
      // 10 s idle timeout, holding the process open); the server notices within moments.
      const c = new pg.Client({ connectionString: PG_URL });
      await c.connect();
      try {
        await waitFor(async () => (await c.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1', [appName])).rows[0]!.n === 0, 'the refused runtime\'s connections to close', 30_000, 50);
      } finally { await c.end(); }
    }
    // Nothing was written: the store still opens and reports the same refusal, with no sessions.
    const store = backend.open();
    try {
      await expect(store.migrate()).rejects.toMatchObject({ code: 'SCHEMA_TOO_NEW' });
      expect(await store.listSessions()).toEqual([]);
    } finally {
      await store.close();
    }
  });
});
