// JetStream's storage fills up. A nats-server whose file store is exhausted refuses every write:
// publishes, and also the partition leases' renewals (their KV bucket is a stream like any
// other; checked on nats-server 2.9.10: "insufficient resources", 10023). Until 2026-11-29 the
// runtime's streams had no size of their own, so a backlog (producers faster than the runtime,
// or the runtime down for a while) or a week of event history could fill the server: the
// node's leases then lapsed, it stopped consuming, and nobody could take its partitions — the
// only thing that makes room in a work-queue inbox is consuming it, so the runtime stalled for
// good, with every message stuck.
//
// Now the inbox and the event history have their own `max_bytes`, well inside the server's
// storage: a full inbox refuses new messages (producers get a retryable error, nothing
// acknowledged is lost) while the leases keep renewing; routed event history is trimmed; and
// when the backlog drains, everything accepted is applied exactly once, in order.
//
// Real nats-server (max_file_store 4 MB here) and Postgres.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { defineAgent } from '../../actors/index.js';
import { startNatsServer, type NatsServerHandle } from '../../ops/natsServer.js';
import { openStore } from '../../persistence/index.js';
import type { Store } from '../../persistence/types.js';
import type { Runtime } from '../../runtime/index.js';
import { PG_URL, dropSchema, natsClient, publish, schemaName, sleep, startRuntime, tempDir, testNatsServerBinary, waitFor } from '../helpers.js';

const SESSIONS = 10;
const BODY = 'x'.repeat(900);

let release: () => void = () => {};
let gate = new Promise<void>((r) => { release = r; });

/** Records each message's `i`; holds every run until the test opens the gate (the backlog stays in the stream). */
const gated = defineAgent({
  type: 'full-gated',
  onMessage: 'queue',
  initialState: () => ({ seen: [] as number[] }),
  async handle(batch, ctx) {
    await gate;
    for (const m of batch) ctx.state.seen.push((m.body as { i: number }).i);
  },
});

/** Records the `i` of each event it gets. */
const listener = defineAgent({
  type: 'full-listener',
  onMessage: 'queue',
  subscribe: ['fill.>'],
  initialState: () => ({ got: [] as number[] }),
  handle(batch, ctx) {
    for (const m of batch) if (m.kind === 'event') ctx.state.got.push((m.body as { i: number }).i);
  },
});

/** The project's nats.conf with a 4 MB file store. */
function smallConfig(dir: string): string {
  const text = readFileSync(join(process.cwd(), 'nats.conf'), 'utf8').replace(/max_file_store:\s*\S+/, 'max_file_store: 4MB');
  const path = join(dir, 'small.conf');
  writeFileSync(path, text);
  return path;
}

describe('JetStream storage full', () => {
  const t = tempDir('agentry-jsfull-');
  let nats: NatsServerHandle;
  let nc: NatsConnection;
  let store: Store;
  let rt: Runtime;
  const schema = schemaName('jsfull');

  beforeAll(async () => {
    mkdirSync(join(t.dir, 'srv'), { recursive: true });
    nats = await startNatsServer({ storeDir: join(t.dir, 'srv', 'js'), partitions: 8, configPath: smallConfig(t.dir), binary: testNatsServerBinary() });
    nc = await natsClient(nats.url);
    store = openStore({ databaseUrl: PG_URL, schema });
    rt = await startRuntime(nats.url, {
      agents: [gated, listener], store,
      // A short lease (but not so short that a loaded machine's stalls lapse it): a node that
      // cannot renew loses its partitions within seconds.
      config: { inboxMaxBytes: 1024 * 1024, eventsMaxBytes: 1024 * 1024, leaseTtlMs: 5_000 },
    });
  }, 60_000);

  afterAll(async () => {
    release();
    await rt?.stop();
    await store?.close();
    await nc?.close();
    await nats?.stop();
    await dropSchema(schema);
    t.cleanup();
  }, 60_000);

  it('a full inbox refuses new messages, keeps its leases, and applies every accepted one once, in order, when it drains', async () => {
    for (let s = 0; s < SESSIONS; s++) await rt.createAgent(`full-${s}`, 'full-gated');
    // Fill: round robin over the sessions until JetStream refuses a message.
    const accepted = new Map<string, number[]>();
    let refusal: Error | null = null;
    for (let i = 0; refusal === null && i < 20_000; i++) {
      const sid = `full-${i % SESSIONS}`;
      try {
        await publish(nc, sid, { i, pad: BODY });
        accepted.set(sid, [...(accepted.get(sid) ?? []), i]);
      } catch (e) {
        refusal = e as Error;
      }
    }
    expect(refusal?.message).toMatch(/maximum bytes exceeded/); // the inbox's own limit, not the server's storage
    const total = [...accepted.values()].reduce((n, l) => n + l.length, 0);
    expect(total).toBeGreaterThan(500);

    // The control API says why, retryable, and stores nothing.
    const err = await rt.sendMessage('full-0', { i: -1, pad: BODY }).then(() => null, (e: unknown) => e as { code?: string; retryable?: boolean; details?: { reason?: string } });
    expect(err).toMatchObject({ code: 'NOT_READY', retryable: true, details: { reason: 'stream-full' } });

    // Several lease TTLs while full: the node keeps every partition (its renewals still find room).
    await sleep(12_000);
    const parts = await rt.getPartitions();
    expect(parts.filter((p) => p.nodeId !== rt.config.nodeId)).toEqual([]);

    // Drain: every accepted message applied once, in order.
    release();
    for (const [sid, want] of accepted) {
      await waitFor(async () => {
        const v = await rt.getAgent(sid);
        const seen = (v.userState as { seen: number[] }).seen;
        return seen.length >= want.length ? seen : null;
      }, `${sid} to apply its ${want.length} messages`, 120_000, 200).then((seen) => { expect(seen).toEqual(want); });
    }
    // Room again: the control API takes messages.
    await expect(rt.sendMessage('full-0', { i: 100_000 })).resolves.toBeTruthy();
  }, 240_000);

  it('event history past its limit is trimmed of routed events; every accepted event is delivered once', async () => {
    gate = Promise.resolve();
    await rt.createAgent('listen-1', 'full-listener');
    const js = jetstream(nc, { timeout: 30_000 });
    const jsm = await jetstreamManager(nc);
    // 6 MB of events, more than the whole server's storage, published as fast as they are taken;
    // a refused one (the events not routed yet fill the stream) is published again a little later.
    const accepted: number[] = [];
    let refused = 0;
    for (let i = 0; i < 6_000; i++) {
      for (;;) {
        try {
          await js.publish('agentry.events.fill.x', JSON.stringify({ i, pad: BODY }));
          accepted.push(i);
          break;
        } catch (e) {
          if (!/maximum bytes exceeded/.test((e as Error).message)) throw e;
          refused++;
          await sleep(200);
        }
      }
    }
    const si = await jsm.streams.info('AGENTRY_EVENTS');
    expect(si.config.max_bytes).toBe(1024 * 1024);
    expect(si.state.first_seq).toBeGreaterThan(1); // routed history trimmed
    const got = await waitFor(async () => {
      const v = await rt.getAgent('listen-1');
      const g = (v.userState as { got: number[] }).got;
      return g.length >= accepted.length ? g : null;
    }, 'every accepted event delivered', 120_000, 250);
    expect(got).toEqual(accepted);
    console.log(`events: ${accepted.length} accepted, ${refused} refusals retried; history kept from seq ${si.state.first_seq}`);
  }, 300_000);
});
