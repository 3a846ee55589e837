// Postgres outage under load: the runtime reaches Postgres through a TCP proxy that the test
// cuts for 5 s while a producer keeps publishing. Throughout, and especially during the cut,
// no inbox message may be acked before its commit: every message the work-queue stream has
// deleted (= acked) must be covered by its session's committed last_seq, read directly from
// Postgres (not through the proxy). Readiness reports false during the cut and true after it,
// and everything published is then applied exactly once, in order. Postgres only: the
// outage is of a server.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { headers as natsHeaders, type NatsConnection } from '@nats-io/transport-node';
import pg from 'pg';
import { defineAgent } from '../../actors/index.js';
import type { Readiness, Runtime } from '../../runtime/index.js';
import { PG_URL, dropSchema, natsClient, schemaName, sleep, startNats, startRuntime, waitFor } from '../helpers.js';
import { startTcpProxy, type TcpProxy } from './tcpProxy.js';

const SESSIONS = 50;
const CUT_MS = 5000;

const recorder = defineAgent<{ seen: number[] }>({
  type: 'recorder',
  onMessage: 'queue',
  initialState: () => ({ seen: [] }),
  async handle(batch, ctx) {
    await new Promise((r) => setTimeout(r, 1));
    for (const m of batch) ctx.state.seen.push((m.body as { i: number }).i);
    return undefined;
  },
});

