/* eslint-disable @typescript-eslint/no-unsafe-call, @typescript-eslint/no-unsafe-return, @typescript-eslint/no-unsafe-argument, @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-assignment -- the raw client deals in untyped JSON on purpose */
// Issue 18: listAgents at fleet scale, over a raw WebSocket against a runtime on real NATS and
// Postgres: server-side filters (state set, type, id prefix, last activity), sorts with an opaque
// keyset cursor, pages walked while the sessions change, capped counts, and clear refusals of
// bad input (unknown state, malformed or foreign cursor, limit over the maximum).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { methods } from '../../client/index.js';
import { echo } from '../../examples/echo.js';
import { slowWriter } from '../../examples/slowWriter.js';
import { startControlPlane, type ControlPlane } from '../../runtime/index.js';
import { startStack, waitFor, type Stack } from '../helpers.js';
import { RawRpc } from './rawRpc.js';

let stack: Stack;
let cp: ControlPlane;
let c: RawRpc;
const N = 24;
const id = (i: number): string => `la-${i % 2 ? 'x' : 'y'}-${String(i).padStart(2, '0')}`;

interface Summary { agentId: string; type: string; state: string; updatedAt: number }

function conforms(result: unknown): void {
  const r = methods.listAgents.result.safeParse(result);
  expect(r.success, r.error?.message).toBe(true);
}

/** Every page of `params`, `limit` rows at a time; `between` runs after each page. */
async function walk(params: Record<string, unknown>, limit: number, between?: () => Promise<void>): Promise<Summary[]> {
  const out: Summary[] = [];
  let after: string | undefined;
  for (let i = 0; i < 100; i++) {
    const r = await c.ok('listAgents', { ...params, limit, ...(after !== undefined ? { after } : {}) });
    conforms(r);
    out.push(...r.agents);
    if (r.next === null) return out;
    after = r.next;
    await between?.();
  }
  throw new Error('no last page');
}

beforeAll(async () => {
  stack = await startStack('list_agents', { agents: [echo, slowWriter] });
  cp = await startControlPlane(stack.rt, { port: 0 });
  c = await RawRpc.open(cp.rpcUrl);
  for (let i = 0; i < N; i++) await c.ok('createAgent', { agentId: id(i), type: i % 3 ? 'echo' : 'slow-writer' });
  for (let i = 0; i < N; i += 4) await c.ok('sleepAgent', { agentId: id(i), durationMs: 3_600_000 });
  await c.ok('stopAgent', { agentId: id(1) });
  await waitFor(async () => (await c.ok('listAgents', { idPrefix: 'la-', state: 'sleeping' })).agents.length === N / 4, 'sleepers listed', 30_000);
}, 120_000);

afterAll(async () => {
  c?.close();
  await cp?.close();
  await stack?.stop();
});

