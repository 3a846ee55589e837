/**
 * One suite, three real backends: Postgres 15 (a fresh schema per suite, dropped after),
 * PGlite in memory, and PGlite on a temp directory (closed and reopened). No mocks.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { PGlite } from '@electric-sql/pglite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createMemoryStore, createPgStore, createPgliteStore, FencedError, openStore, SchemaTooNewError, StaleVersionError,
  StoreDataError, StoreUnavailableError,
} from '../../persistence/index.js';
import type { CommitRecord, DeadLetter, HistoryEntry, OutboxRecord, Store, TransitionRecord } from '../../persistence/index.js';
import { bundledMigrations } from '../../persistence/migrate.js';
import { createPgliteDb } from '../../persistence/pgliteStore.js';
import { createPgDb } from '../../persistence/pgStore.js';
import { createSqlStore } from '../../persistence/sqlStore.js';
import { waitFor } from '../helpers.js';

const DATABASE_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/** A test clock: every store reads it for created_at/updated_at. */
let clock = 1_700_000_000_000;
const now = (): number => clock;

interface Harness {
  store: Store;
  /** Raw SQL on the same database, for what the contract cannot do (plant a newer migration). */
  raw(sql: string): Promise<unknown[]>;
  /** A second, independent store on the same (fresh) database, or null when there is none. */
  freshPair(): Promise<{ a: Store; b: Store; done: () => Promise<void> }>;
  /** Closes and opens the store again on the same data; null for in-memory databases. */
  reopen: (() => Promise<Store>) | null;
  teardown(): Promise<void>;
}

const randomSchema = (): string => `agentry_test_${randomBytes(6).toString('hex')}`;

function pgHarness(): Promise<Harness> {
  const schema = randomSchema();
  const admin = new pg.Pool({ connectionString: DATABASE_URL, max: 2 });
  const rawPool = new pg.Pool({ connectionString: DATABASE_URL, max: 2, options: `-c search_path=${schema}` });
  const schemas = [schema];
  const h: Harness = {
    store: createPgStore({ connectionString: DATABASE_URL, schema, now }),
    raw: async (sql) => (await rawPool.query<Record<string, unknown>>(sql)).rows,
    freshPair() {
      const s = randomSchema();
      schemas.push(s);
      const a = createPgStore({ connectionString: DATABASE_URL, schema: s, now });
      const b = createPgStore({ connectionString: DATABASE_URL, schema: s, now });
      return Promise.resolve({ a, b, done: async () => { await a.close(); await b.close(); } });
    },
    async reopen() {
      await h.store.close();
      h.store = createPgStore({ connectionString: DATABASE_URL, schema, now });
      return h.store;
    },
    async teardown() {
      await h.store.close();
      await rawPool.end();
      for (const s of schemas) await admin.query(`DROP SCHEMA IF EXISTS "${s}" CASCADE`);
      await admin.end();
    },
  };
  return Promise.resolve(h);
}

async function pgliteHarness(dataDir: string | undefined): Promise<Harness> {
  // Built from the same parts as createPgliteStore, keeping the PGlite handle for raw SQL.
  const db = await PGlite.create({ dataDir });
  const h: Harness = {
    store: createSqlStore(createPgliteDb(Promise.resolve(db)), 'pglite', { now }),
    raw: async (sql) => (await db.query(sql)).rows,
    async freshPair() {
      const fresh = await PGlite.create();
      const a = createSqlStore(createPgliteDb(Promise.resolve(fresh)), 'pglite', { now });
      const b = createSqlStore(createPgliteDb(Promise.resolve(fresh)), 'pglite', { now });
      return { a, b, done: () => fresh.close() };
    },
    reopen: dataDir === undefined ? null : async () => {
      await h.store.close();
      // The public constructor this time: it must find the data the first instance wrote.
      h.store = createPgliteStore({ dataDir, now });
      return h.store;
    },
    async teardown() {
      await h.store.close();
      if (!db.closed) await db.close();
      if (dataDir) await rm(dataDir, { recursive: true, force: true });
    },
  };
  return h;
}

function rec(sessionId: string, version: number, over: Partial<CommitRecord> = {}): CommitRecord {
  return {
    sessionId, type: 'chat', status: 'idle', snapshot: { value: 'idle', context: { n: version } },
    lastSeq: version * 10, version, partition: 0, ownerEpoch: 1, wakeAt: null, wakeEvents: [],
    wakePriority: null, history: [], transitions: [], outbox: [], ...over,
  };
}

function hist(sessionId: string, seq: number, over: Partial<HistoryEntry> = {}): HistoryEntry {
  return {
    sessionId, seq, kind: 'message', body: { text: `m${seq}` }, priority: 'normal', from: 'user:1',
    batchId: `b${seq}`, outcome: 'ok', at: clock + seq, ...over,
  };
}

function out(sessionId: string, id: string, createdAt: number): OutboxRecord {
  return { id, sessionId, subject: `agentry.out.${sessionId}`, headers: { 'Nats-Msg-Id': id }, body: `{"id":"${id}"}`, createdAt };
}

/**
 * The session log (migration 0003) on any store: entries derived inside the commit, read after
 * an id, pruned by age and count with a per-session watermark. Shared by the SQL backends of the
 * suite below and the memory store.
 */
