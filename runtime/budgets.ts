/**
 * Owns budgets at run time: which limits apply to a session (its agent type's, its own, its
 * tenant's), `ctx.budget` (reserve, settle, record) over the store's durable ledger, the turns
 * and handler wall-clock the runtime meters itself, the check before each turn, `warn`
 * events, and limits changed at run time (setBudget), which resume the sessions they held.
 *
 * The durability rule (docs/budgets.md): a reservation's id is the session, the turn's first
 * message and the call's index in the turn, so a turn that runs again (a crash before its commit,
 * a retry, a merge) finds the reservations its earlier run made instead of reserving twice;
 * settling replaces a reservation's amount (never adds to it). A reservation whose settle was lost
 * counts at its reserved amount: never less than what was declared, and never twice.
 *
 * Faults: the limit cache re-reads the store every `refreshMs` (another node's setBudget shows
 * within that); a store outage makes `reserve` fail (the handler's error: its turn retries), the
 * metering of turns is retried at the next flush; a lost warning publish is not repeated (its
 * row is written first: at most once per window).
 */
import { BudgetExceededError } from '../actors/errors.js';
import type { BudgetAmount, BudgetReservation, HandlerBudget, ResolvedAgent } from '../actors/defineAgent.js';
import type { BudgetHold, InboxMessage } from '../actors/types.js';
import {
  decidingBreach, normalizeAmounts, normalizeLimits, warningBucket, windowStartsOf,
  type BudgetBreach, type BudgetCheck, type BudgetEntry, type BudgetLimitSpec, type BudgetScope, type BudgetUsage,
} from '../persistence/budget.js';
import type { Store } from '../persistence/types.js';
import type { Logger } from './logger.js';

/** Event type of a `warn` breach (subject `agentry.events.budget.warning`). */
export const BUDGET_WARNING_EVENT = 'budget.warning';

/** What a session is, for budgets. */
export interface BudgetSubject {
  readonly sessionId: string;
  readonly type: string;
  readonly tenant: string | null;
}

/** Counters for /metrics (labels: tenant, policy). */
export interface BudgetStats {
  reservations: number;
  reused: number;
  readonly breaches: Map<string, number>;
  warnings: number;
}

export interface BudgetsDeps {
  readonly store: Store;
  readonly agents: ReadonlyMap<string, ResolvedAgent>;
  readonly logger: Logger;
  readonly now: () => number;
  /** Publishes a warning event (JetStream, de-duplicated by `msgId`). */
  readonly publishWarning: (data: unknown, msgId: string) => Promise<void>;
  readonly refreshMs?: number;
  /**
   * Closed ledger rows older than this are folded into one lifetime row per session
   * (`Store.compactBudgetLedger`); never less than the longest rolling window in use plus a day,
   * so every window but lifetime still reads its own rows. 0: never (AGENTRY_BUDGET_LEDGER_KEEP_MS).
   */
  readonly ledgerKeepMs?: number;
  /** How often a node folds old ledger rows (default 10 min; nodes folding at once skip each other's rows). */
  readonly compactEveryMs?: number;
}

/** Rows folded per statement, and statements per compaction round (the rest waits for the next round). */
const COMPACT_BATCH = 5_000;
const COMPACT_ROUNDS = 20;

/** One limit with where it came from. */
type Sourced = BudgetLimitSpec & { readonly from: BudgetScope };

/** The run-time budget service of one node. */
export class Budgets {
  private stored = new Map<string, BudgetLimitSpec[]>();
  private typeLimits = new Map<string, BudgetLimitSpec[]>();
  private timer: NodeJS.Timeout | undefined;
  private loaded: Promise<void> | null = null;
  private meterQueue: BudgetEntry[] = [];
  private flushing: Promise<void> | null = null;
  private compactTimer: NodeJS.Timeout | undefined;
  private compacting: Promise<number> | null = null;
  /** Ledger rows folded by this node (metrics, tests). */
  compacted = 0;
  readonly stats: BudgetStats = { reservations: 0, reused: 0, breaches: new Map(), warnings: 0 };

  constructor(private readonly deps: BudgetsDeps) {
    this.agentsReplaced();
  }

