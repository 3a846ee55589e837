/**
 * Owns the budget operations of the control API (setBudget, getBudget): which scope a request
 * names (an agent type, a session or a tenant), reading its limits and usage, and resuming the
 * sessions a raised or removed limit held (a paused one is woken, an asking one's waitpoint is
 * completed with `continue`; each turn checks its limits again before it runs, so a limit that
 * still breaks holds it again).
 */
import { AgentryError } from '../actors/errors.js';
import { assertSessionId } from '../actors/sessionId.js';
import type { BudgetLimitSpec, BudgetScope, BudgetUsage } from '../persistence/budget.js';
import { decimalOf, windowStart } from '../persistence/budget.js';
import type { Store } from '../persistence/types.js';
import type { Budgets } from './budgets.js';
import type { Logger } from './logger.js';
import type { SessionView } from './host/sessionHost.js';
import { isTenant } from './host/sessionHost.js';
import type { Waitpoints } from './waitpoints.js';

/** Names one scope: exactly one of a session, a tenant or an agent type. */
export interface BudgetRef {
  readonly agentId?: string;
  readonly tenant?: string;
  readonly agentType?: string;
}

/** A limit with where it applies and where it was set (`definition`: defineAgent, `api`: setBudget). */
export interface BudgetLimitView extends BudgetLimitSpec {
  readonly scope: BudgetScope;
  readonly key: string;
  readonly source: 'definition' | 'api';
  /** Usage in the limit's current window (for session and tenant reads), a decimal string. */
  readonly used?: string;
  readonly exceeded?: boolean;
}

/** What getBudget returns. */
export interface BudgetReport {
  readonly scope: BudgetScope;
  readonly key: string;
  readonly tenant?: string | null;
  readonly limits: readonly BudgetLimitView[];
  /** Usage per window (lifetime first), every metric as a decimal string; open = unsettled reservations. */
  readonly usage: readonly { readonly window: string; readonly windowStart: number; readonly totals: Record<string, string>; readonly open: number }[];
  /** The limit holding the session (pause or ask), null when none (session reads only). */
  readonly held?: Record<string, unknown> | null;
}

export interface BudgetApiDeps {
  readonly budgets: Budgets;
  readonly store: Store;
  readonly waitpoints: Waitpoints;
  readonly logger: Logger;
  readonly getAgent: (agentId: string) => Promise<SessionView>;
  /** Wakes a session a budget paused (routed to its owner). */
  readonly resume: (agentId: string) => Promise<unknown>;
  readonly now: () => number;
  /**
   * How long after a setBudget every node's limit cache has the new limits (their refresh, plus a
   * margin): the sessions its scope holds are looked up and resumed once more then, since a turn
   * on a node with the old limits, or a pause not committed yet, may have held one after the first
   * pass. Default 3 s.
   */
  readonly settleMs?: number;
  /** How long past `settleMs` a `setBudget { wait: true }` waits for its second pass (default 10 s). */
  readonly secondPassDeadlineMs?: number;
}

/** Resolves a ref to its scope and key; INVALID_ARGUMENT unless exactly one is given and valid. */
export function scopeOf(ref: BudgetRef): { scope: BudgetScope; key: string } {
  const given = [ref.agentId, ref.tenant, ref.agentType].filter((x) => x !== undefined);
  if (given.length !== 1) throw new AgentryError('INVALID_ARGUMENT', 'name exactly one of agentId, tenant or agentType');
  if (ref.agentId !== undefined) { assertSessionId(ref.agentId); return { scope: 'session', key: ref.agentId }; }
  if (ref.tenant !== undefined) {
    if (!isTenant(ref.tenant)) throw new AgentryError('INVALID_ARGUMENT', 'tenant must be 1-64 characters of [A-Za-z0-9_-]');
    return { scope: 'tenant', key: ref.tenant };
  }
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(ref.agentType!)) throw new AgentryError('INVALID_ARGUMENT', 'agentType must be 1-64 characters of [A-Za-z0-9_-]');
  return { scope: 'type', key: ref.agentType! };
}

/** What setBudget answers (see `setBudget` in `createBudgetApi`). */
export interface SetBudgetResult {
  readonly scope: BudgetScope;
  readonly key: string;
  readonly limits: BudgetLimitSpec[] | null;
  /** Held sessions the first pass resumed (at once). */
  readonly resumed: number;
  /** When the second pass looks for held sessions again (epoch ms). */
  readonly secondPassAt: number;
  /** Held sessions the second pass resumed; only with `wait`, and only when it finished in time. */
  readonly resumedLater?: number;
}