describe('Postgres outage under load', () => {
  let nats: Awaited<ReturnType<typeof startNats>>;
  let proxy: TcpProxy;
  let schema: string;
  let direct: pg.Client;
  let rt: Runtime | undefined;
  let nc: NatsConnection;
  let jsm: JetStreamManager;

  beforeAll(async () => {
    nats = await startNats(8);
    proxy = await startTcpProxy(Number(new URL(PG_URL).port || 5432), new URL(PG_URL).hostname);
    schema = schemaName('outage');
    const viaProxy = new URL(PG_URL);
    viaProxy.hostname = '127.0.0.1';
    viaProxy.port = String(proxy.port);
    rt = await startRuntime(nats.url, {
      agents: [recorder],
      // The runtime opens (and closes) the store itself, from the configuration, as in production.
      config: { store: 'auto', databaseUrl: viaProxy.toString(), databaseSchema: schema, ackWaitMs: 2000 },
    });
    direct = new pg.Client({ connectionString: PG_URL, options: `-c search_path=${schema}` });
    await direct.connect();
    nc = await natsClient(nats.url);
    jsm = await jetstreamManager(nc);
  });

  afterAll(async () => {
    proxy?.restore();
    await rt?.stop();
    await nc?.close();
    await direct?.end();
    await proxy?.close();
    await nats?.cleanup();
    if (schema) await dropSchema(schema);
  });

  it(`cut for ${CUT_MS / 1000} s: nothing acked before its commit, readiness false, then everything applied exactly once`, async () => {
    const runtime = rt!;
    const ids = Array.from({ length: SESSIONS }, (_, n) => `o-${n}`);
    for (const id of ids) await runtime.createAgent(id, 'recorder');

    const sessionOfSeq = new Map<number, string>();
    const published = new Map<string, number>(ids.map((id) => [id, 0]));
    const js = jetstream(nc);
    let publishing = true;
    const producer = (async () => {
      for (let i = 0; publishing; i++) {
        await Promise.all(ids.map(async (id) => {
          const h = natsHeaders();
          h.set('Agentry-Kind', 'message');
          const ack = await js.publish(`agentry.in.${id}`, JSON.stringify({ i }), { headers: h });
          sessionOfSeq.set(ack.seq, id);
        }));
        for (const id of ids) published.set(id, i + 1);
        await sleep(25);
      }
    })();

    // The invariant, checked over and over: acked (deleted from the work queue) ⇒ committed.
    const violations: string[] = [];
    let checks = 0;
    let checksDuringCut = 0;
    let cutNow = false;
    const checkAckedImpliesCommitted = async (): Promise<void> => {
      const info = await jsm.streams.info(runtime.transport.inboxStream, { deleted_details: true });
      const firstSeq = info.state.first_seq;
      const deleted = new Set(info.state.deleted ?? []);
      const wasCut = cutNow;
      // Read after the stream: an ack that happened before the stream read had its commit before it.
      const { rows } = await direct.query<{ id: string; last_seq: string }>('SELECT id, last_seq FROM sessions');
      const committed = new Map(rows.map((r) => [r.id, Number(r.last_seq)]));
      for (const [seq, id] of sessionOfSeq) {
        const acked = seq < firstSeq || deleted.has(seq);
        if (acked && (committed.get(id) ?? 0) < seq) violations.push(`seq ${seq} of ${id} acked but committed last_seq is ${committed.get(id)}`);
      }
      checks++;
      if (wasCut && cutNow) checksDuringCut++;
    };
    let checking = true;
    const checker = (async () => { while (checking) { await checkAckedImpliesCommitted(); await sleep(200); } })();

    const readiness: { at: number; r: Readiness }[] = [];
    const sampler = setInterval(() => { readiness.push({ at: Date.now(), r: runtime.readiness() }); }, 50);

    await sleep(2000);
    const beforeCut = { stats: { ...runtime.host.stats }, ready: runtime.readiness() };
    expect(beforeCut.ready.ok).toBe(true);
    const cutAt = Date.now();
    cutNow = true;
    proxy.cut();
    await sleep(CUT_MS);
    // At least CUT_MS, and until each thing this test looks at has happened inside the cut (a
    // loaded box may take longer than the cut for a health ping to time out or a check to run).
    await waitFor(() => readiness.some((x) => x.at > cutAt && !x.r.ok && !x.r.checks.store), 'readiness to report the store down', 60_000);
    await waitFor(() => checksDuringCut > 0, 'an invariant check inside the cut', 60_000);
    const stream = await waitFor(async () => { const i = await jsm.streams.info(runtime.transport.inboxStream); return i.state.messages > 0 ? i : null; }, 'work to pile up unacked', 60_000);
    const duringCut = readiness.filter((x) => x.at > cutAt);
    cutNow = false;
    proxy.restore();
    const restoredAt = Date.now();
    await sleep(1500);
    publishing = false;
    await producer;

    await waitFor(async () => (await jsm.streams.info(runtime.transport.inboxStream)).state.messages === 0, 'the inbox to drain after the outage', 60_000, 100);
    await waitFor(() => runtime.readiness().ok, 'readiness to recover', 60_000);
    clearInterval(sampler);
    checking = false;
    await checker;
    await checkAckedImpliesCommitted(); // and once more with everything acked
    console.log(`[outage] ${sessionOfSeq.size} messages; ${checks} invariant checks (${checksDuringCut} inside the cut); unacked at the end of the cut ${stream.state.messages}; ready again ${(readiness.find((x) => x.at > restoredAt && x.r.ok)?.at ?? NaN) - restoredAt} ms after restore; stats ${JSON.stringify(runtime.host.stats)}`);

    expect(violations.slice(0, 5)).toEqual([]);
    expect(checksDuringCut).toBeGreaterThan(0);
    // Readiness said so while Postgres was away, and the store check is what failed.
    expect(duringCut.some((x) => !x.r.ok && !x.r.checks.store)).toBe(true);
    expect(duringCut.every((x) => x.r.checks.nats)).toBe(true);
    // Work piled up unacked in the stream during the cut instead of being acked.
    expect(stream.state.messages).toBeGreaterThan(0);
    expect(runtime.readiness()).toEqual({ ok: true, checks: expect.objectContaining({ nats: true, store: true }) });
    // And the partition consumers hold nothing back: nothing pending, nothing awaiting an ack.
    for (let p = 0; p < runtime.config.partitions; p++) {
      const ci = await jsm.consumers.info(runtime.transport.inboxStream, runtime.transport.consumerName(p)!);
      expect({ p, pending: ci.num_pending, ackPending: ci.num_ack_pending }).toEqual({ p, pending: 0, ackPending: 0 });
    }

    // Everything published was applied exactly once, in order: committed state and live view agree.
    const { rows } = await direct.query<{ id: string; status: string; snapshot: { context: { userState: { seen: number[] } } } }>('SELECT id, status, snapshot FROM sessions ORDER BY id');
    expect(rows).toHaveLength(SESSIONS);
    const wrong: string[] = [];
    for (const row of rows) {
      const expected = Array.from({ length: published.get(row.id)! }, (_, i) => i);
      const seen = row.snapshot.context.userState.seen;
      if (JSON.stringify(seen) !== JSON.stringify(expected) || row.status !== 'idle') wrong.push(`${row.id}: ${row.status} ${JSON.stringify(seen)} (published ${expected.length})`);
      const live = (await runtime.getAgent(row.id)).userState as { seen: number[] };
      if (JSON.stringify(live.seen) !== JSON.stringify(expected)) wrong.push(`${row.id} live view: ${JSON.stringify(live.seen)}`);
    }
    expect(wrong.slice(0, 5), `${wrong.length} problems`).toEqual([]);
  }, 300_000);
});
