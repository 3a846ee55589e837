// Message expiry and the mailbox bound (issue 16 §2) over a real nats-server, Postgres and the
// control plane. Expiry: a message with Agentry-Expires-At (or sendMessage { expiresAt }) that has
// not started being handled by then is dead-lettered `expired` and never reaches a handler — on
// delivery, after sitting in the stream while the node was down, queued behind a turn, and when
// a merge restarts a turn (dropped from the merge with its own dead letter). Bound: under a flood
// every message is handled, merged or dead-lettered `mailbox-full`, none lost or twice; an API
// sender gets MAILBOX_FULL (JSON-RPC 4032, HTTP 429).
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineAgent, type AnyAgent, type InboxMessage } from '../../actors/index.js';
import { createClient, RpcError } from '../../client/index.js';
import { natsClient, publish, waitFor } from '../helpers.js';
import { startIngressEnv, type IngressEnv } from '../ingress/env.js';

const seen = new Map<string, unknown[]>();
const gates = new Map<string, () => void>();
const note = (sid: string, batch: readonly InboxMessage[]): void => {
  const l = seen.get(sid) ?? [];
  l.push(...batch.filter((m) => m.kind !== 'wake').map((m) => m.body));
  seen.set(sid, l);
};
/** `{ op: 'hold' }` holds the turn until the test opens its gate (an abort ends it too). */
const hold = async (sid: string, batch: readonly InboxMessage[], signal: AbortSignal): Promise<void> => {
  if (!batch.some((m) => (m.body as { op?: string } | null)?.op === 'hold')) return;
  await new Promise<void>((r) => { gates.set(sid, r); signal.addEventListener('abort', () => { r(); }); });
};
const queued = defineAgent({ type: 'queued', onMessage: 'queue', async handle(b, ctx) { await hold(ctx.sessionId, b, ctx.signal); note(ctx.sessionId, b); return undefined; } });
const merging = defineAgent({ type: 'merging', onMessage: 'cancel-and-merge', maxMergeDelayMs: 60_000, async handle(b, ctx) { await hold(ctx.sessionId, b, ctx.signal); if (!ctx.signal.aborted) note(ctx.sessionId, b); return undefined; } });
const boundedQ = defineAgent({ type: 'bounded-q', onMessage: 'queue', maxMailbox: 5, async handle(b, ctx) { await hold(ctx.sessionId, b, ctx.signal); note(ctx.sessionId, b); return undefined; } });
const boundedM = defineAgent({ type: 'bounded-m', onMessage: 'cancel-and-merge', maxMailbox: 5, maxMergeDelayMs: 60_000, async handle(b, ctx) { await hold(ctx.sessionId, b, ctx.signal); if (!ctx.signal.aborted) note(ctx.sessionId, b); return undefined; } });
const agents: AnyAgent[] = [queued, merging, boundedQ, boundedM];

let env: IngressEnv;
beforeAll(async () => { env = await startIngressEnv('expirymailbox', agents); });
afterAll(async () => { await env?.stop(); });

const deadLetters = (sid: string) => env.store.listDeadLetters({ sessionId: sid, limit: 1000 });
const history = (sid: string) => env.store.getHistory(sid, { limit: 1000 });

