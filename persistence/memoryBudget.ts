/**
 * Owns the memory store's budget ledger: the same contract as budgetQueries.ts over arrays.
 * Nothing survives a restart (the memory store serves ephemeral runs only).
 */
import {
  BUDGET_METRICS, amountOf, breachesOf, decidingBreach, formatDecimal, windowStartsOf,
  type BudgetAmounts, type BudgetBreach, type BudgetEntry, type BudgetHeldSession, type BudgetLimitSpec, type BudgetMetric, type BudgetScope, type BudgetUsage,
} from './budget.js';
import type { SessionRecord, Store } from './types.js';

type BudgetMethods = Pick<Store, 'reserveBudget' | 'settleBudget' | 'recordBudget' | 'budgetUsage' | 'listBudgetLimits' | 'setBudgetLimits' | 'markBudgetWarning' | 'budgetHeldSessions' | 'compactBudgetLedger' | 'tenantSpend'>;

/** The tenant a stored snapshot names (context.tenant), or null. */
export function tenantOfSnapshot(snapshot: unknown): string | null {
  const t = (snapshot as { context?: { tenant?: unknown } } | null)?.context?.tenant;
  return typeof t === 'string' ? t : null;
}

/** The tags a stored snapshot names (context.tags), or none. */
export function tagsOfSnapshot(snapshot: unknown): string[] {
  const t = (snapshot as { context?: { tags?: unknown } } | null)?.context?.tags;
  return Array.isArray(t) ? t.filter((x): x is string => typeof x === 'string') : [];
}

/** The budget methods of the memory store, over its sessions (for tenants and held sessions). */
export function createMemoryBudget(sessions: ReadonlyMap<string, SessionRecord>, tenants: ReadonlyMap<string, string>): BudgetMethods {
  const ledger = new Map<string, BudgetEntry>();
  const limits = new Map<string, { scope: BudgetScope; key: string; limits: BudgetLimitSpec[]; updatedAt: number }>();
  const warnings = new Set<string>();
  const sum = (rows: BudgetEntry[]): Record<BudgetMetric, string> =>
    Object.fromEntries(BUDGET_METRICS.map((m) => [m, formatDecimal(rows.reduce((a, e) => a + amountOf(e.amounts, m), 0n))])) as Record<BudgetMetric, string>;
  const usage = (scope: 'session' | 'tenant', key: string, starts: readonly number[]): BudgetUsage[] => {
    const mine = [...ledger.values()].filter((e) => (scope === 'session' ? e.sessionId === key : e.tenant === key));
    return starts.map((start) => {
      const rows = mine.filter((e) => e.at >= start);
      return { windowStart: start, totals: sum(rows), open: rows.filter((e) => e.state === 'reserved').length };
    });
  };
  return {
    reserveBudget(r) {
      if (ledger.has(r.entry.id)) return Promise.resolve({ kind: 'reused', warnings: [] });
      const found: BudgetBreach[] = [];
      for (const c of r.checks) if (c.limits.length > 0) found.push(...breachesOf(c, usage(c.scope, c.key, windowStartsOf(c.limits, r.now)), r.entry.amounts, r.now));
      const warns = found.filter((b) => b.limit.policy === 'warn');
      if (decidingBreach(found)) return Promise.resolve({ kind: 'exceeded', breaches: found.filter((b) => b.limit.policy !== 'warn'), warnings: warns });
      ledger.set(r.entry.id, r.entry);
      return Promise.resolve({ kind: 'reserved', warnings: warns });
    },
    settleBudget(id, actual: BudgetAmounts) {
      const e = ledger.get(id);
      if (!e || e.state === 'metered') return Promise.resolve(false);
      ledger.set(id, { ...e, state: 'settled', amounts: { ...actual, wallMs: e.amounts.wallMs, turns: e.amounts.turns } });
      return Promise.resolve(true);
    },
    recordBudget(entries) {
      for (const e of entries) ledger.set(e.id, e);
      return Promise.resolve();
    },
    budgetUsage: (scope, key, starts) => Promise.resolve(usage(scope, key, starts)),
    listBudgetLimits: () => Promise.resolve([...limits.values()].map((l) => ({ ...l, limits: [...l.limits] }))),
    setBudgetLimits(scope, key, l, at) {
      if (l === null) limits.delete(`${scope}\u0000${key}`);
      else limits.set(`${scope}\u0000${key}`, { scope, key, limits: [...l], updatedAt: at });
      return Promise.resolve();
    },
    markBudgetWarning(key) {
      if (warnings.has(key)) return Promise.resolve(false);
      warnings.add(key);
      return Promise.resolve(true);
    },
    compactBudgetLedger(before, max) {
      const picked = [...ledger.values()].filter((e) => e.state !== 'reserved' && e.at > 0 && e.at < before).sort((a, b) => a.at - b.at).slice(0, max);
      for (const e of picked) {
        ledger.delete(e.id);
        const id = `.rollup:${e.sessionId}`;
        const r = ledger.get(id)?.amounts ?? {};
        const a = e.amounts;
        const n = (k: 'tokens' | 'tokensIn' | 'tokensOut' | 'toolCalls' | 'wallMs' | 'turns'): number => (r[k] ?? 0) + (a[k] ?? 0);
        ledger.set(id, {
          id, sessionId: e.sessionId, tenant: ledger.get(id)?.tenant ?? e.tenant, at: 0, state: 'settled',
          amounts: {
            tokens: n('tokens'), tokensIn: n('tokensIn'), tokensOut: n('tokensOut'), cost: formatDecimal(amountOf(r, 'cost') + amountOf(a, 'cost')),
            toolCalls: n('toolCalls'), wallMs: n('wallMs'), turns: n('turns'),
          },
        });
      }
      return Promise.resolve(picked.length);
    },
    budgetHeldSessions(f) {
      const out: BudgetHeldSession[] = [];
      for (const s of [...sessions.values()].sort((a, b) => (a.id < b.id ? -1 : 1))) {
        const ctx = (s.snapshot as { context?: { wake?: { budget?: unknown }; wait?: { waitpoint?: { id?: string } } } }).context;
        const wp = ctx?.wait?.waitpoint?.id ?? null;
        const held = (s.status === 'sleeping' && ctx?.wake?.budget !== undefined && ctx.wake.budget !== null) || (s.status === 'waiting' && wp?.startsWith('budget-') === true);
        if (!held) continue;
        if (f.sessionId !== undefined && s.id !== f.sessionId) continue;
        if (f.tenant !== undefined && tenants.get(s.id) !== f.tenant) continue;
        if (f.type !== undefined && s.type !== f.type) continue;
        out.push({ id: s.id, status: s.status, waitpointId: s.status === 'waiting' ? wp : null });
      }
      return Promise.resolve(out);
    },
    tenantSpend(since, limit) {
      const by = new Map<string, BudgetEntry[]>();
      for (const e of ledger.values()) if (e.tenant !== null && e.at >= since) by.set(e.tenant, [...(by.get(e.tenant) ?? []), e]);
      const rows = [...by].map(([tenant, es]) => ({ tenant, totals: sum(es) }));
      rows.sort((a, b) => Number(amountOf({ cost: b.totals.cost }, 'cost') - amountOf({ cost: a.totals.cost }, 'cost')));
      return Promise.resolve(rows.slice(0, limit));
    },
  };
}
