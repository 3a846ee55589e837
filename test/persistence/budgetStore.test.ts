// The budget ledger's store contract (issue 17 §2) on the three backends: reserve checks limits
// and writes only when none that blocks would break, an existing id is reused (never counted
// twice), settle replaces the amount, sums are exact decimals (NUMERIC), windows count by `at`,
// and concurrent reservations of one tenant cannot both pass a limit only one fits under.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMemoryStore, createPgStore, createPgliteStore } from '../../persistence/index.js';
import type { BudgetCheck, BudgetEntry } from '../../persistence/budget.js';
import type { Store } from '../../persistence/types.js';
import { PG_URL } from '../helpers.js';

const HOUR = 3_600_000;
const NOW = Date.UTC(2026, 10, 28, 12, 0, 0);
const entry = (id: string, sessionId: string, tenant: string | null, amounts: BudgetEntry['amounts'], at = NOW): BudgetEntry => ({ id, sessionId, tenant, at, state: 'reserved', amounts });
const tenantCheck = (tenant: string, max: string, metric: 'tokens' | 'cost' = 'tokens', window: 'lifetime' | 'day' | '2h' = 'lifetime'): BudgetCheck =>
  ({ scope: 'tenant', key: tenant, limits: [{ metric, max, window, policy: 'abort', from: 'tenant' }] });