function sessionLogContract(getStore: () => Store): void {
  const tr = (sid: string, at: number, from: string, to: string): TransitionRecord => ({ sessionId: sid, at, event: 'MESSAGE', from, to });
  const reply = (sid: string, id: string, body: unknown): OutboxRecord => ({
    id, sessionId: sid, subject: `agentry.out.${sid}`, headers: { 'Agentry-Kind': 'reply' }, body: JSON.stringify(body), createdAt: clock,
  });

  it('session log: one state entry per transition and one reply entry per reply outbox row, written by the commit in commit order', async () => {
    const store = getStore();
    await store.commit([rec('lg-1', 1, { transitions: [tr('lg-1', 1, '', 'idle')] })]);
    await store.commit([
      rec('lg-1', 2, {
        transitions: [tr('lg-1', 2, 'idle', 'active.running'), tr('lg-1', 3, 'active.running', 'idle')],
        outbox: [
          reply('lg-1', 'lg-1:2:0', { text: 'a', b: 1 }),
          { ...reply('lg-1', 'lg-1:2:1', 'mail'), subject: 'agentry.in.lg-2', headers: { 'Agentry-Kind': 'mail' } },
          { ...reply('lg-1', 'lg-1:2:2', 'event'), subject: 'agentry.events.x', headers: { 'Agentry-Kind': 'event' } },
          reply('lg-1', 'lg-1:2:3', 'b'),
        ],
      }),
      rec('lg-2', 1, { transitions: [tr('lg-2', 4, '', 'idle')], outbox: [reply('lg-2', 'lg-2:1:0', null)] }),
      rec('lg-1', 3, { transitions: [tr('lg-1', 5, 'idle', 'sleeping')] }),
    ]);
    const log = await store.readLog('lg-1', 0, 100);
    expect(log.map((e) => [e.kind, (e.data as { to?: string }).to ?? (e.data as { body: unknown }).body])).toEqual([
      ['state', 'idle'], ['state', 'active.running'], ['state', 'idle'], ['reply', { text: 'a', b: 1 }], ['reply', 'b'], ['state', 'sleeping'],
    ]);
    for (let i = 1; i < log.length; i++) expect(log[i]!.id).toBeGreaterThan(log[i - 1]!.id);
    expect(log.every((e) => e.sessionId === 'lg-1' && e.at === clock)).toBe(true);
    expect(log[1]!.data).toEqual({ agentId: 'lg-1', from: 'idle', to: 'active.running', state: 'active', event: 'MESSAGE', at: 2 });
    expect(log[3]!.data).toEqual({ agentId: 'lg-1', body: { text: 'a', b: 1 }, msgId: 'lg-1:2:0', at: clock });
    // Verbatim: a replayed reply keeps the handler's key order (the column is json, not jsonb).
    expect(JSON.stringify(log[3]!.data)).toBe(`{"agentId":"lg-1","body":{"text":"a","b":1},"msgId":"lg-1:2:0","at":${clock}}`);
    expect(Object.keys(log[1]!.data as object)).toEqual(['agentId', 'from', 'to', 'state', 'event', 'at']);
    expect((await store.readLog('lg-2', 0, 100)).map((e) => e.data)).toEqual([
      { agentId: 'lg-2', from: '', to: 'idle', state: 'idle', event: 'MESSAGE', at: 4 },
      { agentId: 'lg-2', body: null, msgId: 'lg-2:1:0', at: clock },
    ]);
    // Resume after an id, with a limit.
    expect(await store.readLog('lg-1', log[1]!.id, 2)).toEqual(log.slice(2, 4));
    expect(await store.readLog('lg-1', log[5]!.id, 10)).toEqual([]);
    expect(await store.readLog('lg-none', 0, 10)).toEqual([]);
    expect(await store.lastLogId('lg-1')).toBe(log[5]!.id);
    expect(await store.lastLogId('lg-none')).toBe(0);
    // A commit that fails writes no entry.
    await expect(store.commit([rec('lg-1', 3, { transitions: [tr('lg-1', 9, 'x', 'y')], outbox: [reply('lg-1', 'lg-1:x', 'no')] })])).rejects.toBeInstanceOf(StaleVersionError);
    expect(await store.readLog('lg-1', 0, 100)).toEqual(log);
  });

  it('session log: prunes by age and by count per session, and remembers how far each session was pruned', async () => {
    const store = getStore();
    const saved = clock;
    try {
      clock = 1_000; // far below every other test's clock: the age cut below touches only these rows
      await store.commit([rec('lp-1', 1, { transitions: [tr('lp-1', 1, '', 'idle'), tr('lp-1', 2, 'idle', 'active')] })]);
      clock = 2_000;
      await store.commit([
        rec('lp-1', 2, { transitions: Array.from({ length: 10 }, (_, i) => tr('lp-1', 10 + i, 'a', 'b')) }),
        rec('lp-2', 1, { transitions: [tr('lp-2', 1, '', 'idle')] }),
      ]);
      const all = await store.readLog('lp-1', 0, 100);
      expect(all.map((e) => e.at)).toEqual([1000, 1000, ...Array<number>(10).fill(2000)]);
      expect(await store.logPrunedThrough('lp-1')).toBe(0);

      expect(await store.pruneLog({ before: 1_500, keepPerSession: 1000, sessionIds: [] })).toBe(2);
      expect(await store.readLog('lp-1', 0, 100)).toEqual(all.slice(2));
      expect(await store.logPrunedThrough('lp-1')).toBe(all[1]!.id);

      expect(await store.pruneLog({ before: 0, keepPerSession: 3, sessionIds: ['lp-1', 'lp-2'] })).toBe(7);
      expect(await store.readLog('lp-1', 0, 100)).toEqual(all.slice(9));
      expect(await store.logPrunedThrough('lp-1')).toBe(all[8]!.id);
      expect(await store.logPrunedThrough('lp-2')).toBe(0);
      expect(await store.readLog('lp-2', 0, 100)).toHaveLength(1);
      expect(await store.pruneLog({ before: 0, keepPerSession: 3, sessionIds: ['lp-1'] })).toBe(0);

      await store.commit([rec('lp-1', 3, { transitions: [tr('lp-1', 30, 'b', 'c')] })]);
      const next = await store.readLog('lp-1', all[11]!.id, 10);
      expect(next.map((e) => (e.data as { to: string }).to)).toEqual(['c']);
    } finally {
      clock = saved;
    }
  });
}

/**
 * The fleet listings behind the inspector's pages (issue 18) on any store: dead letters across
 * sessions by reason, agent type, tenant, time and replayed, newest first with a cursor, and
 * their bulk deletion; cron tasks by tenant after a cursor; tenants with sessions by status and
 * budget-only tenants. Shared by the SQL backends and the memory store (which has its own code).
 */
function fleetListingContract(getStore: () => Store): void {
  it('fleet listings: dead letters filtered and paged, deleted in bulk; tasks and tenants paged', async () => {
    const store = getStore();
    const snap = (tenant: string | null) => ({ value: 'idle', context: { n: 1, ...(tenant ? { tenant } : {}) } });
    await store.commit([
      rec('fl-a', 1, { type: 'fleet', snapshot: snap('fl-t1') }), rec('fl-b', 1, { type: 'fleet', snapshot: snap('fl-t2') }),
      rec('fl-c', 1, { type: 'fleet-other', snapshot: snap('fl-t1'), status: 'stopped' }),
    ]);
    const dl = (id: string, sessionId: string, createdAt: number, reason = 'handler-failed'): DeadLetter => ({
      id, sessionId, reason, error: null, attempts: 1, payload: null, createdAt, replayedAt: null,
    });
    // Two share a time: the id breaks the tie (descending), and the cursor must not skip or repeat either.
    for (const d of [dl('fl-a:1', 'fl-a', 10), dl('fl-a:2', 'fl-a', 20), dl('fl-b:1', 'fl-b', 20), dl('fl-b:2', 'fl-b', 30, 'expired'), dl('fl-c:1', 'fl-c', 40), dl('fl-x:1', 'fl-x', 50)]) {
      await store.addDeadLetter(d);
    }
    const ids = async (q: Parameters<Store['listDeadLetters']>[0]) => (await store.listDeadLetters(q)).map((d) => d.id);
    expect(await ids({ agentType: 'fleet' })).toEqual(['fl-b:2', 'fl-b:1', 'fl-a:2', 'fl-a:1']);
    const pages: string[][] = [];
    let before: { createdAt: number; id: string } | undefined;
    for (;;) {
      const page = await store.listDeadLetters({ agentType: 'fleet', limit: 1, ...(before ? { before } : {}) });
      if (page.length === 0) break;
      pages.push(page.map((d) => d.id));
      before = { createdAt: page[0]!.createdAt, id: page[0]!.id };
    }
    expect(pages.flat()).toEqual(['fl-b:2', 'fl-b:1', 'fl-a:2', 'fl-a:1']);
    expect(await ids({ tenant: 'fl-t1' })).toEqual(['fl-c:1', 'fl-a:2', 'fl-a:1']);
    expect(await ids({ reason: 'expired', sessionId: 'fl-b' })).toEqual(['fl-b:2']);
    expect(await ids({ agentType: 'fleet', since: 20, until: 30 })).toEqual(['fl-b:1', 'fl-a:2']);
    const [x] = await store.listDeadLetters({ sessionId: 'fl-x' });
    expect(x).toMatchObject({ id: 'fl-x:1', agentType: null });
    expect((await store.listDeadLetters({ sessionId: 'fl-c' }))[0]).toMatchObject({ agentType: 'fleet-other' });
    await store.markDeadLetterReplayed('fl-a:1', 99);
    expect(await ids({ agentType: 'fleet', replayed: true })).toEqual(['fl-a:1']);
    expect(await ids({ agentType: 'fleet', replayed: false })).toEqual(['fl-b:2', 'fl-b:1', 'fl-a:2']);
    expect((await store.deleteDeadLetters(['fl-a:1', 'fl-b:1', 'fl-nope'])).sort()).toEqual(['fl-a:1', 'fl-b:1']);
    expect(await store.deleteDeadLetters(['fl-a:1'])).toEqual([]);
    expect(await ids({ agentType: 'fleet' })).toEqual(['fl-b:2', 'fl-a:2']);

    const task = (id: string, sessionId: string, createdAt: number) => ({ id, sessionId, partition: 0, task: null, cron: '0 9 * * *', timezone: 'Asia/Tokyo', nextRunAt: 1e13, lastRunAt: null, createdAt });
    for (const t of [task('fl-t-2', 'fl-a', 5), task('fl-t-1', 'fl-a', 5), task('fl-t-3', 'fl-b', 6), task('fl-t-4', 'fl-c', 7)]) await store.addSchedule(t);
    expect((await store.listSchedules({ tenant: 'fl-t1' })).map((t) => t.id)).toEqual(['fl-t-1', 'fl-t-2', 'fl-t-4']);
    expect((await store.listSchedules({ tenant: 'fl-t1', after: { createdAt: 5, id: 'fl-t-1' }, limit: 1 })).map((t) => t.id)).toEqual(['fl-t-2']);
    expect((await store.listSchedules({ sessionId: 'fl-b' })).map((t) => t.id)).toEqual(['fl-t-3']);

    await store.setBudgetLimits('tenant', 'fl-t3', [{ metric: 'turns', max: '5', window: 'lifetime', policy: 'abort' }], 1);
    await store.setBudgetLimits('tenant', 'fl-t1', [{ metric: 'turns', max: '5', window: 'lifetime', policy: 'abort' }], 1);
    const tenants = (await store.listTenants({ after: 'fl-' })).filter((t) => t.tenant.startsWith('fl-'));
    expect(tenants).toEqual([
      { tenant: 'fl-t1', sessions: 2, byStatus: { idle: 1, active: 0, sleeping: 0, waiting: 0, stopped: 1 } },
      { tenant: 'fl-t2', sessions: 1, byStatus: { idle: 1, active: 0, sleeping: 0, waiting: 0, stopped: 0 } },
      { tenant: 'fl-t3', sessions: 0, byStatus: { idle: 0, active: 0, sleeping: 0, waiting: 0, stopped: 0 } },
    ]);
    expect((await store.listTenants({ after: 'fl-t1', limit: 1 })).map((t) => t.tenant)).toEqual(['fl-t2']);
  });
}