  /** Validates the agent types' limits (a typo fails at start-up) and keeps them. */
  agentsReplaced(): void {
    const next = new Map<string, BudgetLimitSpec[]>();
    for (const [type, a] of this.deps.agents) if (a.budget) next.set(type, normalizeLimits(a.budget.limits, `agent ${type}: budget.limits`));
    this.typeLimits = next;
  }

  /** Loads the stored limits and re-reads them periodically. */
  async start(): Promise<void> {
    await this.refresh();
    this.timer = setInterval(() => { void this.refresh().catch(() => undefined); this.flush(); }, this.deps.refreshMs ?? 2000);
    this.timer.unref();
    if ((this.deps.ledgerKeepMs ?? 0) > 0) {
      this.compactTimer = setInterval(() => { void this.compact(); }, this.deps.compactEveryMs ?? 600_000);
      this.compactTimer.unref();
    }
  }

  /**
   * How far back the ledger keeps single rows: `ledgerKeepMs`, or the longest rolling window of any
   * limit known now (stored or defined) plus a day, whichever is longer.
   */
  ledgerHorizonMs(): number {
    let longest = 0;
    for (const limits of [...this.stored.values(), ...this.typeLimits.values()]) {
      for (const l of limits) if (l.window !== 'lifetime' && l.window !== 'day') longest = Math.max(longest, Number(l.window.slice(0, -1)) * 3_600_000);
    }
    return Math.max(this.deps.ledgerKeepMs ?? 0, longest + 86_400_000);
  }

  /** Folds closed ledger rows older than the horizon (see `ledgerKeepMs`); resolves with how many. A failure is logged and retried next round. */
  compact(): Promise<number> {
    this.compacting ??= (async () => {
      const before = this.deps.now() - this.ledgerHorizonMs();
      let total = 0;
      try {
        for (let round = 0; round < COMPACT_ROUNDS; round++) {
          const n = await this.deps.store.compactBudgetLedger(before, COMPACT_BATCH);
          total += n;
          if (n < COMPACT_BATCH) break;
        }
      } catch (err) {
        this.deps.logger.warn({ err }, 'could not fold old budget ledger rows; retried at the next round');
      }
      this.compacted += total;
      if (total > 0) this.deps.logger.info({ rows: total, before }, 'budget ledger: old rows folded into lifetime rows');
      return total;
    })().finally(() => { this.compacting = null; });
    return this.compacting;
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    if (this.compactTimer) clearInterval(this.compactTimer);
    await this.compacting;
    this.flush();
    await this.flushing;
  }

  private refresh(): Promise<void> {
    this.loaded ??= this.deps.store.listBudgetLimits().then((rows) => {
      this.stored = new Map(rows.map((r) => [`${r.scope}:${r.key}`, r.limits]));
    }).finally(() => { this.loaded = null; });
    return this.loaded;
  }

  /** The limits of one scope: stored ones (setBudget), else for a type its definition's. */
  limitsOf(scope: BudgetScope, key: string): { limits: BudgetLimitSpec[]; source: 'api' | 'definition' | 'none' } {
    const s = this.stored.get(`${scope}:${key}`);
    if (s) return { limits: s, source: 'api' };
    const d = scope === 'type' ? this.typeLimits.get(key) : undefined;
    return d ? { limits: d, source: 'definition' } : { limits: [], source: 'none' };
  }

  /** The checks a session's spend goes through: type and session limits on its own usage, tenant limits on its tenant's. */
  checksOf(s: BudgetSubject): BudgetCheck[] {
    const own: Sourced[] = [
      ...this.limitsOf('type', s.type).limits.map((l) => ({ ...l, from: 'type' as const })),
      ...this.limitsOf('session', s.sessionId).limits.map((l) => ({ ...l, from: 'session' as const })),
    ];
    const checks: BudgetCheck[] = [{ scope: 'session', key: s.sessionId, limits: own }];
    if (s.tenant !== null) checks.push({ scope: 'tenant', key: s.tenant, limits: this.limitsOf('tenant', s.tenant).limits.map((l) => ({ ...l, from: 'tenant' as const })) });
    return checks;
  }