describe('message expiry', () => {
  it('an expired message (NATS header, sendMessage { expiresAt }) is dead-lettered on delivery and never handled', async () => {
    await env.rt.createAgent('x-1', 'queued');
    const nc = await natsClient(env.nats.url);
    try {
      await publish(nc, 'x-1', { t: 'late' }, { 'Agentry-Expires-At': new Date(Date.now() - 1000).toISOString() });
      await publish(nc, 'x-1', { t: 'bad' }, { 'Agentry-Expires-At': 'tomorrow' });
      await publish(nc, 'x-1', { t: 'fine' }, { 'Agentry-Expires-At': String(Date.now() + 600_000) });
    } finally { await nc.close(); }
    await env.rt.sendMessage('x-1', { t: 'api-late' }, { expiresAt: Date.now() - 1 });
    const http = await env.post('/agents/x-1/messages', { message: { t: 'http-late' }, expiresAt: new Date(Date.now() - 1).toISOString() });
    expect(http.status).toBe(202);
    await waitFor(async () => (await deadLetters('x-1')).length === 4, 'four dead letters');
    const dls = await deadLetters('x-1');
    expect(dls.filter((d) => d.reason === 'expired')).toHaveLength(3);
    expect(dls.find((d) => d.reason === 'invalid-header')?.error).toMatch(/Agentry-Expires-At must be epoch milliseconds or an ISO 8601 time/);
    await waitFor(() => seen.get('x-1')?.length === 1, 'the fine one handled');
    expect(seen.get('x-1')).toEqual([{ t: 'fine' }]);
  }, 60_000);

  it('queued behind a turn: it expires while waiting and is dropped with its own dead letter and history row', async () => {
    await env.rt.createAgent('x-q', 'queued');
    await env.rt.sendMessage('x-q', { op: 'hold', t: 1 });
    await waitFor(() => gates.has('x-q'), 'the first turn running');
    await env.rt.sendMessage('x-q', { t: 2 }, { expiresAt: Date.now() + 300 });
    await env.rt.sendMessage('x-q', { t: 3 });
    await waitFor(async () => (await env.rt.getAgent('x-q')).mailbox.pending === 2, 'two queued');
    await new Promise((r) => setTimeout(r, 400));
    gates.get('x-q')!();
    await waitFor(async () => (await history('x-q')).length === 3, 'three history rows');
    expect(seen.get('x-q')).toEqual([{ op: 'hold', t: 1 }, { t: 3 }]);
    const h = (await history('x-q')).reverse();
    expect(h.map((e) => [(e.body as { t: number }).t, e.outcome])).toEqual([[1, 'ok'], [2, 'expired'], [3, 'ok']]);
    expect((await deadLetters('x-q')).map((d) => d.reason)).toEqual(['expired']);
  }, 60_000);

  it('merged: an expired message is dropped from the merge with its own dead letter, the newer one runs', async () => {
    await env.rt.createAgent('x-m', 'merging');
    await env.rt.sendMessage('x-m', { op: 'hold', t: 1 }, { expiresAt: Date.now() + 300 });
    await waitFor(() => gates.has('x-m'), 'the turn running');
    await new Promise((r) => setTimeout(r, 400)); // it started in time: it runs until a merge restarts the turn
    await env.rt.sendMessage('x-m', { t: 2 });
    await waitFor(async () => (await history('x-m')).length === 2, 'both recorded');
    expect(seen.get('x-m')).toEqual([{ t: 2 }]);
    const h = (await history('x-m')).reverse();
    expect(h.map((e) => [(e.body as { t: number }).t, e.outcome])).toEqual([[1, 'expired'], [2, 'ok']]);
    expect((await deadLetters('x-m')).map((d) => [d.reason, d.id])).toEqual([['expired', expect.stringMatching(/^x-m:\d+$/)]]);
  }, 60_000);

});

