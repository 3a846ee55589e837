// Issue 18: the sessions list's query on every backend (Postgres 15, PGlite, the memory store):
// each filter, each order in both directions, keyset pages across page boundaries with no
// duplicate and no gap, pages walked while sessions are updated underneath, and capped counts.
// The expected order is computed here, independently of persistence/sessionListQuery.ts.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMemoryStore, createPgStore, createPgliteStore } from '../../persistence/index.js';
import type { CommitRecord, ListSessionsQuery, SessionSort, SessionStatus, SessionSummary, Store } from '../../persistence/index.js';
import { PG_URL, dropSchema } from '../helpers.js';

let clock = 1_700_000_000_000;
const now = (): number => clock;

function rec(sessionId: string, version: number, over: Partial<CommitRecord> & { tenant?: string; tags?: string[] } = {}): CommitRecord {
  const { tenant, tags, ...rest } = over;
  return {
    sessionId, type: 'chat', status: 'idle', snapshot: { value: 'idle', context: { ...(tenant ? { tenant } : {}), ...(tags ? { tags } : {}) } },
    lastSeq: version, version, partition: 0, ownerEpoch: 1, wakeAt: null, wakeEvents: [],
    wakePriority: null, history: [], transitions: [], outbox: [], ...rest,
  };
}

/** Code point order, as Postgres' COLLATE "C" sorts (the test's own, not the store's). */
const cp = (a: string, b: string): number => {
  const x = Array.from(a, (c) => c.codePointAt(0)!);
  const y = Array.from(b, (c) => c.codePointAt(0)!);
  for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i]! - y[i]!;
  return x.length - y.length;
};

function expectedOrder(rows: readonly SessionSummary[], sort: SessionSort, desc: boolean): string[] {
  const act = (a: SessionSummary, b: SessionSummary): number => a.updatedAt - b.updatedAt || cp(a.id, b.id);
  const cmp: Record<SessionSort, (a: SessionSummary, b: SessionSummary) => number> = {
    id: (a, b) => cp(a.id, b.id),
    updatedAt: act,
    type: (a, b) => cp(a.type, b.type) || -act(a, b),
    status: (a, b) => cp(a.status, b.status) || -act(a, b),
  };
  return [...rows].sort((a, b) => (desc ? -1 : 1) * cmp[sort](a, b)).map((r) => r.id);
}

/** Tags of seeded session `i`: 'vip' on every third, 'team:a.b' on every sixth (both on those). */
const tagsOf = (i: number): string[] => [...(i % 3 === 1 ? ['vip'] : []), ...(i % 6 === 1 ? ['team:a.b'] : [])];

/** Every page of `q`, `size` rows at a time, following the last row as the cursor. */
async function walk(store: Store, q: ListSessionsQuery, size: number, between?: (page: number) => Promise<void>): Promise<string[]> {
  const seen: string[] = [];
  let from: SessionSummary | undefined;
  for (let page = 0; page < 1000; page++) {
    const rows = await store.listSessions({ ...q, limit: size, ...(from ? { from } : {}) });
    seen.push(...rows.map((r) => r.id));
    if (rows.length < size) return seen;
    from = rows.at(-1)!;
    await between?.(page);
  }
  throw new Error('no end');
}

const STATES: SessionStatus[] = ['idle', 'active', 'sleeping', 'waiting', 'stopped'];
const TYPES = ['chat', 'mail', 'zeta'];

type Backend = [string, () => Promise<{ store: Store; done: () => Promise<void> }>];
const backends: Backend[] = [
  ['postgres', () => {
    const schema = `agentry_test_list_${randomBytes(5).toString('hex')}`;
    const store = createPgStore({ connectionString: PG_URL, schema, now });
    return Promise.resolve({ store, done: async () => { await store.close(); await dropSchema(schema); } });
  }],
  ['pglite', () => {
    const store = createPgliteStore({ now });
    return Promise.resolve({ store, done: () => store.close() });
  }],
  ['memory', () => {
    const store = createMemoryStore(now);
    return Promise.resolve({ store, done: () => store.close() });
  }],
];

