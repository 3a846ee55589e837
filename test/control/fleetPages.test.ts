/* eslint-disable @typescript-eslint/no-unsafe-call, @typescript-eslint/no-unsafe-return, @typescript-eslint/no-unsafe-argument -- the raw client deals in untyped JSON on purpose: it must not share the server's types */
// Issue 18 (and 17's "every list API filters by tenant"): the reads and bulk actions behind the
// inspector's fleet pages, over a real WebSocket against a runtime on real NATS and Postgres.
// Dead letters across sessions: filters (reason, session, agent type, tenant, time, replayed),
// cursor paging newest first, bulk replay (the messages are handled by their sessions; a second
// identical call sends nothing) and bulk discard (gone; again: discarded false). The event log
// newest first: paging by cursor visits every event once, in order, by pattern, sender and time.
// Cron tasks paged and by tenant; tenants with session counts and budget-only tenants. Bad input
// of each new parameter: a typed error, nothing changed.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TerminalError, defineAgent } from '../../actors/index.js';
import { methods } from '../../client/index.js';
import { openStore } from '../../persistence/index.js';
import type { Store } from '../../persistence/types.js';
import { startControlPlane, type ControlPlane, type Runtime } from '../../runtime/index.js';
import { readEventsNewestFirst } from '../../runtime/eventLog.js';
import { PG_URL, dropSchema, schemaName, sleep, startNats, startRuntime, waitFor } from '../helpers.js';
import { RawRpc } from './rawRpc.js';
import { switchableFailure } from '../fixtures/switchableFailure.js';

/** While `sw.failing`, every `flaky` turn fails terminally (its batch is dead-lettered at once). */
const sw = switchableFailure();
const flaky = sw.flaky;
const other = defineAgent<{ seen: number }>({
  type: 'other', onMessage: 'queue', initialState: () => ({ seen: 0 }),
  handle(_b, ctx) { if (sw.failing) throw new TerminalError('other: refusing'); ctx.state.seen++; return undefined; },
});

let nats: Awaited<ReturnType<typeof startNats>>;
let schema: string;
let store: Store;
let rt: Runtime;
let cp: ControlPlane;
let rpc: RawRpc;

function conforms(method: keyof typeof methods, result: unknown): void {
  const r = methods[method].result.safeParse(result);
  expect(r.success, `${method} result ${JSON.stringify(result)?.slice(0, 300)} vs schema: ${r.error?.message ?? ''}`).toBe(true);
}

/** The error of a call expected to fail: its numeric code and data.type. */
async function fails(method: string, params: unknown): Promise<{ code: number; type: string; message: string }> {
  const r = await rpc.call(method, params);
  expect(r.error, `${method} ${JSON.stringify(params)} should fail`).toBeDefined();
  return { code: r.error!.code, type: r.error!.data?.type, message: r.error!.message };
}

/** Every page of a listing, following `next` into `cursorParam`. */
async function allPages(method: string, params: Record<string, unknown>, key: string, cursorParam: string): Promise<{ rows: any[]; pages: number }> {
  const rows: any[] = [];
  let cursor: unknown;
  let pages = 0;
  for (;;) {
    const r = await rpc.ok(method, { ...params, ...(cursor !== undefined ? { [cursorParam]: cursor } : {}) });
    conforms(method as keyof typeof methods, r);
    rows.push(...r[key]);
    pages++;
    if (r.next === null || r.next === undefined) return { rows, pages };
    cursor = r.next;
    if (pages > 100) throw new Error('paging does not end');
  }
}

beforeAll(async () => {
  nats = await startNats(8);
  schema = schemaName('fleet_pages');
  store = openStore({ databaseUrl: PG_URL, schema });
  rt = await startRuntime(nats.url, { agents: [flaky, other], store });
  cp = await startControlPlane(rt, { port: 0 });
  rpc = await RawRpc.open(cp.rpcUrl);
}, 120_000);

afterAll(async () => {
  rpc?.close();
  await cp?.close();
  await rt?.stop();
  await store?.close();
  await nats?.cleanup();
  if (schema) await dropSchema(schema);
});