  /** Whether anything about this session is budgeted (else the runtime neither checks nor meters it). */
  applies(s: BudgetSubject): boolean {
    return s.tenant !== null || this.checksOf(s).some((c) => c.limits.length > 0);
  }

  /**
   * The check before a turn: the limits this turn (one more turn, no tokens yet) breaks already.
   * Publishes warnings; returns the breach that holds or aborts the turn, or null.
   */
  async beforeTurn(s: BudgetSubject, runKey: string): Promise<BudgetBreach | null> {
    const checks = this.checksOf(s);
    if (!checks.some((c) => c.limits.length > 0)) return null;
    const now = this.deps.now();
    // The turn is counted as it is admitted, in the same locked step as the check (two turns
    // at once cannot both pass a turns limit); its wall-clock is added to the row when it ends.
    const out = await this.deps.store.reserveBudget({
      entry: { id: `${s.sessionId}:t:${runKey}`, sessionId: s.sessionId, tenant: s.tenant, at: now, state: 'metered', amounts: { turns: 1 } },
      checks, now,
    });
    this.warn(s, out.warnings, now);
    if (out.kind !== 'exceeded') return null;
    const d = decidingBreach(out.breaches)!;
    this.countBreach(s, d);
    return d;
  }

  /** A session's or tenant's usage over the windows of `limits` (for getBudget). */
  usage(scope: 'session' | 'tenant', key: string, limits: readonly BudgetLimitSpec[]): Promise<BudgetUsage[]> {
    const now = this.deps.now();
    const starts = [...new Set([0, ...windowStartsOf(limits, now)])];
    return this.deps.store.budgetUsage(scope, key, starts);
  }

  /**
   * `ctx.budget` for one run. `turnKey` names the turn's batch (its first message); `onBreach`
   * tells the host which limit broke (it holds or aborts the turn whatever the handler does).
   */
  handlerBudget(s: BudgetSubject, turnKey: string, onBreach: (b: BudgetBreach) => void): HandlerBudget {
    let calls = 0;
    const open: string[] = [];
    const idOf = (): string => `${s.sessionId}:${turnKey}:${calls++}`;
    return {
      reserve: async (amount: BudgetAmount): Promise<BudgetReservation> => {
        const amounts = normalizeAmounts(amount, 'ctx.budget.reserve');
        const id = idOf();
        const now = this.deps.now();
        const out = await this.deps.store.reserveBudget({ entry: { id, sessionId: s.sessionId, tenant: s.tenant, at: now, state: 'reserved', amounts }, checks: this.checksOf(s), now });
        this.warn(s, out.warnings, now);
        if (out.kind === 'exceeded') {
          const b = decidingBreach(out.breaches)!;
          this.countBreach(s, b);
          onBreach(b);
          throw exceededError(b);
        }
        if (out.kind === 'reused') this.stats.reused++; else this.stats.reservations++;
        open.push(id);
        return { id, reused: out.kind === 'reused' };
      },
      settle: async (actual: BudgetAmount, r?: BudgetReservation): Promise<void> => {
        const amounts = normalizeAmounts(actual, 'ctx.budget.settle');
        const id = r?.id ?? open[0];
        if (id === undefined) throw new TypeError('ctx.budget.settle: this run has no reservation to settle');
        const i = open.indexOf(id);
        if (i >= 0) open.splice(i, 1);
        if (!(await this.deps.store.settleBudget(id, amounts, this.deps.now()))) throw new TypeError(`ctx.budget.settle: no reservation ${id}`);
      },
      record: async (amount: BudgetAmount): Promise<void> => {
        const amounts = normalizeAmounts(amount, 'ctx.budget.record');
        await this.deps.store.recordBudget([{ id: idOf(), sessionId: s.sessionId, tenant: s.tenant, at: this.deps.now(), state: 'settled', amounts }]);
      },
    };
  }

  /** Meters one handler run (a turn): written in batches, idempotent per run (`runKey`). */
  meterTurn(s: BudgetSubject, runKey: string, wallMs: number): void {
    this.meterQueue.push({ id: `${s.sessionId}:t:${runKey}`, sessionId: s.sessionId, tenant: s.tenant, at: this.deps.now(), state: 'metered', amounts: { turns: 1, wallMs: Math.max(0, Math.round(wallMs)) } });
    if (this.meterQueue.length >= 500) this.flush();
  }

