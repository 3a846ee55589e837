/**
 * Owns the tenant and budget series of /metrics. The `tenant` label is bounded by
 * AGENTRY_METRICS_TENANTS: `off` (every series reports one `tenant="all"`), `all` (every tenant
 * seen), or `top-<N>` (default top-20): the N tenants that spent most over the last day keep their
 * name (then the first others seen, up to N), every other one is summed into `tenant="other"`;
 * sessions without a tenant are `none`.
 * Spend is read from the store every refresh (never per scrape).
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { BudgetMetric } from '../../persistence/budget.js';
import { BUDGET_METRICS, decimalOf } from '../../persistence/budget.js';
import type { Runtime } from '../runtime.js';

/** Registers the series; returns the refresh to run with the others. */
export function registerTenantMetrics(runtime: Runtime, registry: Registry): () => Promise<void> {
  const registers = [registry];
  const mode = runtime.config.metricsTenants;
  const top = mode.startsWith('top-') ? Number(mode.slice(4)) : mode === 'all' ? 1000 : 0;
  let spend: { tenant: string; totals: Record<BudgetMetric, string> }[] = [];
  let named = new Set<string>();
  /** The label a tenant is reported under: its name while fewer than N are named (the top spenders first), else other. */
  const label = (t: string | null): string => {
    if (mode === 'off') return 'all';
    if (t === null || t === '') return 'none';
    if (mode === 'all' || named.has(t)) return t;
    if (named.size < top) { named.add(t); return t; }
    return 'other';
  };

  const sumBy = (entries: Iterable<[string, number]>): Map<string, number> => {
    const out = new Map<string, number>();
    for (const [t, n] of entries) { const l = label(t); out.set(l, (out.get(l) ?? 0) + n); }
    return out;
  };

  new Gauge({
    name: 'agentry_tenant_spend_24h', help: 'Budget ledger totals per tenant over the last 24 hours (cost in the user\'s unit); tenants beyond AGENTRY_METRICS_TENANTS are summed as other',
    labelNames: ['tenant', 'metric'], registers,
    collect() {
      this.reset();
      const agg = new Map<string, Record<string, bigint>>();
      for (const r of spend) {
        const l = label(r.tenant);
        const cur = agg.get(l) ?? {};
        for (const m of BUDGET_METRICS) cur[m] = (cur[m] ?? 0n) + decimalOf(r.totals[m]);
        agg.set(l, cur);
      }
      // Prometheus values are floats: exact decimals stay in the ledger and the API.
      for (const [t, v] of agg) for (const [m, x] of Object.entries(v)) this.set({ tenant: t, metric: m }, Number(x) / 1e12);
    },
  });
  new Gauge({
    name: 'agentry_tenant_sessions_running', help: 'Sessions running handlers on this node, per tenant', labelNames: ['tenant'], registers,
    collect() { this.reset(); for (const [t, n] of sumBy(runtime.host.tenantLoad().active)) this.set({ tenant: t }, n); },
  });
  new Gauge({
    name: 'agentry_tenant_sessions_queued', help: 'Sessions and wakes waiting for an active slot on this node, per tenant (fair share)', labelNames: ['tenant'], registers,
    collect() { this.reset(); for (const [t, n] of sumBy(runtime.host.tenantLoad().queued)) this.set({ tenant: t }, n); },
  });
  new Counter({
    name: 'agentry_budget_breaches_total', help: 'Budget limits broken on this node, per tenant and policy (warn, ask, pause, abort)', labelNames: ['tenant', 'policy'], registers,
    collect() {
      this.reset();
      const agg = new Map<string, number>();
      for (const [k, n] of runtime.budgets.stats.breaches) {
        const [t, policy] = k.split('\u0000') as [string, string];
        const key = `${label(t)}\u0000${policy}`;
        agg.set(key, (agg.get(key) ?? 0) + n);
      }
      for (const [k, n] of agg) { const [tenant, policy] = k.split('\u0000') as [string, string]; this.inc({ tenant, policy }, n); }
    },
  });
  new Counter({
    name: 'agentry_budget_reservations_total', help: 'ctx.budget reservations on this node: new, or reused by a re-run turn', labelNames: ['kind'], registers,
    collect() { this.reset(); this.inc({ kind: 'new' }, runtime.budgets.stats.reservations); this.inc({ kind: 'reused' }, runtime.budgets.stats.reused); },
  });
  new Counter({ name: 'agentry_budget_warnings_total', help: 'budget.warning events published by this node', registers, collect() { this.reset(); this.inc(runtime.budgets.stats.warnings); } });
  new Counter({
    name: 'agentry_tenant_rate_limited_total', help: 'Messages refused by the per-tenant rate limit (AGENTRY_TENANT_RATE)', labelNames: ['tenant'], registers,
    collect() { this.reset(); const l = runtime.tenantRate; if (l) for (const [t, n] of sumBy(l.refused)) this.inc({ tenant: t }, n); },
  });
  new Counter({
    name: 'agentry_tenant_rate_deferred_total', help: 'Inbox messages this node deferred because their tenant was over AGENTRY_TENANT_RATE (held unacked, applied later in order; never dropped)', labelNames: ['tenant'], registers,
    collect() { this.reset(); const l = runtime.tenantRate; if (l) for (const [t, n] of sumBy(l.deferred)) this.inc({ tenant: t }, n); },
  });
  new Gauge({
    name: 'agentry_tenant_messages_deferred', help: 'Inbox messages deferred now on this node by their tenant\'s rate, waiting for a token', labelNames: ['tenant'], registers,
    collect() { this.reset(); for (const [t, n] of sumBy(runtime.host.tenantDeferred())) this.set({ tenant: t }, n); },
  });

  return async () => {
    if (mode === 'off') return;
    try {
      spend = await runtime.store.tenantSpend(Date.now() - 86_400_000, Math.max(1, Math.min(1000, top)));
      named = new Set(spend.slice(0, top).map((r) => r.tenant));
    } catch { /* keep the last values */ }
  };
}