describe('mailbox bound', () => {
  const flood = async (sid: string, type: string, n: number): Promise<void> => {
    await env.rt.createAgent(sid, type);
    const nc = await natsClient(env.nats.url);
    try {
      await publish(nc, sid, { op: 'hold', i: 0 });
      await waitFor(() => gates.has(sid), `${sid} holding its first turn`);
      for (let i = 1; i < n; i++) await publish(nc, sid, { i });
    } finally { await nc.close(); }
    await waitFor(async () => (await history(sid)).length + (await deadLetters(sid)).filter((d) => d.reason === 'mailbox-full').length >= n - 5, `${sid}: the flood refused`, 60_000);
    gates.get(sid)!();
    await waitFor(async () => (await history(sid)).length + (await deadLetters(sid)).length === n, `${sid}: all ${n} accounted for`, 60_000);
  };
  /** Every index appears exactly once: handled (history ok) or dead-lettered mailbox-full. */
  const accounted = async (sid: string, n: number): Promise<{ handled: number[]; full: number[] }> => {
    const handled = (await history(sid)).filter((h) => h.outcome === 'ok').map((h) => (h.body as { i: number }).i);
    const full = (await deadLetters(sid)).map((d) => { expect(d.reason).toBe('mailbox-full'); return (JSON.parse(d.payload as string) as { i: number }).i; });
    expect([...handled, ...full].sort((a, b) => a - b)).toEqual(Array.from({ length: n }, (_, i) => i));
    return { handled, full };
  };

  it('queue: a flood of 60 past maxMailbox 5 — each handled or dead-lettered mailbox-full, none lost or twice', async () => {
    await flood('mb-q', 'bounded-q', 60);
    const { handled, full } = await accounted('mb-q', 60);
    handled.sort((a, b) => a - b);
    expect(handled).toEqual([0, 1, 2, 3, 4]); // the turn under way counts: it + 4 queued = maxMailbox 5
    expect(full).toHaveLength(55);
    expect(seen.get('mb-q')).toHaveLength(handled.length);
  }, 120_000);

  it('cancel-and-merge: merging makes no room; merged ones count until their turn commits', async () => {
    await flood('mb-m', 'bounded-m', 40);
    const { handled } = await accounted('mb-m', 40);
    expect(handled.length).toBeLessThanOrEqual(5);
    expect((await history('mb-m')).every((h) => h.outcome === 'ok')).toBe(true);
  }, 120_000);

  it('an API sender gets MAILBOX_FULL: JSON-RPC 4032 and HTTP 429', async () => {
    await env.rt.createAgent('mb-api', 'bounded-q');
    await env.rt.sendMessage('mb-api', { op: 'hold', i: 0 });
    await waitFor(() => gates.has('mb-api'), 'holding');
    for (let i = 1; i <= 4; i++) await env.rt.sendMessage('mb-api', { i });
    await waitFor(async () => (await env.rt.getAgent('mb-api')).mailbox.pending === 4, 'four queued behind the turn: the mailbox holds 5');
    const r = await env.post('/agents/mb-api/messages', { message: { i: 6 } });
    expect(r.status).toBe(429);
    expect(r.json.error).toMatchObject({ type: 'MAILBOX_FULL', code: 4032, retryable: true });
    const api = createClient(env.cp.rpcUrl, { token: env.token, WebSocket });
    try {
      const err = await api.sendMessage({ agentId: 'mb-api', message: { i: 7 } }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RpcError);
      expect(err).toMatchObject({ code: 4032, type: 'MAILBOX_FULL', retryable: true });
    } finally { await api.close(); }
    gates.get('mb-api')!();
    await waitFor(async () => (await history('mb-api')).length === 5, 'the five taken ones handled');
    expect(await deadLetters('mb-api')).toEqual([]);
    // The issue-16 metrics are exported.
    const text = await (await fetch(`${env.cp.url}/metrics`, { headers: env.auth })).text();
    for (const line of ['agentry_sessions_blocked 0', 'agentry_migration_failures_total 0', 'agentry_migrations_total 0', 'agentry_session_ttl_total{action="stopped"} 0']) expect(text).toContain(line);
  }, 60_000);
});

describe('message expiry across a restart', () => {
  it('expired while the node was down: refused when the restarted node delivers it', async () => {
    await env.rt.createAgent('x-down', 'queued');
    await env.rt.sendMessage('x-down', { t: 0 });
    await waitFor(() => seen.get('x-down')?.length === 1, 'a first message handled');
    const { startRuntime } = await import('../helpers.js');
    await env.rt.stop();
    const nc = await natsClient(env.nats.url);
    try {
      await publish(nc, 'x-down', { t: 'soon' }, { 'Agentry-Expires-At': String(Date.now() + 200) });
      await publish(nc, 'x-down', { t: 'later' }, { 'Agentry-Expires-At': String(Date.now() + 600_000) });
    } finally { await nc.close(); }
    await new Promise((r) => setTimeout(r, 400));
    const rt2 = await startRuntime(env.nats.url, { agents, store: env.store });
    (env as { rt: typeof rt2 }).rt = rt2;
    // `>= 2`, not `=== 2`: a handler run twice (a { t: 0 } whose commit the stop refused) must fail
    // here, naming what ran, not as a 60 s timeout (the list can go from 1 to 3 entries at once).
    await waitFor(() => (seen.get('x-down')?.length ?? 0) >= 2, 'the unexpired one handled', 60_000);
    expect(seen.get('x-down')).toEqual([{ t: 0 }, { t: 'later' }]);
    await waitFor(async () => (await deadLetters('x-down')).some((d) => d.reason === 'expired'), 'the expired one dead-lettered');
  }, 60_000);
});