  /** Writes the metered turns; a failed write is kept for the next flush (bounded). */
  flush(): void {
    if (this.flushing || this.meterQueue.length === 0) return;
    const batch = this.meterQueue.splice(0, 2000);
    this.flushing = this.deps.store.recordBudget(batch).catch((err: unknown) => {
      if (this.meterQueue.length < 100_000) this.meterQueue.unshift(...batch);
      this.deps.logger.warn({ err }, 'could not write metered turns; retrying at the next flush');
    }).finally(() => { this.flushing = null; });
  }

  /** Replaces the limits of a scope (null removes them) and applies them here at once. */
  async setLimits(scope: BudgetScope, key: string, limits: unknown): Promise<BudgetLimitSpec[] | null> {
    const norm = limits === null ? null : normalizeLimits(limits, 'setBudget');
    await this.deps.store.setBudgetLimits(scope, key, norm, this.deps.now());
    if (norm === null) this.stored.delete(`${scope}:${key}`); else this.stored.set(`${scope}:${key}`, norm);
    return norm;
  }

  private countBreach(s: BudgetSubject, b: BudgetBreach): void {
    const k = `${s.tenant ?? ''}\u0000${b.limit.policy}`;
    this.stats.breaches.set(k, (this.stats.breaches.get(k) ?? 0) + 1);
  }

  /** Publishes each warning once per limit and window (the store's row decides who publishes). */
  private warn(s: BudgetSubject, warnings: readonly BudgetBreach[], now: number): void {
    for (const b of warnings) {
      const key = `${b.scope}:${b.key}:${b.limit.metric}:${b.limit.window}:${b.limit.max}:${warningBucket(b.limit.window, now)}`;
      void this.deps.store.markBudgetWarning(key, now).then(async (first) => {
        if (!first) return;
        this.stats.warnings++;
        await this.deps.publishWarning({ agentId: s.sessionId, tenant: s.tenant, agentType: s.type, ...breachView(b), at: now }, `budget-warning:${key}`);
      }).catch((err: unknown) => { this.deps.logger.warn({ err, sessionId: s.sessionId }, 'could not publish a budget warning'); });
    }
  }
}

/** A breach as the API, events and errors show it. */
export function breachView(b: BudgetBreach): Record<string, unknown> {
  return { scope: b.scope, key: b.key, metric: b.limit.metric, window: b.limit.window, max: b.limit.max, policy: b.limit.policy, used: b.used, requested: b.requested };
}

/** The hold a `pause` or `ask` breach puts in the session's snapshot. */
export function holdOf(b: BudgetBreach): BudgetHold {
  return { scope: b.scope, key: b.key, metric: b.limit.metric, window: b.limit.window, max: b.limit.max, policy: b.limit.policy };
}

/** The typed error of a breach. */
export function exceededError(b: BudgetBreach): BudgetExceededError {
  return new BudgetExceededError(
    `budget exceeded: ${b.scope} ${b.key} ${b.limit.metric} over ${b.limit.window} would be ${b.used} + ${b.requested} > ${b.limit.max} (policy ${b.limit.policy})`,
    breachView(b),
  );
}

/**
 * A run's key in ledger and dead-letter ids: its run id, prefixed with the session's incarnation
 * when it has one. Run ids start again at 1 in a session purged and created again under the same
 * id; without the incarnation its turns' ledger entries overwrote the old incarnation's (spend
 * lost from the tenant's window) and a wake run's dead letter was dropped as a repeat.
 */
export function runKeyOf(incarnation: string | undefined, runId: number): string {
  return incarnation === undefined ? String(runId) : `${incarnation}.${runId}`;
}

/** The turn key of a batch: its first inbox message's sequence, else (a wake alone) the run (`runKeyOf`). */
export function turnKeyOf(batch: readonly InboxMessage[], runId: number, incarnation?: string): string {
  const first = batch.find((m) => m.seq > 0);
  return first ? String(first.seq) : `w${runKeyOf(incarnation, runId)}`;
}

/** Budget waitpoints (policy `ask`) have ids with this prefix. */
export const BUDGET_WAITPOINT_PREFIX = 'budget-';