const backends: [string, () => Promise<{ store: Store; done: () => Promise<void> }>][] = [
  ['memory', () => Promise.resolve({ store: createMemoryStore(() => NOW), done: () => Promise.resolve() })],
  ['pglite', async () => { const store = createPgliteStore({ now: () => NOW }); await store.migrate(); return { store, done: () => store.close() }; }],
  ['pg', async () => {
    const schema = `agentry_budget_${randomBytes(5).toString('hex')}`;
    const store = createPgStore({ connectionString: PG_URL, schema, now: () => NOW });
    await store.migrate();
    return {
      store,
      done: async () => {
        await store.close();
        const c = new pg.Client({ connectionString: PG_URL });
        await c.connect();
        try { await c.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`); } finally { await c.end(); }
      },
    };
  }],
];

describe.each(backends)('budget ledger on %s', (_name, make) => {
  let store: Store;
  let done: () => Promise<void>;
  beforeAll(async () => { ({ store, done } = await make()); });
  afterAll(async () => { await done?.(); });

  it('reserves under a limit, refuses over it without writing, reuses an id, settles by replacing', async () => {
    const checks = [tenantCheck('t1', '100'), tenantCheck('t1', '0.3', 'cost')];
    expect((await store.reserveBudget({ entry: entry('s1:1:0', 's1', 't1', { tokens: 60, cost: '0.1' }), checks, now: NOW })).kind).toBe('reserved');
    const over = await store.reserveBudget({ entry: entry('s2:1:0', 's2', 't1', { tokens: 50, cost: '0.1' }), checks, now: NOW });
    expect(over).toMatchObject({ kind: 'exceeded', breaches: [{ scope: 'tenant', key: 't1', used: '60', requested: '50', limit: { metric: 'tokens', max: '100' } }] });
    // The same id again (a re-run turn): reused, not checked, not counted twice.
    expect((await store.reserveBudget({ entry: entry('s1:1:0', 's1', 't1', { tokens: 60, cost: '0.1' }), checks, now: NOW })).kind).toBe('reused');
    expect(await store.settleBudget('s1:1:0', { tokensIn: 10, tokensOut: 20, cost: '0.1' }, NOW)).toBe(true);
    expect(await store.settleBudget('s1:1:0', { tokensIn: 15, tokensOut: 20, cost: '0.1' }, NOW)).toBe(true); // replaces
    expect(await store.settleBudget('nope', { tokensIn: 1 }, NOW)).toBe(false);
    expect((await store.reserveBudget({ entry: entry('s2:2:0', 's2', 't1', { tokens: 50, cost: '0.2' }), checks, now: NOW })).kind).toBe('reserved');
    const [u] = await store.budgetUsage('tenant', 't1', [0]);
    expect(u!.totals).toMatchObject({ tokens: '85', tokensIn: '15', tokensOut: '20', cost: '0.3' }); // 0.1 + 0.2 exactly
    expect(u!.open).toBe(1);
    // Exactly at the cost limit: one more 0.000000000001 does not fit.
    expect((await store.reserveBudget({ entry: entry('s2:3:0', 's2', 't1', { cost: '0.000000000001' }), checks, now: NOW })).kind).toBe('exceeded');
  });

  it('counts a window by time: a rolling window forgets what is older, lifetime does not', async () => {
    await store.recordBudget([{ ...entry('w:old', 'sw', 'tw', { tokensIn: 100 }, NOW - 3 * HOUR), state: 'settled' }]);
    const rolling = tenantCheck('tw', '150', 'tokens', '2h');
    expect((await store.reserveBudget({ entry: entry('w:new', 'sw', 'tw', { tokens: 120 }), checks: [rolling], now: NOW })).kind).toBe('reserved');
    expect((await store.reserveBudget({ entry: entry('w:new2', 'sw', 'tw', { tokens: 120 }), checks: [tenantCheck('tw', '150')], now: NOW })).kind).toBe('exceeded');
    const usage = await store.budgetUsage('session', 'sw', [0, NOW - 2 * HOUR]);
    expect(Object.fromEntries(usage.map((x) => [x.windowStart, x.totals.tokens]))).toEqual({ 0: '220', [NOW - 2 * HOUR]: '120' });
  });

  it('lets exactly as many concurrent reservations of one tenant through as fit', async () => {
    const checks = [tenantCheck('tc', '50')];
    const outcomes = await Promise.all(Array.from({ length: 10 }, (_, i) =>
      store.reserveBudget({ entry: entry(`c${i}:1:0`, `c${i}`, 'tc', { tokens: 10 }), checks: [{ scope: 'session', key: `c${i}`, limits: [] }, ...checks], now: NOW })));
    expect(outcomes.filter((o) => o.kind === 'reserved')).toHaveLength(5);
    expect((await store.budgetUsage('tenant', 'tc', [0]))[0]!.totals.tokens).toBe('50');
  });

  it('stores limits by scope and marks a warning once', async () => {
    await store.setBudgetLimits('tenant', 'lim', [{ metric: 'cost', max: '1.5', window: 'day', policy: 'warn' }], NOW);
    expect((await store.listBudgetLimits()).find((l) => l.key === 'lim')).toMatchObject({ scope: 'tenant', limits: [{ metric: 'cost', max: '1.5' }] });
    await store.setBudgetLimits('tenant', 'lim', null, NOW);
    expect((await store.listBudgetLimits()).find((l) => l.key === 'lim')).toBeUndefined();
    expect(await store.markBudgetWarning('k1', NOW)).toBe(true);
    expect(await store.markBudgetWarning('k1', NOW)).toBe(false);
  });
  it('folds closed rows older than a horizon into one lifetime row per session: every window reads the same, twice is a no-op', async () => {
    const DAY = 24 * HOUR;
    const old = NOW - 10 * DAY;
    const rows: BudgetEntry[] = [
      { id: 'f1:1:0', sessionId: 'f1', tenant: 'tf', at: old, state: 'settled', amounts: { tokensIn: 7, tokensOut: 3, cost: '0.125' } },
      { id: 'f1:2:0', sessionId: 'f1', tenant: 'tf', at: old + 1, state: 'metered', amounts: { turns: 1, wallMs: 40 } },
      { id: 'f1:3:0', sessionId: 'f1', tenant: 'tf', at: old + 2, state: 'settled', amounts: { tokensIn: 1, cost: '0.000000000001', toolCalls: 2 } },
      { id: 'f2:1:0', sessionId: 'f2', tenant: 'tf', at: old, state: 'settled', amounts: { tokensOut: 5, cost: '1' } },
      { id: 'f1:9:0', sessionId: 'f1', tenant: 'tf', at: NOW - HOUR, state: 'settled', amounts: { tokensIn: 100, cost: '2' } }, // recent: kept
    ];
    await store.recordBudget(rows);
    // An old reservation still open is never folded (its settle may come).
    expect((await store.reserveBudget({ entry: entry('f1:4:0', 'f1', 'tf', { tokens: 11 }, old + 3), checks: [], now: NOW })).kind).toBe('reserved');
    const starts = [0, NOW - 2 * HOUR, Date.UTC(2026, 10, 28)];
    const before = { s1: await store.budgetUsage('session', 'f1', starts), s2: await store.budgetUsage('session', 'f2', starts), t: await store.budgetUsage('tenant', 'tf', starts) };
    expect(before.s1.find((u) => u.windowStart === 0)!.totals).toMatchObject({ tokens: '122', tokensIn: '108', tokensOut: '3', cost: '2.125000000001', toolCalls: '2', turns: '1', wallMs: '40' });

    expect(await store.compactBudgetLedger(NOW - 8 * DAY, 2)).toBe(2); // a batch at a time, oldest first
    expect(await store.compactBudgetLedger(NOW - 8 * DAY, 1000)).toBe(2);
    expect(await store.compactBudgetLedger(NOW - 8 * DAY, 1000)).toBe(0);
    const after = { s1: await store.budgetUsage('session', 'f1', starts), s2: await store.budgetUsage('session', 'f2', starts), t: await store.budgetUsage('tenant', 'tf', starts) };
    expect(after).toEqual(before);
    // The open reservation is still there to settle; settling it changes the sums as before.
    expect(await store.settleBudget('f1:4:0', { tokensIn: 4 }, NOW)).toBe(true);
    expect((await store.budgetUsage('session', 'f1', [0]))[0]!.totals).toMatchObject({ tokens: '115', tokensIn: '112' });
  });
  it('two nodes folding at once skip each other\'s rows: each row folded once, sums unchanged', async () => {
    const old = NOW - 30 * 24 * HOUR;
    while (await store.compactBudgetLedger(NOW - 8 * 24 * HOUR, 1000) > 0); // what earlier tests left: only this test's rows count below
    await store.recordBudget(Array.from({ length: 300 }, (_, k) => ({ id: `g${k % 3}:${k}:0`, sessionId: `g${k % 3}`, tenant: 'tg', at: old + k, state: 'metered' as const, amounts: { turns: 1, wallMs: k, cost: '0.01' } })));
    const before = await store.budgetUsage('tenant', 'tg', [0]);
    const folded = await Promise.all([store.compactBudgetLedger(NOW - 8 * 24 * HOUR, 120), store.compactBudgetLedger(NOW - 8 * 24 * HOUR, 120), store.compactBudgetLedger(NOW - 8 * 24 * HOUR, 120)]);
    let rest = 0;
    for (let n = -1; n !== 0;) { n = await store.compactBudgetLedger(NOW - 8 * 24 * HOUR, 120); rest += n; }
    expect(folded.reduce((a, b) => a + b, 0) + rest).toBe(300);
    expect(await store.budgetUsage('tenant', 'tg', [0])).toEqual(before);
    expect(before[0]!.totals).toMatchObject({ turns: '300', wallMs: String((299 * 300) / 2) });
    expect(Number(before[0]!.totals.cost)).toBe(3);
  });
});