/**
 * Batched hydration reads (`loadSessions`) on any store: each record as `loadSession` returns
 * it, each history as `getHistory` with the session's limit returns it (newest first), missing
 * ids absent. Shared by the SQL backends of the suite below and the memory store.
 */
function hydrationContract(getStore: () => Store): void {
  const seed = async (store: Store): Promise<void> => {
    await store.commit([
      rec('hy-1', 1, { history: [hist('hy-1', 1), hist('hy-1', 2), hist('hy-1', 3)] }),
      rec('hy-2', 1, { type: 'mail', status: 'sleeping', wakeAt: 77, wakeEvents: ['x'], wakePriority: 'high' }), // no history
      rec('hy-3', 1, { type: 'mail', history: Array.from({ length: 8 }, (_, i) => hist('hy-3', i + 1)) }),
    ]);
    // A second commit: history of several commits comes back as one list, newest first.
    await store.commit([rec('hy-1', 2, { history: [hist('hy-1', 4, { body: { nested: [1, { deep: 'ü ✓' }] }, from: null })] })]);
  };

  it('loadSessions: several ids in one call, records as loadSession, history as getHistory, missing ids absent', async () => {
    const store = getStore();
    await seed(store);
    const got = await store.loadSessions(['hy-1', 'hy-missing', 'hy-2', 'hy-3', 'hy-1'], 2);
    expect([...got.keys()].sort()).toEqual(['hy-1', 'hy-2', 'hy-3']);
    for (const id of ['hy-1', 'hy-2', 'hy-3']) {
      expect(got.get(id)!.record, id).toEqual(await store.loadSession(id));
      expect(got.get(id)!.history, id).toEqual(await store.getHistory(id, { limit: 2 }));
    }
    expect(got.get('hy-1')!.history.map((e) => e.seq)).toEqual([4, 3]);
    expect(got.get('hy-1')!.history[0]).toEqual(hist('hy-1', 4, { body: { nested: [1, { deep: 'ü ✓' }] }, from: null }));
    expect(got.get('hy-2')).toEqual({ record: expect.objectContaining({ type: 'mail', status: 'sleeping', wakeAt: 77, wakeEvents: ['x'] }) as unknown, history: [] });
    expect(got.get('hy-3')!.history.map((e) => e.seq)).toEqual([8, 7]);
    expect((await store.loadSessions(['hy-missing'], 10)).size).toBe(0);
    expect((await store.loadSessions([], 10)).size).toBe(0);
  });

  it('loadSessions: a limit per agent type with a fallback, 0 for none, capped at 1000 like getHistory', async () => {
    const store = getStore();
    const got = await store.loadSessions(['hy-1', 'hy-2', 'hy-3'], { byType: { mail: 5, other: 7 }, fallback: 1 });
    expect(got.get('hy-1')!.history.map((e) => e.seq)).toEqual([4]); // 'chat' is not listed: the fallback
    expect(got.get('hy-3')!.history).toEqual(await store.getHistory('hy-3', { limit: 5 }));
    expect(got.get('hy-3')!.history.map((e) => e.seq)).toEqual([8, 7, 6, 5, 4]);
    expect((await store.loadSessions(['hy-1'], { byType: { chat: 3 }, fallback: 0 })).get('hy-1')!.history.map((e) => e.seq)).toEqual([4, 3, 2]);
    // Only the map's own keys count (no 'constructor' from Object.prototype), and a wild limit is clamped.
    const odd = await store.loadSessions(['hy-1', 'hy-3'], { byType: { mail: -4, chat: 2.9 }, fallback: 1 });
    expect(odd.get('hy-3')!.history).toEqual([]);
    expect(odd.get('hy-1')!.history.map((e) => e.seq)).toEqual([4, 3]);
    // A function (what a store in another thread would receive as nothing) is refused, not guessed at.
    await expect(store.loadSessions(['hy-1'], ((): number => 5) as never)).rejects.toBeInstanceOf(TypeError);
    const none = await store.loadSessions(['hy-1', 'hy-3'], 0);
    // A Map in whatever order the rows came: compare by id.
    expect([...none.values()].map((l) => [l.record.id, l.history]).sort()).toEqual([['hy-1', []], ['hy-3', []]]);
    const all = await store.loadSessions(['hy-3'], 5000);
    expect(all.get('hy-3')!.history).toEqual(await store.getHistory('hy-3', { limit: 1000 }));
    expect(all.get('hy-3')!.history).toHaveLength(8);
  });

  it('loadSessions: 300 sessions in one call', async () => {
    const store = getStore();
    const ids = Array.from({ length: 300 }, (_, i) => `hb-${String(i).padStart(3, '0')}`);
    await store.commit(ids.map((id, i) => rec(id, 1, { snapshot: { i, pad: 'p'.repeat(200) }, history: i % 3 === 0 ? [] : [hist(id, 1), hist(id, 2), hist(id, 3)] })));
    const got = await store.loadSessions([...ids].reverse(), 2);
    expect(got.size).toBe(300);
    for (const [i, id] of ids.entries()) {
      const l = got.get(id)!;
      expect(l.record).toMatchObject({ id, version: 1, snapshot: { i, pad: 'p'.repeat(200) } });
      expect(l.history.map((e) => [e.sessionId, e.seq])).toEqual(i % 3 === 0 ? [] : [[id, 3], [id, 2]]);
    }
  });
}

const backends: [string, () => Promise<Harness>][] = [
  ['pg', pgHarness],
  ['pglite (memory)', () => pgliteHarness(undefined)],
  ['pglite (dataDir)', async () => pgliteHarness(await mkdtemp(join(tmpdir(), 'agentry-pglite-')))],
];

