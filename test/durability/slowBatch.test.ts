// A group commit's batch heavier than the store's deadline (sessions with megabytes of state,
// a slow disk): Postgres cancels it (statement_timeout) and, before 2026-11-29, the committer
// sent the very same batch again at every try — the node never committed again. Here every row
// written to `sessions` costs 100 ms (a trigger), so a batch of more than ~14 sessions always
// passes the 1.5 s statement timeout. Now a batch that times out is split in halves, each tried
// alone: every session commits, every message applied once, in order.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NatsConnection } from '@nats-io/transport-node';
import pg from 'pg';
import { createPgStore } from '../../persistence/index.js';
import type { Store } from '../../persistence/types.js';
import type { Runtime } from '../../runtime/index.js';
import { committedSeen, recorder } from './recorder.js';
import { PG_URL, dropSchema, natsClient, publish, schemaName, startNats, startRuntime, waitFor } from '../helpers.js';

const SESSIONS = 60;

describe('a commit batch slower than the statement timeout', () => {
  let nats: Awaited<ReturnType<typeof startNats>>;
  let schema: string;
  let store: Store;
  let rt: Runtime | undefined;
  let nc: NatsConnection;
  let direct: pg.Client;

  beforeAll(async () => {
    nats = await startNats(8);
    schema = schemaName('slowbatch');
    store = createPgStore({ connectionString: PG_URL, schema, statementTimeoutMs: 1500, queryTimeoutMs: 10_000 });
    rt = await startRuntime(nats.url, { agents: [recorder], store, config: { defaultAgentType: 'recorder', ackWaitMs: 30_000 } });
    direct = new pg.Client({ connectionString: PG_URL, options: `-c search_path=${schema}` });
    await direct.connect();
    await direct.query(`CREATE FUNCTION ${schema}.slow_row() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(0.1); RETURN NEW; END $$`);
    await direct.query(`CREATE TRIGGER slow_row BEFORE INSERT OR UPDATE ON ${schema}.sessions FOR EACH ROW EXECUTE FUNCTION ${schema}.slow_row()`);
    nc = await natsClient(nats.url);
  });

  afterAll(async () => {
    await direct?.query(`DROP TRIGGER IF EXISTS slow_row ON ${schema}.sessions`).catch(() => undefined);
    await rt?.stop();
    await nc?.close();
    await direct?.end();
    await store?.close();
    await nats?.cleanup();
    if (schema) await dropSchema(schema);
  });

  it('is split until it fits: every session commits, every message once, in order', async () => {
    const ids = Array.from({ length: SESSIONS }, (_, n) => `sb-${n}`);
    for (const id of ids) await publish(nc, id, { i: 0 });
    for (const id of ids) await publish(nc, id, { i: 1 });
    const seenOf = (sid: string): Promise<number[]> => committedSeen(store, sid);
    await waitFor(async () => {
      for (const id of ids) if ((await seenOf(id)).length < 2) return false;
      return true;
    }, 'every session to commit both messages', 120_000, 500);
    for (const id of ids) expect({ id, seen: await seenOf(id) }).toEqual({ id, seen: [0, 1] });
    await waitFor(() => rt!.readiness().ok, 'readiness', 30_000);
  }, 180_000);
});
