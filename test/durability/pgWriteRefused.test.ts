// Postgres up but refusing writes: a failover that left the runtime on a standby (SQLSTATE 25006
// read_only_sql_transaction), a full disk (53100 disk_full), the server out of memory (53200).
// Reads work, every write fails with the code for 5 s, under load, with sleepers due meanwhile.
// The codes are raised by statement triggers on every table of the test's schema, switched by a
// row of a table of their own: the same SQLSTATE a real standby or full disk gives, at a moment
// the test chooses. Readiness must report the store down while it lasts (not a hot retry loop
// that says ready), nothing may be dead-lettered or acked before its commit, and afterwards every
// message is applied exactly once, in order, and every timer fires once, not early.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { headers as natsHeaders, type NatsConnection } from '@nats-io/transport-node';
import pg from 'pg';
import { defineAgent } from '../../actors/index.js';
import type { Readiness, Runtime } from '../../runtime/index.js';
import { StoreUnavailableError } from '../../persistence/index.js';
import { normalizePgError } from '../../persistence/normalizePgError.js';
import { PG_URL, dropSchema, natsClient, schemaName, sleep, startNats, startRuntime, waitFor } from '../helpers.js';

const SESSIONS = 20;
const SLEEPERS = 6;
const FAULT_MS = 5000;

const recorder = defineAgent<{ seen: (number | string)[] }>({
  type: 'recorder',
  onMessage: 'queue',
  initialState: () => ({ seen: [] }),
  async handle(batch, ctx) {
    await new Promise((r) => setTimeout(r, 1));
    for (const m of batch) ctx.state.seen.push(m.kind === 'wake' ? `wake:${(m.body as { reason: string }).reason}` : (m.body as { i: number }).i);
    return undefined;
  },
});

/**
 * How a command answered: its error's code, retryable flag and details, or `ok`. A command still
 * unanswered after 60 s (30 × its deadline) counts as hung.
 */
async function answerOf(p: Promise<unknown>): Promise<{ code: string; retryable?: boolean; details?: unknown }> {
  const hung = new Promise<{ code: string }>((r) => { setTimeout(() => { r({ code: 'HUNG' }); }, 60_000).unref(); });
  return Promise.race([
    p.then(() => ({ code: 'ok' }), (e: unknown) => {
      const x = e as { code?: string; retryable?: boolean; details?: unknown };
      return { code: x.code ?? String(e), retryable: x.retryable, details: x.details };
    }),
    hung,
  ]);
}

/** Statement triggers on every table of `schema` that raise `fault_switch.code` while it is set. */
async function installFaultSwitch(c: pg.Client, schema: string): Promise<void> {
  await c.query(`CREATE TABLE ${schema}.fault_switch (code text)`);
  await c.query(`INSERT INTO ${schema}.fault_switch VALUES (NULL)`);
  await c.query(`CREATE FUNCTION ${schema}.fault_raise() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE c text;
    BEGIN
      SELECT code INTO c FROM ${schema}.fault_switch;
      IF c IS NOT NULL THEN RAISE EXCEPTION 'injected fault %', c USING ERRCODE = c; END IF;
      RETURN NULL;
    END $$`);
  const { rows } = await c.query<{ tablename: string }>(`SELECT tablename FROM pg_tables WHERE schemaname = $1 AND tablename <> 'fault_switch'`, [schema]);
  for (const { tablename } of rows) {
    await c.query(`CREATE TRIGGER fault_raise BEFORE INSERT OR UPDATE OR DELETE ON ${schema}."${tablename}" FOR EACH STATEMENT EXECUTE FUNCTION ${schema}.fault_raise()`);
  }
}