/** The budget methods over a runtime's parts. */
export function createBudgetApi(d: BudgetApiDeps) {
  const windowName = (start: number, limits: readonly BudgetLimitSpec[], now: number): string =>
    start === 0 ? 'lifetime' : limits.find((l) => windowStart(l.window, now) === start)?.window ?? String(start);

  const withUsage = (limits: BudgetLimitView[], usage: readonly BudgetUsage[], now: number): BudgetLimitView[] => limits.map((l) => {
    const u = usage.find((x) => x.windowStart === windowStart(l.window, now));
    const used = u?.totals[l.metric] ?? '0';
    return { ...l, used, exceeded: decimalOf(used) > decimalOf(l.max) };
  });

  /**
   * Sets (or, with null, removes) a scope's limits, then resumes the sessions it held: at once
   * (`resumed` counts them) and once more at `secondPassAt` (`settleMs` later: see there), which
   * catches sessions held meanwhile by a node with the old limits. The first pass's count is all
   * a caller learns unless it asks to `wait`: then the call also waits for the second pass (up to
   * `settleMs` + `secondPassDeadlineMs`) and `resumedLater` counts what that pass resumed
   * (absent when it did not finish in time: it still runs, and the sessions re-check by themselves).
   */
  async function setBudget(ref: BudgetRef, limits: unknown, opts: { wait?: boolean } = {}): Promise<SetBudgetResult> {
    const { scope, key } = scopeOf(ref);
    let norm: BudgetLimitSpec[] | null;
    try {
      norm = await d.budgets.setLimits(scope, key, limits);
    } catch (e) {
      if (e instanceof TypeError) throw new AgentryError('INVALID_ARGUMENT', e.message);
      throw e;
    }
    const resumeHeld = async (): Promise<number> => {
      const held = await d.store.budgetHeldSessions(scope === 'session' ? { sessionId: key } : scope === 'tenant' ? { tenant: key } : { type: key });
      let n = 0;
      for (const h of held) {
        try {
          if (h.status === 'sleeping') await d.resume(h.id);
          else if (h.waitpointId) await d.waitpoints.complete(h.waitpointId, { action: 'continue' });
          n++;
        } catch (err) {
          d.logger.warn({ err, sessionId: h.id }, 'could not resume a session held by its budget (setBudget again, or wakeAgent)');
        }
      }
      return n;
    };
    const resumed = await resumeHeld();
    // Once more when every node's limit cache has the new limits (see `settleMs`).
    const settleMs = d.settleMs ?? 3_000;
    const secondPassAt = d.now() + settleMs;
    const secondPass = new Promise<number | null>((resolve) => {
      const again = setTimeout(() => {
        void resumeHeld().then((n) => {
          if (n > 0) d.logger.info({ scope, key, resumed: n }, 'setBudget: sessions held after its first pass (stale limits, or a pause committing) resumed');
          resolve(n);
        }, (err: unknown) => {
          d.logger.warn({ err, scope, key }, 'setBudget: the second pass could not look up held sessions; they re-check their limits by themselves');
          resolve(null);
        });
      }, settleMs);
      again.unref();
    });
    const result = { scope, key, limits: norm, resumed, secondPassAt };
    if (!opts.wait) return result;
    let timer: NodeJS.Timeout | undefined;
    const later = await Promise.race([secondPass, new Promise<null>((r) => { timer = setTimeout(() => { r(null); }, settleMs + (d.secondPassDeadlineMs ?? 10_000)); })]);
    clearTimeout(timer);
    return later === null ? result : { ...result, resumedLater: later };
  }

  /** A scope's limits and usage; for a session, every limit that applies to it (type, session, tenant). */
  async function getBudget(ref: BudgetRef): Promise<BudgetReport> {
    const { scope, key } = scopeOf(ref);
    const now = d.now();
    const view = (s: BudgetScope, k: string): BudgetLimitView[] => {
      const l = d.budgets.limitsOf(s, k);
      return l.source === 'none' ? [] : l.limits.map((x) => ({ ...x, scope: s, key: k, source: l.source as 'definition' | 'api' }));
    };
    const usageView = (usage: readonly BudgetUsage[], limits: readonly BudgetLimitSpec[]) =>
      [...usage].sort((a, b) => a.windowStart - b.windowStart).map((u) => ({ window: windowName(u.windowStart, limits, now), windowStart: u.windowStart, totals: { ...u.totals }, open: u.open }));
    if (scope === 'type') return { scope, key, limits: view('type', key), usage: [] };
    if (scope === 'tenant') {
      const limits = view('tenant', key);
      const usage = await d.budgets.usage('tenant', key, limits);
      return { scope, key, tenant: key, limits: withUsage(limits, usage, now), usage: usageView(usage, limits) };
    }
    const v = await d.getAgent(key);
    const own = [...view('type', v.type), ...view('session', key)];
    const usage = await d.budgets.usage('session', key, own);
    const tenantLimits = v.tenant !== null ? view('tenant', v.tenant) : [];
    const tenantUsage = v.tenant !== null && tenantLimits.length > 0 ? await d.budgets.usage('tenant', v.tenant, tenantLimits) : [];
    const held = v.state === 'sleeping' && v.wake?.budget ? { ...v.wake.budget } : v.state === 'waiting' && v.wait?.waitpoint?.id.startsWith('budget-') ? { policy: 'ask', waitpointId: v.wait.waitpoint.id } : null;
    return {
      scope, key, tenant: v.tenant,
      limits: [...withUsage(own, usage, now), ...withUsage(tenantLimits, tenantUsage, now)],
      usage: usageView(usage, own), held,
    };
  }

  return { setBudget, getBudget };
}