describe('listAgents at fleet scale', () => {
  it('sorts newest activity first by default for sort updatedAt, pages with an opaque cursor, and keeps the id cursor of the default order', async () => {
    const newest = await walk({ idPrefix: 'la-', sort: 'updatedAt' }, 5);
    expect(newest.map((a) => a.agentId)).toEqual([...newest].sort((a, b) => b.updatedAt - a.updatedAt || (a.agentId < b.agentId ? 1 : -1)).map((a) => a.agentId));
    expect(new Set(newest.map((a) => a.agentId)).size).toBe(N);
    const first = await c.ok('listAgents', { idPrefix: 'la-', sort: 'updatedAt', limit: 5 });
    expect(first.next).toMatch(/^c1\./);
    const legacy = await c.ok('listAgents', { idContains: 'la-', limit: 5 });
    expect(legacy.next).toBe(legacy.agents[4].agentId);
    expect((await walk({ idContains: 'la-' }, 5)).map((a) => a.agentId)).toEqual(Array.from({ length: N }, (_, i) => id(i)).sort());
    expect((await walk({ idPrefix: 'la-', sort: 'agentId', order: 'desc' }, 7)).map((a) => a.agentId)).toEqual(Array.from({ length: N }, (_, i) => id(i)).sort().reverse());
  });

  it('sorts by type and by state, then newest activity first, across page boundaries', async () => {
    const all: Summary[] = (await c.ok('listAgents', { idPrefix: 'la-', limit: 500 })).agents;
    const act = (a: Summary, b: Summary): number => a.updatedAt - b.updatedAt || (a.agentId < b.agentId ? -1 : 1);
    for (const [sort, key] of [['type', 'type'], ['state', 'state']] as const) {
      for (const order of ['asc', 'desc'] as const) {
        const d = order === 'desc' ? -1 : 1;
        const want = [...all].sort((a, b) => d * ((a[key] < b[key] ? -1 : a[key] > b[key] ? 1 : 0) || -act(a, b))).map((a) => a.agentId);
        expect((await walk({ idPrefix: 'la-', sort, order }, 4)).map((a) => a.agentId), `${sort} ${order}`).toEqual(want);
      }
    }
  });

  it('filters by one or several states, type, id prefix and last activity; counts matches and sessions by state', async () => {
    const ids = async (p: Record<string, unknown>): Promise<string[]> => (await walk({ ...p, idPrefix: p.idPrefix ?? 'la-' }, 500)).map((a) => a.agentId).sort();
    const sleeping = Array.from({ length: N / 4 }, (_, k) => id(k * 4)).sort();
    expect(await ids({ state: 'sleeping' })).toEqual(sleeping);
    expect(await ids({ state: ['sleeping', 'stopped'] })).toEqual([...sleeping, id(1)].sort());
    expect(await ids({ status: 'stopped' })).toEqual([id(1)]);
    expect(await ids({ type: 'slow-writer' })).toEqual(Array.from({ length: N / 3 }, (_, k) => id(k * 3)).sort());
    expect(await ids({ idPrefix: 'la-x-' })).toEqual(Array.from({ length: N / 2 }, (_, k) => id(k * 2 + 1)).sort());
    expect(await ids({ idPrefix: 'la-x-1', state: 'idle' })).toEqual(['la-x-11', 'la-x-13', 'la-x-15', 'la-x-17', 'la-x-19']);
    const all: Summary[] = (await c.ok('listAgents', { idPrefix: 'la-', limit: 500 })).agents;
    const mid = [...all].sort((a, b) => a.updatedAt - b.updatedAt)[N / 2]!.updatedAt;
    expect(await ids({ updatedAfter: new Date(mid).toISOString() })).toEqual(all.filter((a) => a.updatedAt >= mid).map((a) => a.agentId).sort());
    expect(await ids({ updatedBefore: mid })).toEqual(all.filter((a) => a.updatedAt < mid).map((a) => a.agentId).sort());

    const counted = await c.ok('listAgents', { idPrefix: 'la-', state: 'sleeping', limit: 1, count: true, countByState: true });
    conforms(counted);
    expect(counted).toMatchObject({ total: N / 4, totalCapped: false });
    expect(counted.stateCounts).toMatchObject({ sleeping: N / 4, stopped: 1, idle: N - N / 4 - 1 });
    expect((await c.ok('listAgents', { idPrefix: 'la-' })).total).toBeUndefined();
  });

  it('a walk newest-first while sessions change lists none twice and every unchanged session once', async () => {
    const before: Summary[] = (await c.ok('listAgents', { idPrefix: 'la-', limit: 500 })).agents;
    const touched = new Set<string>();
    let k = 0;
    const seen = await walk({ idPrefix: 'la-', sort: 'updatedAt' }, 3, async () => {
      // Wake one sleeper per page: its last activity jumps ahead of the cursor.
      const s = id((k++ * 4) % N);
      if (touched.has(s)) return;
      touched.add(s);
      await c.ok('wakeAgent', { agentId: s });
      await waitFor(async () => (await c.ok('getAgent', { agentId: s })).state === 'idle', `${s} awake`, 30_000);
    });
    expect(new Set(seen.map((a) => a.agentId)).size).toBe(seen.length);
    for (const s of before) if (!touched.has(s.agentId)) expect(seen.map((a) => a.agentId)).toContain(s.agentId);
    expect(touched.size).toBeGreaterThan(2);
  });

  it('refuses bad input clearly: an unknown state, a limit over 500, a malformed or foreign cursor, a bad time range', async () => {
    const dozing = await c.err('listAgents', { state: 'dozing' });
    expect(dozing.code).toBe(-32602);
    expect(dozing.message).toMatch(/state/);
    expect((await c.err('listAgents', { state: ['idle', 'dozing'] })).code).toBe(-32602);
    expect((await c.err('listAgents', { limit: 501 })).code).toBe(-32602);
    expect((await c.err('listAgents', { sort: 'wakeAt' })).code).toBe(-32602);

    const malformed = await c.err('listAgents', { sort: 'updatedAt', after: 'c1.!!not-base64!!' });
    expect(malformed).toMatchObject({ code: 4002, data: { type: 'INVALID_ARGUMENT' } });
    expect(malformed.message).toMatch(/after: not a cursor/);
    expect((await c.err('listAgents', { after: 'c1.' + Buffer.from('[1,2]').toString('base64url') })).data).toMatchObject({ type: 'INVALID_ARGUMENT' });
    const byType = (await c.ok('listAgents', { idPrefix: 'la-', sort: 'type', limit: 2 })).next;
    const foreign = await c.err('listAgents', { idPrefix: 'la-', sort: 'updatedAt', after: byType });
    expect(foreign).toMatchObject({ code: 4002, data: { type: 'INVALID_ARGUMENT' } });
    expect(foreign.message).toMatch(/continues sort type ascending, not updatedAt descending/);
    expect((await c.err('listAgents', { idPrefix: 'la-', sort: 'type', order: 'desc', after: byType })).code).toBe(4002);
    expect((await c.err('listAgents', { sort: 'updatedAt', after: id(3) })).message).toMatch(/a session id is a cursor of sort agentId ascending only/);
    expect((await c.err('listAgents', { updatedAfter: 'yesterday' })).data).toMatchObject({ type: 'INVALID_ARGUMENT' });
    expect((await c.err('listAgents', { updatedAfter: 2000, updatedBefore: 1000 })).message).toMatch(/updatedAfter must be earlier/);
    // The connection and the method go on working.
    expect((await c.ok('listAgents', { idPrefix: 'la-', limit: 1 })).agents).toHaveLength(1);
  });

  it('tags: createAgent sets them once, getAgent and listAgents show them, listAgents filters by one (with other filters and any sort, paged), bad tags are refused and create nothing', async () => {
    const tagged = (i: number): string[] => [...(i % 2 ? ['vip'] : []), ...(i % 3 === 0 ? ['team:ops.eu'] : []), 'all'];
    for (let i = 0; i < 9; i++) await c.ok('createAgent', { agentId: `tg-${i}`, type: 'echo', tags: [...tagged(i), 'all'] });
    const one = await c.ok('getAgent', { agentId: 'tg-3' });
    expect(one.tags).toEqual(['vip', 'team:ops.eu', 'all']); // duplicates kept once, order kept
    expect((await c.ok('getAgent', { agentId: id(0) })).tags).toEqual([]);
    const vip = ['tg-1', 'tg-3', 'tg-5', 'tg-7'];
    expect((await walk({ tag: 'vip' }, 3)).map((a) => a.agentId)).toEqual(vip);
    expect((await walk({ tag: 'vip', sort: 'updatedAt', order: 'asc' }, 1)).map((a) => a.agentId)).toEqual(vip);
    expect((await walk({ tag: 'vip', sort: 'state', order: 'desc' }, 2)).map((a) => a.agentId).sort()).toEqual(vip);
    expect((await walk({ tag: 'team:ops.eu', idPrefix: 'tg-', state: 'idle' }, 2)).map((a) => a.agentId)).toEqual(['tg-0', 'tg-3', 'tg-6']);
    const page = await c.ok('listAgents', { tag: 'all', limit: 2, count: true });
    expect(page).toMatchObject({ total: 9, totalCapped: false });
    expect(page.agents[0]).toMatchObject({ agentId: 'tg-0', tags: ['team:ops.eu', 'all'] });
    expect((await c.ok('listAgents', { tag: 'VIP' })).agents).toEqual([]);
    // A message does not change them (the first commit set sessions.tags; later ones keep it).
    await c.ok('sendMessage', { agentId: 'tg-1', message: { text: 'hi' } });
    await waitFor(async () => (await c.ok('getAgent', { agentId: 'tg-1' })).lastSeq > 0, 'tg-1 handled', 30_000);
    expect((await walk({ tag: 'vip' }, 10)).map((a) => a.agentId)).toEqual(vip);

    for (const tags of [['has space'], [''], ['x'.repeat(65)], ['ok', 'bad/slash'], Array.from({ length: 17 }, (_, i) => `t${i}`), 'vip']) {
      const e = await c.err('createAgent', { agentId: 'tg-bad', type: 'echo', tags });
      expect(e.code, JSON.stringify(tags)).toBe(-32602);
      expect(e.message).toMatch(/tags/);
    }
    // The runtime checks them too (callers of the library, not only of the API).
    await expect(stack.rt.createAgent('tg-bad', 'echo', undefined, { tags: ['a b'] })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(stack.rt.createAgent('tg-bad', 'echo', undefined, { tags: Array.from({ length: 17 }, (_, i) => `t${i}`) })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect((await c.err('getAgent', { agentId: 'tg-bad' })).data).toMatchObject({ type: 'UNKNOWN_SESSION' });
    expect((await c.err('listAgents', { tag: 'a b' })).code).toBe(-32602);
    expect((await c.err('listAgents', { tag: '' })).code).toBe(-32602);
    // Sixteen is allowed.
    await c.ok('createAgent', { agentId: 'tg-16', type: 'echo', tags: Array.from({ length: 16 }, (_, i) => `t${i}`) });
    expect((await c.ok('listAgents', { tag: 't15' })).agents.map((a: Summary) => a.agentId)).toEqual(['tg-16']);
  });
});
