// The per-tenant rate for producers that publish straight to NATS (issue 17 §3: "NATS producers:
// deferred, not lost"), over a real nats-server and Postgres. Tenant A floods three sessions
// through JetStream at far more than its rate: every message is applied, once, in order per
// session, and no faster than the bucket allows (a lower bound on time, which only a rate that
// lets messages through early can break; no upper wall-clock bound but the wait's deadline). The
// host keeps the deferred messages alive past a 1 s ack_wait, so JetStream does not hand them out
// again meanwhile. Tenant B, with a session on the same partition as one of A's, is not deferred
// and is applied while A's flood still waits. The API and the NATS path share the node's bucket:
// the API is refused while A's deferred messages take every token, and what the API accepted is
// not counted a second time when it arrives. Each of these fails on the code before deferral
// (no deferral: the flood is applied at once and nothing is counted).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineAgent } from '../../actors/index.js';
import { partitionOf } from '../../runtime/partition.js';
import { natsClient, publish, waitFor } from '../helpers.js';
import { startIngressEnv, type IngressEnv } from './env.js';
import type { NatsConnection } from '@nats-io/transport-node';

interface Seen { seen: number[]; at: number[] }

/** Records each message's `i` and the time its turn ran, in batch order. */
const rec = defineAgent({
  type: 'rec',
  onMessage: 'queue',
  initialState: (): Seen => ({ seen: [], at: [] }),
  handle(batch, ctx) {
    const st = ctx.state as Seen;
    for (const m of batch) { st.seen.push((m.body as { i: number }).i); st.at.push(Date.now()); }
    return undefined;
  },
});

const RATE = 25;
const BURST = 5;
const N = 150;
const PARTITIONS = 8;

let env: IngressEnv;
let nc: NatsConnection;
/** A session id of tenant B on the same partition as `ra-0`. */
let bId = '';

beforeAll(async () => {
  env = await startIngressEnv('tenantratenats', [rec], {
    config: { tenantRatePerSec: RATE, tenantBurst: BURST, rpcRatePerSec: 1000, rpcBurst: 1000, ackWaitMs: 1000 },
  });
  nc = await natsClient(env.nats.url);
  for (let k = 0; k < 3; k++) await env.rt.createAgent(`ra-${k}`, 'rec', undefined, { tenant: 'A' });
  for (let j = 0; ; j++) if (partitionOf(`rb-${j}`, PARTITIONS) === partitionOf('ra-0', PARTITIONS)) { bId = `rb-${j}`; break; }
  await env.rt.createAgent(bId, 'rec', undefined, { tenant: 'B' });
  await env.rt.createAgent('rc-0', 'rec', undefined, { tenant: 'C' });
});
afterAll(async () => { await nc?.close(); await env?.stop(); });

const stateOf = async (id: string): Promise<Seen> => (await env.rt.getAgent(id)).userState as Seen;
const metrics = async (): Promise<string> => (await fetch(`${env.cp.url}/metrics`, { headers: env.auth })).text();
const counter = (text: string, name: string, tenant: string): number => {
  const m = new RegExp(`^${name}\\{tenant="${tenant}"\\} (\\d+)`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
};

describe('tenant rate for NATS producers', () => {
  it('defers a NATS flood over the rate and applies all of it once, in order, at about the rate; another tenant is not held', async () => {
    const t0 = Date.now();
    // Pipelined, as a busy producer would (one connection: the stream keeps the order of the calls).
    await Promise.all(Array.from({ length: N }, (_, i) => publish(nc, `ra-${i % 3}`, { i })));
    for (let i = 0; i < 3; i++) await publish(nc, bId, { i });

    // B's messages are not deferred: they are applied while A's flood still waits for tokens.
    await waitFor(async () => (await stateOf(bId)).seen.length === 3, 'B applied', 30_000, 20);
    const aWhenB = (await Promise.all([0, 1, 2].map((k) => stateOf(`ra-${k}`)))).reduce((n, s) => n + s.seen.length, 0);
    expect(aWhenB, 'A had applied all of its flood before B got through').toBeLessThan(N);
    expect((await stateOf(bId)).seen).toEqual([0, 1, 2]);
    expect(counter(await metrics(), 'agentry_tenant_messages_deferred', 'A'), 'A\'s messages deferred now').toBeGreaterThan(0);

    // While A's deferred messages take every token, the API (same bucket) is refused for A.
    const statuses: number[] = [];
    for (let k = 0; k < 5 && !statuses.includes(429); k++) statuses.push((await env.post('/agents/ra-0/messages', { message: { i: -1 - k } })).status);
    expect(statuses).toContain(429);
    const viaApi = statuses.filter((s) => s === 202).length;

    await waitFor(async () => (await Promise.all([0, 1, 2].map((k) => stateOf(`ra-${k}`)))).reduce((n, s) => n + s.seen.length, 0) === N + viaApi, 'A\'s flood applied', 90_000, 50);
    const states = await Promise.all([0, 1, 2].map((k) => stateOf(`ra-${k}`)));
    for (let k = 0; k < 3; k++) {
      // In publish order per session, each once (an API message accepted meanwhile sits in its place).
      const fromNats = states[k]!.seen.filter((i) => i >= 0);
      expect(fromNats, `session ra-${k}`).toEqual(Array.from({ length: N }, (_, i) => i).filter((i) => i % 3 === k));
    }
    // No faster than the bucket: N messages need N - BURST tokens beyond the burst (the API's count too).
    const last = Math.max(...states.flatMap((s) => s.at));
    expect(last - t0).toBeGreaterThanOrEqual(((N + viaApi - BURST) / RATE) * 1000 - 50);
    expect(await env.rt.listDeadLetters({})).toEqual([]);

    const text = await metrics();
    expect(counter(text, 'agentry_tenant_rate_deferred_total', 'A')).toBeGreaterThan(0);
    expect(counter(text, 'agentry_tenant_rate_deferred_total', 'B')).toBe(0);
    expect(counter(text, 'agentry_tenant_rate_limited_total', 'A')).toBeGreaterThan(0);
    expect(counter(text, 'agentry_tenant_messages_deferred', 'A')).toBe(0);
  });

  it('does not count twice what the API accepted; NATS messages behind it wait their turn, in order', async () => {
    // C's burst is taken by the API. The host must not charge those messages again (it would
    // defer them); the NATS messages published right behind them find the bucket empty.
    for (let i = 0; i < BURST; i++) expect((await env.post('/agents/rc-0/messages', { message: { i } })).status).toBe(202);
    const K = 30;
    await Promise.all(Array.from({ length: K }, (_, i) => publish(nc, 'rc-0', { i: 100 + i })));
    await waitFor(async () => (await stateOf('rc-0')).seen.length === BURST + K, 'C applied', 60_000, 20);
    expect((await stateOf('rc-0')).seen).toEqual([...Array.from({ length: BURST }, (_, i) => i), ...Array.from({ length: K }, (_, i) => 100 + i)]);
    const deferred = counter(await metrics(), 'agentry_tenant_rate_deferred_total', 'C');
    expect(deferred).toBeGreaterThan(0);
    expect(deferred, 'an API message was deferred: counted twice').toBeLessThanOrEqual(K);
  });
});