describe.each(backends)('store on %s', (_name, makeHarness) => {
  let h: Harness;
  let store: Store;
  let supported: number;

  beforeAll(async () => {
    h = await makeHarness();
    store = h.store;
    supported = (await bundledMigrations()).at(-1)!.version;
  });
  afterAll(async () => {
    await h?.teardown();
  });

  it('migrates once; running it again twice is a no-op', async () => {
    const first = await store.migrate();
    expect(first).toEqual({ applied: (await bundledMigrations()).map((m) => m.version), current: supported });
    expect(await store.migrate()).toEqual({ applied: [], current: supported });
    expect(await store.migrate()).toEqual({ applied: [], current: supported });
    const rows = await h.raw('SELECT version, name FROM agentry_migrations ORDER BY version');
    expect(rows).toEqual((await bundledMigrations()).map((m) => ({ version: m.version, name: m.name })));
  });

  it('keeps runtime marks by key; the last write wins; an unknown key is null', async () => {
    expect(await store.loadMark('mark-test')).toBeNull();
    await store.saveMark('mark-test', { seq: 7, streamCreated: '2026-11-28T00:00:00Z' });
    await store.saveMark('mark-other', { seq: 1, streamCreated: 'x' });
    await store.saveMark('mark-test', { seq: 5, streamCreated: '2026-11-28T01:00:00Z' });
    expect(await store.loadMark('mark-test')).toEqual({ seq: 5, streamCreated: '2026-11-28T01:00:00Z' });
    expect(await store.loadMark('mark-other')).toEqual({ seq: 1, streamCreated: 'x' });
  });

  it('refuses a database migrated by a newer release', async () => {
    await h.raw(`INSERT INTO agentry_migrations (version, name, applied_at) VALUES (9999, 'future', 0)`);
    try {
      const err = await store.migrate().then(() => null, (e: unknown) => e);
      expect(err).toBeInstanceOf(SchemaTooNewError);
      expect(err).toMatchObject({ found: 9999, supported, code: 'SCHEMA_TOO_NEW', retryable: false });
    } finally {
      await h.raw('DELETE FROM agentry_migrations WHERE version = 9999');
    }
    expect(await store.migrate()).toEqual({ applied: [], current: supported });
  });

  it('concurrent migrate() calls on a fresh database apply each file once', async () => {
    const { a, b, done } = await h.freshPair();
    try {
      const results = await Promise.all([a.migrate(), b.migrate(), a.migrate(), b.migrate()]);
      expect(results.flatMap((r) => r.applied).sort((a, b) => a - b)).toEqual((await bundledMigrations()).map((m) => m.version));
      for (const r of results) expect(r.current).toBe(supported);
      await a.commit([rec('pair-1', 1)]);
      expect((await b.loadSession('pair-1'))?.version).toBe(1);
    } finally {
      await done();
    }
  });

  it('pings', async () => {
    await expect(store.ping()).resolves.toBeUndefined();
  });

  it('round-trips every field of a session, snapshot JSON included', async () => {
    clock = 1_700_000_000_123;
    const snapshot = {
      status: 'active', value: { active: 'running' }, historyValue: {},
      context: { text: 'héllo ✓ "quoted" \\ back', n: 1.5, big: 9007199254740991, neg: -3, t: true, nil: null, list: [1, 'two', { three: [3] }], empty: {} },
    };
    await store.commit([rec('rt-1', 1, {
      type: 'support', status: 'sleeping', snapshot, lastSeq: 42, partition: 3, ownerEpoch: 7,
      wakeAt: 1_700_000_060_000, wakeEvents: ['mail', 'timer.fired'], wakePriority: 'high',
    })]);
    expect(await store.loadSession('rt-1')).toEqual({
      id: 'rt-1', type: 'support', status: 'sleeping', snapshot, lastSeq: 42, version: 1, partition: 3,
      ownerEpoch: 7, wakeAt: 1_700_000_060_000, wakeEvents: ['mail', 'timer.fired'], wakePriority: 'high',
      createdAt: 1_700_000_000_123, updatedAt: 1_700_000_000_123,
    });

    clock += 5000;
    await store.commit([rec('rt-1', 2, { status: 'active', snapshot: ['top', 'level', 'array'], ownerEpoch: 7 })]);
    const v2 = await store.loadSession('rt-1');
    expect(v2).toMatchObject({
      version: 2, status: 'active', snapshot: ['top', 'level', 'array'], wakeAt: null, wakeEvents: [],
      wakePriority: null, createdAt: 1_700_000_000_123, updatedAt: 1_700_000_005_123,
    });

    await store.commit([rec('rt-2', 1, { snapshot: 'just a string' }), rec('rt-3', 1, { snapshot: null })]);
    expect((await store.loadSession('rt-2'))?.snapshot).toBe('just a string');
    expect((await store.loadSession('rt-3'))?.snapshot).toBeNull();
    expect(await store.loadSession('missing')).toBeNull();
  });

  it('rejects a stale version and persists nothing from that transaction', async () => {
    await store.commit([rec('st-1', 1, { history: [hist('st-1', 1)] })]);
    const conflicting = [
      rec('st-new', 1, { history: [hist('st-new', 1)], transitions: [{ sessionId: 'st-new', at: clock, event: 'go', from: 'idle', to: 'active' }], outbox: [out('st-new', 'st-new:o1', clock)] }),
      rec('st-1', 1, { history: [hist('st-1', 2)] }), // row exists: version 1 was already written
    ];
    const err = await store.commit(conflicting).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(StaleVersionError);
    expect(err).toMatchObject({ sessionId: 'st-1', expected: 0, code: 'STALE_VERSION' });
    expect(await store.loadSession('st-new')).toBeNull();
    expect(await store.getHistory('st-new')).toEqual([]);
    expect(await store.getTransitions('st-new')).toEqual([]);
    expect((await store.pendingOutbox(10_000)).filter((o) => o.sessionId === 'st-new')).toEqual([]);
    expect((await store.getHistory('st-1')).map((e) => e.seq)).toEqual([1]);

    // Skipping a version is stale too; the stored row is untouched.
    await expect(store.commit([rec('st-1', 3)])).rejects.toMatchObject({ name: 'StaleVersionError', expected: 2 });
    expect((await store.loadSession('st-1'))?.version).toBe(1);
  });

  it('rejects a deposed writer (older owner epoch) with FencedError', async () => {
    await store.commit([rec('fe-1', 1, { ownerEpoch: 5 })]);
    const err = await store.commit([rec('fe-2', 1), rec('fe-1', 2, { ownerEpoch: 4 })]).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(FencedError);
    expect(err).toMatchObject({ sessionId: 'fe-1', epoch: 4, code: 'FENCED' });
    expect(await store.loadSession('fe-2')).toBeNull();
    await store.commit([rec('fe-1', 2, { ownerEpoch: 5 })]);
    await store.commit([rec('fe-1', 3, { ownerEpoch: 6 })]);
    expect(await store.loadSession('fe-1')).toMatchObject({ version: 3, ownerEpoch: 6 });
  });

  it('commits several versions of one session in one call', async () => {
    await store.commit([
      rec('mv-1', 1, { status: 'active', history: [hist('mv-1', 1)], transitions: [{ sessionId: 'mv-1', at: 1, event: 'msg', from: 'idle', to: 'active' }] }),
      rec('mv-2', 1),
      rec('mv-1', 2, { status: 'waiting', ownerEpoch: 2, history: [hist('mv-1', 2)], transitions: [{ sessionId: 'mv-1', at: 2, event: 'wait', from: 'active', to: 'waiting' }] }),
      rec('mv-1', 3, { status: 'idle', ownerEpoch: 2, lastSeq: 99, transitions: [{ sessionId: 'mv-1', at: 3, event: 'done', from: 'waiting', to: 'idle' }] }),
    ]);
    expect(await store.loadSession('mv-1')).toMatchObject({ version: 3, status: 'idle', ownerEpoch: 2, lastSeq: 99 });
    expect((await store.getHistory('mv-1')).map((e) => e.seq)).toEqual([2, 1]);
    expect((await store.getTransitions('mv-1')).map((t) => t.event)).toEqual(['msg', 'wait', 'done']);

    // A gap or a falling epoch inside one call is refused as a whole.
    await expect(store.commit([rec('mv-3', 1), rec('mv-3', 3)])).rejects.toMatchObject({ name: 'StaleVersionError', sessionId: 'mv-3', expected: 2 });
    await expect(store.commit([rec('mv-3', 1, { ownerEpoch: 3 }), rec('mv-3', 2, { ownerEpoch: 2 })])).rejects.toBeInstanceOf(FencedError);
    expect(await store.loadSession('mv-3')).toBeNull();
  });

  it('keeps history newest first, idempotent on redelivery, with limit and before', async () => {
    const entries = [1, 2, 3, 4, 5].map((s) => hist('hi-1', s));
    await store.commit([rec('hi-1', 1, { history: entries })]);
    // A redelivered batch carries the same (seq, batch) keys: nothing is added.
    await store.commit([rec('hi-1', 2, { history: [entries[3]!, entries[4]!, hist('hi-1', 6)] })]);
    // Internal records may reuse a seq under another batch.
    await store.commit([rec('hi-1', 3, { history: [hist('hi-1', -1, { kind: 'internal', batchId: 'x1', body: undefined, from: null }), hist('hi-1', 6, { batchId: 'b6-retry', outcome: 'interrupted' })] })]);

    const all = await store.getHistory('hi-1');
    expect(all.map((e) => [e.seq, e.batchId])).toEqual([[6, 'b6-retry'], [6, 'b6'], [5, 'b5'], [4, 'b4'], [3, 'b3'], [2, 'b2'], [1, 'b1'], [-1, 'x1']]);
    expect(all[2]).toEqual(hist('hi-1', 5));
    expect(all.at(-1)).toMatchObject({ body: null, from: null, kind: 'internal' });
    expect((await store.getHistory('hi-1', { limit: 2 })).map((e) => e.seq)).toEqual([6, 6]);
    expect((await store.getHistory('hi-1', { before: 4, limit: 2 })).map((e) => e.seq)).toEqual([3, 2]);
    expect((await store.getHistory('hi-1', { before: 1 })).map((e) => e.seq)).toEqual([-1]);
    expect(await store.getHistory('nobody')).toEqual([]);
  });

  it('keeps transitions oldest first with after and limit', async () => {
    const t = (at: number, event: string) => ({ sessionId: 'tr-1', at, event, from: `s${at - 1}`, to: `s${at}` });
    await store.commit([rec('tr-1', 1, { transitions: [t(10, 'a'), t(20, 'b')] })]);
    await store.commit([rec('tr-1', 2, { transitions: [t(30, 'c'), t(40, 'd')] })]);
    expect(await store.getTransitions('tr-1')).toMatchObject([t(10, 'a'), t(20, 'b'), t(30, 'c'), t(40, 'd')]);
    expect((await store.getTransitions('tr-1', { after: 20 })).map((x) => x.event)).toEqual(['c', 'd']);
    expect((await store.getTransitions('tr-1', { limit: 3 })).map((x) => x.event)).toEqual(['a', 'b', 'c']);
  });

  it('keeps each transition\'s frame and changed user state, and reads a step back with the one before it (migration 0013)', async () => {
    const t = (at: number, to: string, extra: object = {}) => ({ sessionId: 'fr-1', at, event: 'e', from: 's', to, ...extra });
    // A NUL escape in a frame is kept (json, not jsonb), as in the session log.
    await store.commit([rec('fr-1', 1, { transitions: [t(10, 'idle', { frame: { n: 1, text: 'a\u0000b' }, userState: { v: 1 } }), t(20, 'active', { frame: { n: 2 } })] })]);
    await store.commit([rec('fr-1', 2, { transitions: [t(30, 'idle', { frame: { n: 3 }, userState: null })] })]);
    const [a, b, c] = await store.getTransitions('fr-1');
    expect(a).not.toHaveProperty('frame');
    expect((await store.getTransitions('fr-1', { frames: true })).map((x) => x.frame)).toEqual([{ n: 1, text: 'a\u0000b' }, { n: 2 }, { n: 3 }]);
    const second = await store.getSessionStep('fr-1', b!.id!);
    expect(second).toMatchObject({ transition: { id: b!.id, at: 20, to: 'active' }, frame: { n: 2 }, previous: { transition: { id: a!.id }, frame: { n: 1 } } });
    expect(second?.userState).toEqual({ value: { v: 1 }, transitionId: a!.id });
    expect(second?.previousUserState).toEqual({ value: { v: 1 }, transitionId: a!.id });
    const third = await store.getSessionStep('fr-1', c!.id!);
    expect(third?.userState).toEqual({ value: null, transitionId: c!.id }); // a null user state is a recorded one
    expect(third?.previousUserState).toEqual({ value: { v: 1 }, transitionId: a!.id });
    const first = await store.getSessionStep('fr-1', a!.id!);
    expect(first?.previous).toBeNull();
    expect(first?.previousUserState).toBeUndefined();
    expect(await store.getSessionStep('fr-1', c!.id! + 1000)).toBeNull();
    expect(await store.getSessionStep('nobody', a!.id!)).toBeNull();
    // A row written without a frame (before 0013) reads back as null.
    await store.commit([rec('fr-1', 3, { transitions: [t(40, 'sleeping')] })]);
    const d = (await store.getTransitions('fr-1')).at(-1)!;
    expect(await store.getSessionStep('fr-1', d.id!)).toMatchObject({ frame: null, userState: { value: null, transitionId: c!.id } });
  });

  it('lists sessions with filters and keyset pagination, and counts them by status', async () => {
    const before = await store.countSessionsByStatus();
    expect(Object.keys(before).sort()).toEqual(['active', 'idle', 'sleeping', 'stopped', 'waiting']);
    const statuses = ['idle', 'active', 'sleeping', 'waiting', 'idle'] as const;
    // Mixed case and punctuation: the order must match JavaScript's string order.
    const ids = Array.from({ length: 25 }, (_, i) => `ls-${i % 2 ? 'A' : 'b'}-${String(i).padStart(2, '0')}`);
    await store.commit(ids.map((id, i) => rec(id, 1, { status: statuses[i % 5]!, type: i % 3 ? 'chat' : 'mail', wakeAt: i === 0 ? 123 : null })));
    const sorted = [...ids].sort();

    const pages: string[] = [];
    let after: string | undefined;
    for (;;) {
      const page = await store.listSessions({ idContains: 'ls-', limit: 7, after });
      pages.push(...page.map((s) => s.id));
      if (page.length < 7) break;
      after = page.at(-1)!.id;
    }
    expect(pages).toEqual(sorted);

    const first = (await store.listSessions({ idContains: 'ls-b-00' }))[0];
    expect(first).toEqual({ id: 'ls-b-00', type: 'mail', status: 'idle', wakeAt: 123, updatedAt: clock, tenant: null, tags: [] });
    const sleepingChat = await store.listSessions({ idContains: 'ls-', status: 'sleeping', type: 'chat' });
    expect(sleepingChat.map((s) => s.id)).toEqual(sorted.filter((id) => {
      const i = ids.indexOf(id);
      return statuses[i % 5] === 'sleeping' && i % 3 !== 0;
    }));
    expect((await store.listSessions({ idContains: 'ls-A' })).every((s) => s.id.includes('ls-A'))).toBe(true);
    expect(await store.listSessions({ idContains: 'LS-' })).toEqual([]); // substring match is exact
    expect(await store.listSessions({ idContains: '%' })).toEqual([]); // no LIKE wildcards
    expect((await store.listSessions({ limit: 5000 })).length).toBeLessThanOrEqual(1000);

    await store.commit([rec('ls-b-00', 2, { status: 'stopped' })]);
    const after2 = await store.countSessionsByStatus();
    expect({
      idle: after2.idle - before.idle, active: after2.active - before.active, sleeping: after2.sleeping - before.sleeping,
      waiting: after2.waiting - before.waiting, stopped: after2.stopped - before.stopped,
    }).toEqual({ idle: 9, active: 5, sleeping: 5, waiting: 5, stopped: 1 });
  });

  it('keeps dead letters once per id, lists them newest first and marks replays', async () => {
    const dl = (id: string, sessionId: string, createdAt: number): DeadLetter => ({
      id, sessionId, reason: 'handler-failed', error: 'boom', attempts: 3, payload: { msgs: [{ seq: 1 }] }, createdAt, replayedAt: null,
    });
    await store.addDeadLetter(dl('dl-1:1', 'dl-1', 100));
    await store.addDeadLetter({ ...dl('dl-1:1', 'dl-1', 999), reason: 'second' });
    await store.addDeadLetter(dl('dl-1:5', 'dl-1', 200));
    await store.addDeadLetter(dl('dl-2:1', 'dl-2', 300));

    expect(await store.getDeadLetter('dl-1:1')).toEqual(dl('dl-1:1', 'dl-1', 100));
    expect((await store.listDeadLetters({ sessionId: 'dl-1' })).map((d) => d.id)).toEqual(['dl-1:5', 'dl-1:1']);
    expect((await store.listDeadLetters({ sessionId: 'dl-1', limit: 1 })).map((d) => d.id)).toEqual(['dl-1:5']);
    expect((await store.listDeadLetters()).map((d) => d.id).filter((id) => id.startsWith('dl-'))).toEqual(['dl-2:1', 'dl-1:5', 'dl-1:1']);

    await store.markDeadLetterReplayed('dl-1:1', 4242);
    expect(await store.getDeadLetter('dl-1:1')).toMatchObject({ replayedAt: 4242, reason: 'handler-failed' });
    await store.markDeadLetterReplayed('nope', 1);
    expect(await store.getDeadLetter('nope')).toBeNull();
  });

  it('keeps outbox rows until deleted, once per id', async () => {
    const mine = async () => (await store.pendingOutbox(10_000)).filter((o) => o.sessionId === 'ob-1');
    await store.commit([rec('ob-1', 1, { outbox: [out('ob-1', 'ob-1:2', 20), out('ob-1', 'ob-1:1', 10)] })]);
    await store.commit([rec('ob-1', 2, { outbox: [out('ob-1', 'ob-1:1', 10), out('ob-1', 'ob-1:3', 30)] })]);
    expect(await mine()).toEqual([out('ob-1', 'ob-1:1', 10), out('ob-1', 'ob-1:2', 20), out('ob-1', 'ob-1:3', 30)]);
    await store.deleteOutbox(['ob-1:1', 'ob-1:3', 'not-there']);
    await store.deleteOutbox([]);
    expect((await mine()).map((o) => o.id)).toEqual(['ob-1:2']);
  });

  it('finds outbox rows to sweep by partition and age; rows of a session without a row go to every sweep', async () => {
    await store.commit([
      rec('sw-a', 1, { partition: 5, outbox: [out('sw-a', 'sw-a:1:0', 100), out('sw-a', 'sw-a:1:1', 900)] }),
      rec('sw-b', 1, { partition: 6, outbox: [out('sw-b', 'sw-b:1:0', 200)] }),
    ]);
    // A cron firing for a session that does not exist yet.
    await store.addSchedule({ id: 'sw-task', sessionId: 'sw-none', partition: 7, task: {}, cron: '* * * * *', timezone: 'UTC', nextRunAt: 50, lastRunAt: null, createdAt: 1 });
    await store.fireSchedule('sw-task', 50, 60_050, 50, { ...out('sw-none', 'sw-task:50', 50), subject: 'agentry.in.sw-none' });
    const ids = async (q: { partitions?: number[]; createdBefore?: number }) =>
      (await store.pendingOutbox(10_000, q)).map((o) => o.id).filter((id) => id.startsWith('sw-'));
    expect(await ids({})).toEqual(['sw-task:50', 'sw-a:1:0', 'sw-b:1:0', 'sw-a:1:1']);
    expect(await ids({ partitions: [5] })).toEqual(['sw-task:50', 'sw-a:1:0', 'sw-a:1:1']);
    expect(await ids({ partitions: [6, 9] })).toEqual(['sw-task:50', 'sw-b:1:0']);
    expect(await ids({ partitions: [5], createdBefore: 900 })).toEqual(['sw-task:50', 'sw-a:1:0']);
    expect(await ids({ createdBefore: 100 })).toEqual(['sw-task:50']);
    await store.deleteOutbox(['sw-a:1:0', 'sw-a:1:1', 'sw-b:1:0', 'sw-task:50']);
    await store.deleteSchedule('sw-task');
  });

  it('prunes a session\'s past by retention: count and age, never the newest historyFloor, transitions by count and age', async () => {
    const tr = (sid: string, at: number): TransitionRecord => ({ sessionId: sid, at, event: `e${at}`, from: 'a', to: 'b' });
    await store.commit([rec('ret-a', 1, { history: Array.from({ length: 10 }, (_, k) => hist('ret-a', k + 1, { at: 1000 + k })), transitions: Array.from({ length: 6 }, (_, k) => tr('ret-a', 1000 + k)) })]);
    await store.commit([rec('ret-b', 1, { history: Array.from({ length: 4 }, (_, k) => hist('ret-b', k + 1, { at: 1000 + k })) })]);
    const seqs = async (sid: string) => (await store.getHistory(sid, { limit: 100 })).map((e) => e.seq);
    // Count: keep the newest 6 (floor 3 is below it).
    expect(await store.prunePast({ sessionIds: ['ret-a', 'ret-b', 'ret-none'], historyFloor: 3, history: { maxCount: 6 } })).toEqual({ history: 4, transitions: 0 });
    expect(await seqs('ret-a')).toEqual([10, 9, 8, 7, 6, 5]);
    expect(await seqs('ret-b')).toEqual([4, 3, 2, 1]);
    // Age: older than 1008 goes, but the newest 3 (the floor) stay even when old.
    expect(await store.prunePast({ sessionIds: ['ret-a', 'ret-b'], historyFloor: 3, history: { before: 1008 } })).toEqual({ history: 4, transitions: 0 });
    expect(await seqs('ret-a')).toEqual([10, 9, 8]);
    expect(await seqs('ret-b')).toEqual([4, 3, 2]);
    // Transitions: newest 4, then older than 1004.
    expect(await store.prunePast({ sessionIds: ['ret-a'], historyFloor: 3, transitions: { maxCount: 4 } })).toEqual({ history: 0, transitions: 2 });
    expect((await store.getTransitions('ret-a')).map((t) => t.at)).toEqual([1002, 1003, 1004, 1005]);
    expect(await store.prunePast({ sessionIds: ['ret-a'], historyFloor: 3, transitions: { before: 1004 } })).toEqual({ history: 0, transitions: 2 });
    expect((await store.getTransitions('ret-a')).map((t) => t.at)).toEqual([1004, 1005]);
    // Nothing bounded: nothing goes.
    expect(await store.prunePast({ sessionIds: ['ret-a'], historyFloor: 0 })).toEqual({ history: 0, transitions: 0 });
    // The idle walk: sessions of a type in given partitions, unchanged since a time, paged by id.
    await store.commit([rec('ret-w1', 1, { partition: 2, type: 'walked' }), rec('ret-w2', 1, { partition: 2, type: 'walked' }), rec('ret-w3', 1, { partition: 3, type: 'walked' })]);
    const idle = (parts: number[], after: string | null, limit = 10) => store.idleSessions('walked', parts, clock + 1, after, limit);
    expect(await idle([2, 3], null)).toEqual(['ret-w1', 'ret-w2', 'ret-w3']);
    expect(await idle([2], null, 1)).toEqual(['ret-w1']);
    expect(await idle([2], 'ret-w1')).toEqual(['ret-w2']);
    expect(await idle([4], null)).toEqual([]);
    expect(await store.idleSessions('walked', [2, 3], clock, null, 10)).toEqual([]); // updated at `clock`: not before it
  });

  it('pages snapshots, replaces one by version compare-and-set, and purges a stopped session (issue 16)', async () => {
    await store.commit([rec('mig-a', 1, { type: 'mig' }), rec('mig-b', 1, { type: 'mig' }), rec('mig-c', 1, { type: 'other' })]);
    const ids = async (after: string | null, limit: number, type?: string) => (await store.pageSessions(after, limit, type)).map((r) => r.id).filter((id) => id.startsWith('mig-'));
    expect(await ids('mif', 10)).toEqual(['mig-a', 'mig-b', 'mig-c']);
    expect(await ids('mif', 2)).toEqual(['mig-a', 'mig-b']);
    expect(await ids('mig-b', 10)).toEqual(['mig-c']);
    expect(await ids(null, 1000, 'mig')).toEqual(['mig-a', 'mig-b']);
    expect((await store.pageSessions('mif', 1))[0]).toMatchObject({ id: 'mig-a', version: 1, snapshot: { value: 'idle' } });
    // A migration write: only over the version read, and it moves the version on (a live owner's next commit is refused).
    const before = (await store.loadSession('mig-a'))!;
    expect(await store.replaceSnapshot('mig-a', 1, { value: 'idle', context: { n: 1 }, agentry: { version: 2 } })).toBe(true);
    const after = (await store.loadSession('mig-a'))!;
    expect(after).toMatchObject({ version: 2, snapshot: { agentry: { version: 2 } }, updatedAt: before.updatedAt, lastSeq: before.lastSeq });
    expect(await store.replaceSnapshot('mig-a', 1, { value: 'idle' })).toBe(false);
    await expect(store.commit([rec('mig-a', 2)])).rejects.toBeInstanceOf(StaleVersionError);
    expect(await store.replaceSnapshot('mig-none', 1, {})).toBe(false);
    // Purge: a stopped session at the expected version without outbox rows; dead letters stay,
    // its flight-recorder checkpoints go (a new session under the id must not fork from them).
    await store.setCheckpointTypes(['mig'], []);
    await store.commit([rec('mig-b', 2, { type: 'mig', status: 'stopped', history: [hist('mig-b', 1)], transitions: [{ sessionId: 'mig-b', at: 1, event: 'STOP', from: 'idle', to: 'stopped' }], outbox: [out('mig-b', 'mig-b:2', 1)] })]);
    await store.addDeadLetter({ id: 'mig-b:9', sessionId: 'mig-b', reason: 'stopped', error: null, attempts: 0, payload: null, createdAt: 1, replayedAt: null });
    expect((await store.listCheckpoints('mig-b')).length).toBeGreaterThan(0);
    expect(await store.purgeSession('mig-b', 2)).toBe(false); // an unpublished outbox row
    await store.deleteOutbox(['mig-b:2']);
    expect(await store.purgeSession('mig-b', 1)).toBe(false); // not the version seen
    expect(await store.purgeSession('mig-c', 1)).toBe(false); // not stopped
    expect(await store.purgeSession('mig-b', 2)).toBe(true);
    expect(await store.loadSession('mig-b')).toBeNull();
    expect(await store.getHistory('mig-b')).toEqual([]);
    expect(await store.getTransitions('mig-b')).toEqual([]);
    expect((await store.listDeadLetters({ sessionId: 'mig-b' })).map((d) => d.id)).toEqual(['mig-b:9']);
    expect(await store.listCheckpoints('mig-b')).toEqual([]);
    await store.setCheckpointTypes([], ['mig']);
    // The id is free again: a new session can be created under it.
    await store.commit([rec('mig-b', 1)]);
    expect((await store.loadSession('mig-b'))?.version).toBe(1);
  });

  it('commits 500 sessions in one call (group commit)', async () => {
    const batch = (version: number) => Array.from({ length: 500 }, (_, i) => {
      const id = `gc-${String(i).padStart(3, '0')}`;
      return rec(id, version, {
        status: version === 1 ? 'active' : 'idle', snapshot: { pad: 'x'.repeat(800), i },
        history: [hist(id, version * 2 - 1), hist(id, version * 2)],
        transitions: [{ sessionId: id, at: version, event: `e${version}`, from: 'a', to: 'b' }],
        outbox: [out(id, `${id}:${version}`, version)],
      });
    });
    const t0 = performance.now();
    await store.commit(batch(1));
    const t1 = performance.now();
    await store.commit(batch(2));
    const t2 = performance.now();
    console.log(`${_name}: 500-session commit ${(t1 - t0).toFixed(0)} ms (insert), ${(t2 - t1).toFixed(0)} ms (update)`);

    const page = await store.listSessions({ idContains: 'gc-', limit: 1000 });
    expect(page).toHaveLength(500);
    expect(page.every((s) => s.status === 'idle')).toBe(true);
    expect(await store.loadSession('gc-499')).toMatchObject({ version: 2, snapshot: { pad: 'x'.repeat(800), i: 499 } });
    expect((await store.getHistory('gc-250')).map((e) => e.seq)).toEqual([4, 3, 2, 1]);
    expect((await store.getTransitions('gc-250')).map((e) => e.event)).toEqual(['e1', 'e2']);
    const pending = (await store.pendingOutbox(10_000)).filter((o) => o.sessionId.startsWith('gc-'));
    expect(pending).toHaveLength(1000);
    await store.deleteOutbox(pending.map((o) => o.id));
  });

  it('serialises concurrent commits: independent ones all land, racing ones fail stale', async () => {
    await Promise.all(Array.from({ length: 20 }, (_, i) => store.commit([rec(`cc-${i}`, 1, { history: [hist(`cc-${i}`, 1)] })])));
    const loads = await Promise.all(Array.from({ length: 20 }, (_, i) => store.loadSession(`cc-${i}`)));
    expect(loads.every((s) => s?.version === 1)).toBe(true);

    const racers = await Promise.allSettled(Array.from({ length: 5 }, (_, i) => store.commit([rec('cc-0', 2, { lastSeq: i })])));
    expect(racers.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    for (const r of racers) if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(StaleVersionError);
    expect((await store.loadSession('cc-0'))?.version).toBe(2);
  });

  it('keeps everything across close and reopen', async (ctx) => {
    if (!h.reopen) return ctx.skip();
    await store.commit([rec('ro-1', 1, { snapshot: { keep: [1, 2, 3] }, history: [hist('ro-1', 1)], outbox: [out('ro-1', 'ro-1:1', 1)] })]);
    const before = await store.loadSession('ro-1');
    store = await h.reopen();
    expect(await store.migrate()).toEqual({ applied: [], current: supported });
    expect(await store.loadSession('ro-1')).toEqual(before);
    expect((await store.getHistory('ro-1')).map((e) => e.seq)).toEqual([1]);
    expect((await store.pendingOutbox(10_000)).map((o) => o.id)).toContain('ro-1:1');
    await store.commit([rec('ro-1', 2)]);
    expect((await store.loadSession('ro-1'))?.version).toBe(2);
  });
  it('finds due sleep/wait deadlines by partition, oldest first, and only for sleeping/waiting sessions', async () => {
    const base = 5_000_000;
    await store.commit([
      rec('due-a', 1, { status: 'sleeping', wakeAt: base + 30, partition: 1 }),
      rec('due-b', 1, { status: 'waiting', wakeAt: base + 10, partition: 2 }),
      rec('due-c', 1, { status: 'sleeping', wakeAt: base + 9_000_000, partition: 1 }),
      rec('due-d', 1, { status: 'idle', wakeAt: base + 5, partition: 1 }),
    ]);
    const all = await store.dueWakes(null, base + 1000, 100);
    expect(all.filter((w) => w.sessionId.startsWith('due-')).map((w) => [w.sessionId, w.wakeAt, w.status])).toEqual([
      ['due-b', base + 10, 'waiting'], ['due-a', base + 30, 'sleeping'],
    ]);
    const p1 = await store.dueWakes([1], base + 1000, 100);
    expect(p1.filter((w) => w.sessionId.startsWith('due-')).map((w) => w.sessionId)).toEqual(['due-a']);
  });

  it('routes events to sleepers/waiters listing the type and to exact and wildcard subscribers, not to stopped ones', async () => {
    await store.commit([
      rec('ev-sleep', 1, { status: 'sleeping', wakeEvents: ['system_alert'] }),
      rec('ev-other', 1, { status: 'sleeping', wakeEvents: ['other'] }),
      rec('ev-exact', 1, { subscribe: ['invoice.paid'] }),
      rec('ev-wild', 1, { subscribe: ['invoice.*', 'billing.>'] }),
      rec('ev-stopped', 1, { status: 'stopped', subscribe: ['invoice.paid'] }),
    ]);
    expect(await store.eventRecipients('system_alert')).toEqual(['ev-sleep']);
    expect(await store.eventRecipients('invoice.paid')).toEqual(['ev-exact', 'ev-wild']);
    expect(await store.eventRecipients('billing.x.y')).toEqual(['ev-wild']);
    expect(await store.eventRecipients('nobody.cares')).toEqual([]);
    await store.commit([rec('ev-wild', 2, { unsubscribe: ['invoice.*'] })]);
    expect(await store.eventRecipients('invoice.paid')).toEqual(['ev-exact']);
  });

  it('keeps cron schedules and fires each due instant exactly once (compare-and-set with its outbox row)', async () => {
    const s = { id: 'task-1', sessionId: 'cron-s', partition: 3, task: { do: 'report' }, cron: '0 * * * *', timezone: 'Europe/Berlin', nextRunAt: 1000, lastRunAt: null, createdAt: 1 };
    await store.addSchedule(s);
    await expect(store.addSchedule(s)).rejects.toThrow();
    expect(await store.getSchedule('task-1')).toEqual(s);
    expect((await store.listSchedules({ sessionId: 'cron-s' })).map((x) => x.id)).toEqual(['task-1']);
    expect((await store.dueSchedules([3], 1001, 10)).map((x) => x.id)).toEqual(['task-1']);
    expect(await store.dueSchedules([4], 1001, 10)).toEqual([]);
    const row = { ...out('cron-s', 'task-1:1000', 1000), subject: 'agentry.in.cron-s' };
    const [a, b] = await Promise.all([
      store.fireSchedule('task-1', 1000, 2000, 1000, row),
      store.fireSchedule('task-1', 1000, 2000, 1000, row),
    ]);
    expect([a, b].filter(Boolean)).toHaveLength(1);
    expect(await store.getSchedule('task-1')).toMatchObject({ nextRunAt: 2000, lastRunAt: 1000 });
    expect((await store.pendingOutbox(1000)).filter((o) => o.id === 'task-1:1000')).toHaveLength(1);
    expect(await store.deleteSchedule('task-1')).toBe(true);
    expect(await store.deleteSchedule('task-1')).toBe(false);
  });

  it('refuses poison anywhere in a commit as StoreDataError and writes nothing of it', async () => {
    await store.commit([rec('po-1', 1)]);
    const poison: [string, Partial<CommitRecord>][] = [
      ['NUL in the snapshot', { snapshot: { text: 'a\u0000b' } }],
      ['NUL in a snapshot key', { snapshot: { ['k\u0000']: 1 } }],
      ['lone surrogate in the snapshot', { snapshot: { text: 'x\ud800' } }],
      ['NUL in a history body', { history: [hist('po-1', 1, { body: { text: 'a\u0000b' } })] }],
      ['NUL in a text column (history sender)', { history: [hist('po-1', 1, { from: 'a\u0000b' })] }],
      ['lone surrogate in a text column (transition event)', { transitions: [{ sessionId: 'po-1', at: 1, event: 'e\udc00', from: 'a', to: 'b' }] }],
      ['NUL in a wake event', { wakeEvents: ['a\u0000'] }],
      ['NUL in an outbox header', { outbox: [{ ...out('po-1', 'po-1:x', 1), headers: { h: 'a\u0000' } }] }],
    ];
    for (const [what, over] of poison) {
      const err = await store.commit([rec('po-ok', 1), rec('po-1', 2, over)]).then(() => null, (e: unknown) => e);
      expect(err, what).toBeInstanceOf(StoreDataError);
      expect(err, what).toMatchObject({ code: 'STORE_DATA', retryable: false });
      expect((err as StoreDataError).sqlState, what).toMatch(/^22/);
    }
    expect(await store.loadSession('po-ok')).toBeNull();
    expect(await store.loadSession('po-1')).toMatchObject({ version: 1 });
    expect(await store.getHistory('po-1')).toEqual([]);
    // A reply whose JSON text escapes a NUL is data, not poison: stored, and logged verbatim.
    const body = JSON.stringify({ z: 'nul\u0000reply', a: 1 });
    await store.commit([rec('po-1', 2, { outbox: [{ ...out('po-1', 'po-1:r', clock), headers: { 'Agentry-Kind': 'reply' }, body }] })]);
    expect((await store.pendingOutbox(10_000)).find((o) => o.id === 'po-1:r')?.body).toBe(body);
    const [entry] = await store.readLog('po-1', 0, 10);
    expect(JSON.stringify((entry!.data as { body: unknown }).body)).toBe(body);
  });

  hydrationContract(() => store);
  sessionLogContract(() => store);
  fleetListingContract(() => store);
});

describe('fleet listings on the memory store', () => {
  fleetListingContract(() => createMemoryStore(now));
});

describe('hydration reads on the memory store', () => {
  const memory = createMemoryStore(now);
  hydrationContract(() => memory);
});

describe('session log on the memory store, and retention on its own', () => {
  const memory = createMemoryStore(now);
  sessionLogContract(() => memory);

  it('the memory store keeps the newest 1000 entries per session as it commits', async () => {
    const many = Array.from({ length: 1005 }, (_, i): TransitionRecord => ({ sessionId: 'auto-1', at: i, event: 'e', from: 'a', to: 'b' }));
    await memory.commit([rec('auto-1', 1, { transitions: many })]);
    const kept = await memory.readLog('auto-1', 0, 1000);
    expect(kept).toHaveLength(1000);
    expect(await memory.logPrunedThrough('auto-1')).toBe(kept[0]!.id - 1);
  });

  it('a SQL store prunes in the background after commits (PGlite, pruning every commit)', async () => {
    const db = await PGlite.create();
    const saved = clock;
    const s = createSqlStore(createPgliteDb(Promise.resolve(db)), 'pglite', { now, logPruneEveryMs: 1 });
    try {
      await s.migrate();
      clock = 10_000;
      await s.commit([rec('bg-1', 1, { transitions: Array.from({ length: 1003 }, (_, i) => ({ sessionId: 'bg-1', at: i, event: 'e', from: 'a', to: 'b' })) })]);
      await s.commit([rec('bg-old', 1, { transitions: [{ sessionId: 'bg-old', at: 1, event: 'e', from: 'a', to: 'b' }] })]);
      clock = 10_000 + 25 * 60 * 60 * 1000; // a day later: bg-old's entry is past retention
      await new Promise((r) => setTimeout(r, 5));
      await s.commit([rec('bg-1', 2, { transitions: [{ sessionId: 'bg-1', at: 2000, event: 'e', from: 'b', to: 'c' }] })]);
      for (let i = 0; i < 200 && (await s.readLog('bg-old', 0, 10)).length > 0; i++) await new Promise((r) => setTimeout(r, 10));
      expect(await s.readLog('bg-old', 0, 10)).toEqual([]);
      expect(await s.logPrunedThrough('bg-old')).toBeGreaterThan(0);
      // Age removed bg-1's older entries too, leaving the newest.
      expect((await s.readLog('bg-1', 0, 1000)).map((e) => (e.data as { to: string }).to)).toEqual(['c']);
    } finally {
      clock = saved;
      await s.close(); // closes the PGlite instance too
    }
  });
});

describe('store errors and construction', () => {
  it('reports an unreachable Postgres as StoreUnavailableError with the cause', async () => {
    const store = createPgStore({ connectionString: 'postgres://postgres@127.0.0.1:1/test' });
    try {
      const err = await store.ping().then(() => null, (e: unknown) => e);
      expect(err).toBeInstanceOf(StoreUnavailableError);
      expect(err).toMatchObject({ code: 'STORE_UNAVAILABLE', retryable: true });
      expect((err as Error).cause).toBeDefined();
    } finally {
      await store.close();
    }
  });

  it('reports a statement timeout and a terminated backend as StoreUnavailableError', async () => {
    const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 1, statement_timeout: 50 });
    pool.on('error', () => undefined);
    const db = createPgDb(pool);
    const admin = new pg.Client({ connectionString: DATABASE_URL });
    await admin.connect();
    try {
      await expect(db.query('SELECT pg_sleep(1)')).rejects.toBeInstanceOf(StoreUnavailableError);
      const [{ pid }] = (await db.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows as [{ pid: number }];
      // Handle the outcome at once: the rejection may land before the admin query returns.
      // No statement timeout inside: on a busy machine the 50 ms limit fired before the kill arrived.
      const killed = db.transaction(async (tx) => {
        await tx.query('SET LOCAL statement_timeout = 0');
        return tx.query('SELECT pg_sleep(0.04) FROM generate_series(1, 100)');
      })
        .then(() => null, (e: unknown) => e);
      // Kill it while it runs the sleep (not before: a kill between two statements surfaces as the
      // client's own "not queryable" error on the next one, without the server's 57P01).
      await waitFor(async () => (await admin.query("SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND state = 'active' AND query LIKE 'SELECT pg_sleep(0.04)%'", [pid])).rowCount === 1, 'the sleep running', 20_000, 5);
      await admin.query('SELECT pg_terminate_backend($1::integer)', [pid]);
      const err = await killed;
      expect(err).toBeInstanceOf(StoreUnavailableError);
      expect((err as Error).cause).toMatchObject({ code: '57P01' });
      // The pool replaced the dead connection.
      expect((await db.query<{ one: number }>('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
    } finally {
      await admin.end();
      await db.close();
    }
  });

  it('reports a closed PGlite store as StoreUnavailableError', async () => {
    const store = createPgliteStore();
    await store.migrate();
    await store.close();
    await expect(store.ping()).rejects.toBeInstanceOf(StoreUnavailableError);
  });

  it('openStore picks pg for a URL and PGlite otherwise', async () => {
    const schema = randomSchema();
    const pgStore = openStore({ databaseUrl: DATABASE_URL, schema, dataDir: '/nonexistent' });
    const lite = openStore({});
    try {
      expect(pgStore.kind).toBe('pg');
      expect(lite.kind).toBe('pglite');
      for (const s of [pgStore, lite]) {
        await s.migrate();
        await s.commit([rec('os-1', 1)]);
        expect((await s.loadSession('os-1'))?.version).toBe(1);
      }
    } finally {
      await pgStore.close();
      await lite.close();
      const admin = new pg.Client({ connectionString: DATABASE_URL });
      await admin.connect();
      await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await admin.end();
    }
  });

  it('refuses a schema name that is not a plain identifier', () => {
    expect(() => createPgStore({ connectionString: DATABASE_URL, schema: 'a b; drop' })).toThrow(TypeError);
  });
});