describe('inspector fleet pages over the control API', () => {
  it('dead letters across sessions: filters, cursor pages, bulk replay handled by the sessions, bulk discard; safe to retry', async () => {
    sw.failing = true;
    for (let i = 0; i < 4; i++) await rpc.ok('createAgent', { agentId: `dl-f${i}`, type: 'flaky', tenant: i < 2 ? 'acme' : 'globex' });
    await rpc.ok('createAgent', { agentId: 'dl-o0', type: 'other' });
    for (let i = 0; i < 4; i++) for (let k = 0; k < 2; k++) await rpc.ok('sendMessage', { agentId: `dl-f${i}`, message: { text: `m${i}.${k}` } });
    await rpc.ok('sendMessage', { agentId: 'dl-o0', message: 'x' });
    const all = await waitFor(async () => {
      const r = await rpc.ok('listDeadLetters', { limit: 100 });
      return r.deadLetters.length === 9 ? r : null;
    }, 'nine dead letters', 60_000, 100);
    conforms('listDeadLetters', all);
    expect(all.next).toBeNull();
    const times = all.deadLetters.map((d: any) => d.createdAt);
    expect([...times].sort((a, b) => b - a)).toEqual(times); // newest first
    expect(new Set(all.deadLetters.map((d: any) => d.agentType))).toEqual(new Set(['flaky', 'other']));

    // Cursor pages of 2 visit every one exactly once, in the same order.
    const paged = await allPages('listDeadLetters', { limit: 2 }, 'deadLetters', 'before');
    expect(paged.pages).toBe(5);
    expect(paged.rows.map((d) => d.id)).toEqual(all.deadLetters.map((d: any) => d.id));

    // Filters: agent type, tenant, session, reason, time, replayed.
    expect((await rpc.ok('listDeadLetters', { agentType: 'other' })).deadLetters.map((d: any) => d.agentId)).toEqual(['dl-o0']);
    const acme = await rpc.ok('listDeadLetters', { tenant: 'acme' });
    expect(new Set(acme.deadLetters.map((d: any) => d.agentId))).toEqual(new Set(['dl-f0', 'dl-f1']));
    expect(acme.deadLetters.length).toBe(4);
    expect((await rpc.ok('listDeadLetters', { agentId: 'dl-f2' })).deadLetters.length).toBe(2);
    const reason = all.deadLetters[0].reason as string;
    expect((await rpc.ok('listDeadLetters', { reason })).deadLetters.length).toBe(all.deadLetters.filter((d: any) => d.reason === reason).length);
    expect((await rpc.ok('listDeadLetters', { reason: 'no-such-reason' })).deadLetters).toEqual([]);
    const newest = times[0] as number;
    expect((await rpc.ok('listDeadLetters', { since: newest + 1 })).deadLetters).toEqual([]);
    expect((await rpc.ok('listDeadLetters', { until: new Date(newest + 1).toISOString() })).deadLetters.length).toBe(9);
    expect((await rpc.ok('listDeadLetters', { replayed: true })).deadLetters).toEqual([]);

    // Bulk replay of acme's four (plus an unknown id): each outcome in order; the sessions handle them.
    sw.failing = false;
    const ids = acme.deadLetters.map((d: any) => d.id as string);
    const replay = await rpc.ok('replayDeadLetters', { ids: [...ids, 'no-such-dead-letter', ids[0]] });
    conforms('replayDeadLetters', replay);
    expect(replay.results.map((r: any) => r.id)).toEqual([...ids, 'no-such-dead-letter']);
    for (const r of replay.results.slice(0, 4)) expect(r).toMatchObject({ ok: true, published: 1, duplicates: 0, skipped: false });
    expect(replay.results[4]).toMatchObject({ ok: false, error: { type: 'INVALID_ARGUMENT', retryable: false } });
    for (const sid of ['dl-f0', 'dl-f1']) {
      const seen = await waitFor(async () => {
        const v = await rpc.ok('getAgent', { agentId: sid });
        return v.userState.seen.length === 2 ? v.userState.seen : null;
      }, `${sid} handled its replayed messages`, 30_000, 50);
      expect([...seen].sort()).toEqual([`m${sid.slice(-1)}.0`, `m${sid.slice(-1)}.1`]);
    }
    expect((await rpc.ok('listDeadLetters', { replayed: true })).deadLetters.length).toBe(4);
    // The same call again (a lost answer, say): nothing is sent twice.
    const again = await rpc.ok('replayDeadLetters', { ids });
    for (const r of again.results) expect(r).toMatchObject({ ok: true, published: 0, skipped: true });
    await sleep(300);
    expect((await rpc.ok('getAgent', { agentId: 'dl-f0' })).userState.seen.length).toBe(2);

    // Bulk discard: gone; again, discarded false.
    const globex = (await rpc.ok('listDeadLetters', { tenant: 'globex' })).deadLetters.map((d: any) => d.id as string);
    expect(globex.length).toBe(4);
    const discard = await rpc.ok('discardDeadLetters', { ids: globex });
    conforms('discardDeadLetters', discard);
    expect(discard.results).toEqual(globex.map((id: string) => ({ id, ok: true, discarded: true })));
    expect((await rpc.ok('listDeadLetters', { tenant: 'globex' })).deadLetters).toEqual([]);
    expect((await rpc.ok('discardDeadLetters', { ids: globex })).results.every((r: any) => r.discarded === false)).toBe(true);

    // Bad input: typed errors, nothing changed.
    expect(await fails('listDeadLetters', { before: 'garbage' })).toMatchObject({ code: 4002, type: 'INVALID_ARGUMENT' });
    expect(await fails('listDeadLetters', { since: 'yesterday-ish' })).toMatchObject({ code: 4002, type: 'INVALID_ARGUMENT' });
    expect((await fails('listDeadLetters', { reasn: 'x' })).code).toBe(-32602);
    expect((await fails('listDeadLetters', { agentId: 'a.b' })).type).toBe('INVALID_SESSION_ID');
    expect((await fails('replayDeadLetters', { ids: [] })).code).toBe(-32602);
    expect((await fails('replayDeadLetters', { ids: Array.from({ length: 101 }, (_, i) => `x${i}`) })).code).toBe(-32602);
    expect((await fails('discardDeadLetters', { ids: 'dl-f0:1' })).code).toBe(-32602);
    expect((await fails('discardDeadLetters', { ids: [''] })).code).toBe(-32602);
    expect((await rpc.ok('listDeadLetters', {})).deadLetters.length).toBe(5);
  }, 120_000);

  it('the event log newest first: cursor pages visit every event once, by pattern, sender and time', async () => {
    const published: { seq: number; type: string; from: string }[] = [];
    for (let i = 0; i < 150; i++) { // more than one read window (64, then 128, … sequences)
      const type = i % 3 === 0 ? 'invoice.paid' : i % 3 === 1 ? 'invoice.sent' : 'order.placed';
      const from = i % 2 === 0 ? 'svc-a' : 'svc-b';
      const r = await rpc.ok('publishEvent', { type, data: { i }, from });
      published.push({ seq: r.seq, type, from });
      if (i === 74) await sleep(50);
    }
    const newestFirst = [...published].reverse();
    const all = await allPages('listEvents', { order: 'newest', limit: 5 }, 'events', 'before');
    expect(all.rows.map((e) => e.seq)).toEqual(newestFirst.map((e) => e.seq));
    expect(all.pages).toBeGreaterThanOrEqual(30);

    const invoices = await allPages('listEvents', { order: 'newest', type: 'invoice.*', limit: 40 }, 'events', 'before');
    expect(invoices.rows.map((e) => e.seq)).toEqual(newestFirst.filter((e) => e.type.startsWith('invoice.')).map((e) => e.seq));
    const fromB = await allPages('listEvents', { order: 'newest', type: 'invoice.paid', from: 'svc-b', limit: 3 }, 'events', 'before');
    expect(fromB.rows.map((e) => e.seq)).toEqual(newestFirst.filter((e) => e.type === 'invoice.paid' && e.from === 'svc-b').map((e) => e.seq));

    // A time range: the events of the first half (published before the pause) by their stored times.
    const first = await rpc.ok('listEvents', { order: 'newest', limit: 1000 });
    const at = new Map(first.events.map((e: any) => [e.seq, e.at]));
    const cut = at.get(published[75]!.seq) as number;
    const older = await allPages('listEvents', { order: 'newest', until: cut, limit: 4 }, 'events', 'before');
    expect(older.rows.map((e) => e.seq)).toEqual(newestFirst.filter((e) => (at.get(e.seq) as number) < cut).map((e) => e.seq));
    const newer = await rpc.ok('listEvents', { order: 'newest', since: new Date(cut).toISOString(), limit: 100 });
    expect(newer.events.map((e: any) => e.seq)).toEqual(newestFirst.filter((e) => (at.get(e.seq) as number) >= cut).map((e) => e.seq));
    expect(newer.next).toBeNull();
    expect((await rpc.ok('listEvents', { order: 'newest', type: 'nothing.here' })).events).toEqual([]);

    // The reader's bounds, small: windows narrowed when denser than maxFetch, pages cut short by
    // the scan budget — paging still visits every event once, in order.
    const pagesOf = async (q: { pattern?: string; from?: string }, bounds: { scanBudget?: number; maxFetch?: number }) => {
      const seen: number[] = [];
      let before: number | undefined;
      for (let n = 0; n < 500; n++) {
        const p = await readEventsNewestFirst(rt.transport, { ...q, limit: 7, ...(before !== undefined ? { before } : {}) }, bounds);
        expect(p.events.length).toBeLessThanOrEqual(7);
        seen.push(...p.events.map((e) => e.seq));
        if (p.next === null) return seen;
        before = p.next;
      }
      throw new Error('paging does not end');
    };
    expect(await pagesOf({}, { maxFetch: 5 })).toEqual(newestFirst.map((e) => e.seq));
    expect(await pagesOf({ from: 'svc-a' }, { maxFetch: 9, scanBudget: 20 })).toEqual(newestFirst.filter((e) => e.from === 'svc-a').map((e) => e.seq));
    expect(await pagesOf({ pattern: 'order.*', from: 'svc-b' }, { maxFetch: 3, scanBudget: 4 })).toEqual(newestFirst.filter((e) => e.type === 'order.placed' && e.from === 'svc-b').map((e) => e.seq));

    // The oldest-first history is unchanged; bad input is refused.
    expect((await rpc.ok('listEvents', { limit: 3 })).events.length).toBe(3);
    expect(await fails('listEvents', { until: Date.now() })).toMatchObject({ code: 4002, type: 'INVALID_ARGUMENT' });
    expect(await fails('listEvents', { order: 'newest', until: 'not a time' })).toMatchObject({ type: 'INVALID_ARGUMENT' });
    expect((await fails('listEvents', { order: 'newest', before: 0 })).code).toBe(-32602);
    expect((await fails('listEvents', { order: 'sideways' })).code).toBe(-32602);
    expect((await fails('listEvents', { order: 'newest', type: 'a..b' })).code).toBe(-32602);
  }, 120_000);

  it('cron tasks paged and by tenant; tenants with their sessions by state and budget-only tenants', async () => {
    await rpc.ok('createAgent', { agentId: 'cron-a', type: 'other', tenant: 'acme' });
    await rpc.ok('createAgent', { agentId: 'cron-b', type: 'other', tenant: 'initech' });
    const made: string[] = [];
    for (let i = 0; i < 5; i++) {
      const r = await rpc.ok('scheduleTask', { agentId: i < 3 ? 'cron-a' : 'cron-b', task: { n: i }, schedule: '0 9 * * 1', timezone: 'Europe/Paris', taskId: `t-${i}` });
      made.push(r.taskId);
    }
    const pages = await allPages('listTasks', { limit: 2 }, 'tasks', 'after');
    expect(pages.pages).toBe(3);
    expect(pages.rows.map((t) => t.taskId)).toEqual(made);
    expect(pages.rows[0]).toMatchObject({ agentId: 'cron-a', timezone: 'Europe/Paris', lastRunAt: null });
    expect(pages.rows[0].nextRunAt).toBeGreaterThan(Date.now());
    expect((await rpc.ok('listTasks', { tenant: 'initech' })).tasks.map((t: any) => t.taskId)).toEqual(['t-3', 't-4']);
    expect((await rpc.ok('listTasks', {})).next).toBeNull();
    expect(await fails('listTasks', { after: 'nope' })).toMatchObject({ code: 4002, type: 'INVALID_ARGUMENT' });
    expect((await fails('listTasks', { tenant: 'bad tenant' })).code).toBe(-32602);

    await rpc.ok('setBudget', { tenant: 'zeta', limits: [{ metric: 'turns', max: 10 }] });
    await rpc.ok('stopAgent', { agentId: 'dl-f3' });
    const tenants = await allPages('listTenants', { limit: 2 }, 'tenants', 'after');
    expect(tenants.rows.map((t) => t.tenant)).toEqual(['acme', 'globex', 'initech', 'zeta']);
    const by = new Map(tenants.rows.map((t) => [t.tenant, t]));
    expect(by.get('acme')).toMatchObject({ sessions: 3 });
    expect(by.get('globex')).toMatchObject({ sessions: 2, byState: { stopped: 1 } });
    expect(by.get('zeta')).toMatchObject({ sessions: 0, byState: { idle: 0, stopped: 0 } });
    expect((await fails('listTenants', { limit: 0 })).code).toBe(-32602);
    expect((await fails('listTenants', { tenant: 'x' })).code).toBe(-32602);
  }, 60_000);
});