describe.each([
  ['25006', 'read-only (a standby after a failover)'],
  ['53100', 'disk full'],
])('Postgres refusing writes with SQLSTATE %s, %s', (code) => {
  let nats: Awaited<ReturnType<typeof startNats>>;
  let schema: string;
  let direct: pg.Client;
  let rt: Runtime | undefined;
  let nc: NatsConnection;
  let jsm: JetStreamManager;

  beforeAll(async () => {
    nats = await startNats(8);
    schema = schemaName(`wr${code}`);
    rt = await startRuntime(nats.url, {
      agents: [recorder],
      config: { store: 'auto', databaseUrl: PG_URL, databaseSchema: schema, ackWaitMs: 2000, ctlTimeoutMs: 2000 },
    });
    direct = new pg.Client({ connectionString: PG_URL, options: `-c search_path=${schema}` });
    await direct.connect();
    await installFaultSwitch(direct, schema);
    nc = await natsClient(nats.url);
    jsm = await jetstreamManager(nc);
  });

  afterAll(async () => {
    await direct?.query(`UPDATE ${schema}.fault_switch SET code = NULL`).catch(() => undefined);
    await rt?.stop();
    await nc?.close();
    await direct?.end();
    await nats?.cleanup();
    if (schema) await dropSchema(schema);
  });

  it(`writes refused for ${FAULT_MS / 1000} s: readiness false, nothing lost or doubled, timers once`, async () => {
    const runtime = rt!;
    const ids = Array.from({ length: SESSIONS }, (_, n) => `w-${n}`);
    for (const id of ids) await runtime.createAgent(id, 'recorder');
    const sleepers = Array.from({ length: SLEEPERS }, (_, n) => `s-${n}`);
    for (const id of sleepers) await runtime.createAgent(id, 'recorder');
    for (const id of ['cmd-1', 'cmd-2']) await runtime.createAgent(id, 'recorder');

    const published = new Map<string, number>(ids.map((id) => [id, 0]));
    const js = jetstream(nc, { timeout: 30_000 });
    let publishing = true;
    const producer = (async () => {
      for (let i = 0; publishing; i++) {
        await Promise.all(ids.map(async (id) => {
          const h = natsHeaders();
          h.set('Agentry-Kind', 'message');
          h.set('Nats-Msg-Id', `${id}-${i}`);
          await js.publish(`agentry.in.${id}`, JSON.stringify({ i }), { headers: h });
        }));
        for (const id of ids) published.set(id, i + 1);
        await sleep(25);
      }
    })();

    const readiness: { at: number; r: Readiness }[] = [];
    const sampler = setInterval(() => { readiness.push({ at: Date.now(), r: runtime.readiness() }); }, 50);
    await sleep(1500);
    expect(runtime.readiness().ok).toBe(true);

    // Sleepers due while writes are refused.
    const dueAt = new Map<string, number>();
    for (const [n, id] of sleepers.entries()) {
      const until = Date.now() + 1500 + n * 500;
      dueAt.set(id, until);
      await runtime.sleepAgent(id, { until });
    }
    const deadLettersBefore = runtime.host.stats.deadLetters;
    const faultAt = Date.now();
    await direct.query(`UPDATE fault_switch SET code = $1`, [code]);
    // A command in flight as the writes start failing answers within its deadline (80 % of
    // ctlTimeoutMs), retryable; one sent once readiness reports the store down is refused at once,
    // unchanged. The old code held both until the store took writes again.
    const inFlight = await answerOf(runtime.sleepAgent('cmd-1', { until: Date.now() + 600_000 }));
    expect(inFlight).toMatchObject({ retryable: true });
    expect(['NOT_READY', 'TIMEOUT']).toContain(inFlight.code);
    await waitFor(() => readiness.some((x) => x.at > faultAt && !x.r.ok && !x.r.checks.store), 'readiness to report the store down', 30_000);
    const create = await answerOf(runtime.createAgent('late-1', 'recorder'));
    expect(create).toMatchObject({ code: 'NOT_READY', retryable: true, details: { reason: 'store-unavailable' } });
    const sleepCmd = await answerOf(runtime.sleepAgent('cmd-2', { until: Date.now() + 600_000 }));
    expect(sleepCmd).toMatchObject({ code: 'NOT_READY', retryable: true });
    expect((await runtime.getAgent('cmd-2')).state).toBe('idle'); // reads are served
    await sleep(FAULT_MS);
    const stream = await jsm.streams.info(runtime.transport.inboxStream);
    await direct.query(`UPDATE fault_switch SET code = NULL`);
    const restoredAt = Date.now();
    await sleep(1000);
    publishing = false;
    await producer;

    await waitFor(async () => (await jsm.streams.info(runtime.transport.inboxStream)).state.messages === 0, 'the inbox to drain', 60_000, 100);
    await waitFor(() => runtime.readiness().ok, 'readiness to recover', 60_000);
    clearInterval(sampler);
    const readyAgain = (readiness.find((x) => x.at > restoredAt && x.r.ok)?.at ?? NaN) - restoredAt;
    console.log(`[write-refused ${code}] unacked at the end of the fault ${stream.state.messages}; ready again ${readyAgain} ms after; stats ${JSON.stringify(runtime.host.stats)}`);

    expect(runtime.host.stats.deadLetters - deadLettersBefore).toBe(0);
    expect(stream.state.messages).toBeGreaterThan(0); // work waited in the stream, unacked

    const { rows } = await direct.query<{ id: string; status: string; snapshot: { context: { userState: { seen: (number | string)[] } } } }>('SELECT id, status, snapshot FROM sessions ORDER BY id');
    const byId = new Map(rows.map((r) => [r.id, r]));
    const wrong: string[] = [];
    for (const id of ids) {
      const expected = Array.from({ length: published.get(id)! }, (_, i) => i);
      const seen = byId.get(id)?.snapshot.context.userState.seen;
      if (JSON.stringify(seen) !== JSON.stringify(expected)) wrong.push(`${id}: ${JSON.stringify(seen)} (published ${expected.length})`);
    }
    expect(wrong.slice(0, 5), `${wrong.length} problems`).toEqual([]);
    for (const id of sleepers) {
      await waitFor(async () => (await runtime.getAgent(id)).state !== 'sleeping', `${id} to wake`, 30_000, 100);
      const history = await runtime.getHistory(id, { limit: 10 });
      const wakes = history.filter((h) => h.kind === 'wake');
      expect({ id, wakes: wakes.length }).toEqual({ id, wakes: 1 });
      expect(wakes[0]!.at).toBeGreaterThanOrEqual(dueAt.get(id)!);
    }
  }, 180_000);
});

describe('a real read-only Postgres session', () => {
  it('is classified as the store being unavailable (retryable), not as a raw driver error', async () => {
    // What a pool sees after a failover to a standby: every transaction read-only.
    const c = new pg.Client({ connectionString: PG_URL, options: '-c default_transaction_read_only=on' });
    await c.connect();
    try {
      const raw = await c.query('CREATE TEMP TABLE t (x int)').then(() => null, (e: unknown) => e);
      expect(raw).toMatchObject({ code: '25006' });
      const err = normalizePgError(raw);
      expect(err).toBeInstanceOf(StoreUnavailableError);
      expect(err).toMatchObject({ code: 'STORE_UNAVAILABLE', retryable: true });
      expect((await c.query<{ one: number }>('SELECT 1 AS one')).rows[0]!.one).toBe(1); // reads still work
    } finally {
      await c.end();
    }
  });
});