describe.each(backends)('sessions list on %s', (_name, make) => {
  let store: Store;
  let done: () => Promise<void>;
  let all: SessionSummary[];

  beforeAll(async () => {
    ({ store, done } = await make());
    await store.migrate();
    // 60 sessions; last activity repeats (ties break by id), ids mix case, punctuation that
    // LIKE would treat as wildcards, and a character outside the BMP.
    const ids = Array.from({ length: 60 }, (_, i) => `s${i % 2 ? 'A' : 'b'}${i % 5 === 0 ? '%' : i % 7 === 0 ? '_' : '-'}${String(i).padStart(2, '0')}${i === 59 ? '😀' : ''}`);
    for (let i = 0; i < ids.length; i++) {
      clock = 1_700_000_000_000 + (i % 13) * 1000;
      await store.commit([rec(ids[i]!, 1, { status: STATES[i % 5]!, type: TYPES[i % 3]!, ...(i % 4 === 0 ? { tenant: 'acme' } : {}), ...(tagsOf(i).length > 0 ? { tags: tagsOf(i) } : {}) })]);
    }
    all = await store.listSessions({ limit: 1000 });
    expect(all).toHaveLength(60);
  }, 60_000);
  afterAll(async () => { await done(); });

  const sorts: SessionSort[] = ['id', 'updatedAt', 'type', 'status'];
  for (const sort of sorts) {
    for (const desc of [false, true]) {
      it(`pages by ${sort} ${desc ? 'descending' : 'ascending'}: every row once, in order, across page boundaries`, async () => {
        expect(await walk(store, { sort, desc }, 7)).toEqual(expectedOrder(all, sort, desc));
        const states = new Set<SessionStatus>(['sleeping', 'idle']);
        const filtered = all.filter((r) => states.has(r.status));
        expect(await walk(store, { sort, desc, statuses: [...states] }, 4)).toEqual(expectedOrder(filtered, sort, desc));
        const chat = all.filter((r) => r.type === 'chat' && r.status === 'idle');
        expect(await walk(store, { sort, desc, type: 'chat', status: 'idle' }, 3)).toEqual(expectedOrder(chat, sort, desc));
        const vip = all.filter((r) => r.tags.includes('vip'));
        expect(vip).toHaveLength(20);
        expect(await walk(store, { sort, desc, tag: 'vip' }, 3)).toEqual(expectedOrder(vip, sort, desc));
        const vipAcme = all.filter((r) => r.tags.includes('vip') && r.tenant === 'acme' && r.status !== 'stopped');
        expect(vipAcme.length).toBeGreaterThan(0);
        expect(await walk(store, { sort, desc, tag: 'vip', tenant: 'acme', statuses: ['idle', 'active', 'sleeping', 'waiting'] }, 2)).toEqual(expectedOrder(vipAcme, sort, desc));
      });
    }
  }

  it('filters by state (one or several), type, tenant, id prefix and last activity, and counts with a cap', async () => {
    const ids = (q: ListSessionsQuery): Promise<string[]> => store.listSessions({ ...q, limit: 1000 }).then((r) => r.map((s) => s.id).sort(cp));
    const want = (f: (r: SessionSummary) => boolean): string[] => all.filter(f).map((r) => r.id).sort(cp);
    expect(await ids({ statuses: ['waiting', 'stopped'] })).toEqual(want((r) => r.status === 'waiting' || r.status === 'stopped'));
    expect(await ids({ statuses: ['waiting'], status: 'idle' })).toEqual([]);
    expect(await ids({ type: 'mail' })).toEqual(want((r) => r.type === 'mail'));
    expect(await ids({ tenant: 'acme' })).toEqual(want((r) => r.tenant === 'acme'));
    expect((await ids({ tenant: 'acme' })).length).toBe(15);
    // Tags: membership in the session's set, exact and case-sensitive; ':' and '.' are plain characters.
    expect(await ids({ tag: 'team:a.b' })).toEqual(want((r) => r.tags.includes('team:a.b')));
    expect((await ids({ tag: 'team:a.b' })).length).toBe(10);
    expect(await ids({ tag: 'VIP' })).toEqual([]);
    expect(await ids({ tag: 'team' })).toEqual([]);
    expect(await ids({ tag: 'vip', type: 'mail' })).toEqual(want((r) => r.tags.includes('vip') && r.type === 'mail'));
    expect(await store.countSessions({ tag: 'vip' }, 1000)).toBe(20);
    expect(all.filter((r) => r.tags.length === 0)).toHaveLength(40);
    expect(all.find((r) => r.tags.includes('team:a.b'))!.tags).toEqual(['vip', 'team:a.b']);
    // The prefix is literal: '%' and '_' are characters, not wildcards; it is case-sensitive.
    expect(await ids({ idPrefix: 'sA%' })).toEqual(want((r) => r.id.startsWith('sA%')));
    expect((await ids({ idPrefix: 'sA%' })).length).toBeGreaterThan(0);
    expect(await ids({ idPrefix: 'sb_' })).toEqual(want((r) => r.id.startsWith('sb_')));
    expect(await ids({ idPrefix: 's' })).toHaveLength(60);
    expect(await ids({ idPrefix: 'SA' })).toEqual([]);
    expect(await ids({ idPrefix: 'sA-59' })).toEqual(['sA-59😀']);
    expect(await ids({ idPrefix: 'sA-59😀' })).toEqual(['sA-59😀']);
    expect(await ids({ idPrefix: '\u{10FFFF}' })).toEqual([]);
    expect(await ids({ idContains: '_' })).toEqual(want((r) => r.id.includes('_')));
    const t = 1_700_000_000_000;
    expect(await ids({ updatedAfter: t + 5000, updatedBefore: t + 8000 })).toEqual(want((r) => r.updatedAt >= t + 5000 && r.updatedAt < t + 8000));
    expect(await ids({ updatedAfter: t + 12_000 })).toEqual(want((r) => r.updatedAt >= t + 12_000));
    expect(await ids({ updatedAfter: t + 12_000 })).not.toHaveLength(0);

    expect(await store.countSessions({}, 1000)).toBe(60);
    expect(await store.countSessions({}, 10)).toBe(10);
    expect(await store.countSessions({ statuses: ['sleeping'], type: 'chat' }, 1000)).toBe(all.filter((r) => r.status === 'sleeping' && r.type === 'chat').length);
    expect(await store.countSessions({ idPrefix: 'nope' }, 1000)).toBe(0);
  });

  it('keeps the original cursor: `after` is the last id of the id order', async () => {
    const pages: string[] = [];
    let after: string | undefined;
    for (;;) {
      const page = await store.listSessions({ limit: 9, ...(after !== undefined ? { after } : {}) });
      pages.push(...page.map((s) => s.id));
      if (page.length < 9) break;
      after = page.at(-1)!.id;
    }
    expect(pages).toEqual(expectedOrder(all, 'id', false));
  });

  it('walks newest-first while sessions are updated: no duplicates, and every session not updated meanwhile exactly once', async () => {
    const before = await store.listSessions({ limit: 1000 });
    const version = new Map(before.map((s) => [s.id, 1]));
    const touched = new Set<string>();
    let k = 0;
    const ids = await walk(store, { sort: 'updatedAt', desc: true }, 5, async () => {
      // Two sessions after each page, some already listed, some not yet: both jump to the front.
      for (const s of [before[(k * 11) % 60]!, before[(k * 7 + 31) % 60]!]) {
        clock = 1_700_100_000_000 + k;
        const v = version.get(s.id)! + 1;
        version.set(s.id, v);
        await store.commit([rec(s.id, v, { status: s.status, type: s.type })]);
        touched.add(s.id);
      }
      k++;
    });
    expect(new Set(ids).size).toBe(ids.length);
    for (const s of before) if (!touched.has(s.id)) expect(ids).toContain(s.id);
    expect(touched.size).toBeGreaterThan(2);
    all = await store.listSessions({ limit: 1000 });
    // Tags are set by the first commit only: the updates above (snapshots without tags) kept them.
    expect(await store.countSessions({ tag: 'vip' }, 1000)).toBe(20);
  });
});
