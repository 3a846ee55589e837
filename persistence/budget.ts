/**
 * Owns the budget ledger's domain types and arithmetic, shared by every store so the three
 * backends decide a reservation the same way: decimal amounts (cost in the user's unit) as
 * exact scaled integers (never floats), window starts, and which limits an amount would break.
 * Pure: no I/O.
 */

/** What a ledger row can count. `tokens` is every token: reserved, in and out. */
export type BudgetMetric = 'tokens' | 'tokensIn' | 'tokensOut' | 'cost' | 'toolCalls' | 'wallMs' | 'turns';
export const BUDGET_METRICS: readonly BudgetMetric[] = ['tokens', 'tokensIn', 'tokensOut', 'cost', 'toolCalls', 'wallMs', 'turns'];

/** `lifetime`, `day` (the UTC calendar day) or `<N>h`: the rolling last N hours (1-8760). */
export type BudgetWindow = 'lifetime' | 'day' | `${number}h`;

/** What a breach does: publish a warning, ask a person, pause the session, or abort the turn. */
export type BudgetPolicy = 'warn' | 'ask' | 'pause' | 'abort';
export const BUDGET_POLICIES: readonly BudgetPolicy[] = ['warn', 'ask', 'pause', 'abort'];

/** One limit as stored: `max` is a decimal string (an integer for every metric but cost). */
export interface BudgetLimitSpec {
  readonly metric: BudgetMetric;
  readonly max: string;
  readonly window: BudgetWindow;
  readonly policy: BudgetPolicy;
}

/** Where limits apply: an agent type (each session of it), one session, or a tenant (all its sessions together). */
export type BudgetScope = 'type' | 'session' | 'tenant';

/** Amounts of one ledger row; absent means 0. Cost is a decimal string. */
export interface BudgetAmounts {
  readonly tokens?: number;
  readonly tokensIn?: number;
  readonly tokensOut?: number;
  readonly cost?: string;
  readonly toolCalls?: number;
  readonly wallMs?: number;
  readonly turns?: number;
}

/** One ledger row as written. */
export interface BudgetEntry {
  readonly id: string;
  readonly sessionId: string;
  readonly tenant: string | null;
  readonly at: number;
  readonly state: 'reserved' | 'settled' | 'metered';
  readonly amounts: BudgetAmounts;
}

/** Sums of one scope over one window, every metric as a decimal string. */
export interface BudgetUsage {
  readonly windowStart: number;
  readonly totals: Readonly<Record<BudgetMetric, string>>;
  /** Reservations not settled yet (counted at their reserved amounts). */
  readonly open: number;
}

/** The limits of one scope an amount is checked against, with the usage key. */
export interface BudgetCheck {
  readonly scope: 'session' | 'tenant';
  /** Session id or tenant. */
  readonly key: string;
  /** Where the limits came from (type limits are checked against the session's usage). */
  readonly limits: readonly (BudgetLimitSpec & { readonly from: BudgetScope })[];
}

/** A limit the amount would break (or has broken). */
export interface BudgetBreach {
  readonly scope: BudgetScope;
  readonly key: string;
  readonly limit: BudgetLimitSpec;
  readonly windowStart: number;
  /** Usage before the amount, and the amount asked for, as decimal strings. */
  readonly used: string;
  readonly requested: string;
}

export interface BudgetReserveRequest {
  readonly entry: BudgetEntry;
  readonly checks: readonly BudgetCheck[];
  readonly now: number;
}

/** `reserved`: written now; `reused`: a row with this id exists (a re-run), nothing checked; `exceeded`: nothing written. */
export type BudgetReserveOutcome =
  | { readonly kind: 'reserved' | 'reused'; readonly warnings: readonly BudgetBreach[] }
  | { readonly kind: 'exceeded'; readonly breaches: readonly BudgetBreach[]; readonly warnings: readonly BudgetBreach[] };

/** A session held by a budget breach: sleeping (pause) or waiting on a budget waitpoint (ask). */
export interface BudgetHeldSession {
  readonly id: string;
  readonly status: 'sleeping' | 'waiting';
  readonly waitpointId: string | null;
}

const SCALE = 12;
const UNIT = 10n ** BigInt(SCALE);
const DECIMAL = /^(\d{1,26})(?:\.(\d{1,12}))?$/;

/** Parses a non-negative decimal (at most 12 fraction digits) into an exact scaled integer; null when malformed. */
export function parseDecimal(v: string | number): bigint | null {
  const s = typeof v === 'number' ? (Number.isSafeInteger(v) && v >= 0 ? String(v) : '') : v.trim();
  const m = DECIMAL.exec(s);
  if (!m) return null;
  return BigInt(m[1]!) * UNIT + BigInt((m[2] ?? '').padEnd(SCALE, '0'));
}

/** Formats a scaled integer back to its shortest decimal string. */
export function formatDecimal(v: bigint): string {
  const neg = v < 0n;
  const a = neg ? -v : v;
  const int = a / UNIT;
  const frac = (a % UNIT).toString().padStart(SCALE, '0').replace(/0+$/, '');
  return `${neg ? '-' : ''}${int}${frac ? `.${frac}` : ''}`;
}

/** A decimal string from SQL (`numeric::text`, possibly with trailing zeros) or JS, as a scaled integer; 0 when empty. */
export function decimalOf(v: string | number | undefined | null): bigint {
  if (v === undefined || v === null || v === '') return 0n;
  const s = String(v);
  const neg = s.startsWith('-');
  const body = neg ? s.slice(1) : s;
  const [i, f = ''] = body.split('.');
  const x = BigInt(i || '0') * UNIT + BigInt(f.slice(0, SCALE).padEnd(SCALE, '0'));
  return neg ? -x : x;
}

/** Checks a window's spelling. */
export function isBudgetWindow(w: unknown): w is BudgetWindow {
  if (w === 'lifetime' || w === 'day') return true;
  if (typeof w !== 'string') return false;
  const m = /^(\d{1,4})h$/.exec(w);
  return m !== null && Number(m[1]) >= 1 && Number(m[1]) <= 8760;
}

/** Where a window starts at `now`: 0 for lifetime, the UTC midnight for day, now − N h for rolling. */
export function windowStart(w: BudgetWindow, now: number): number {
  if (w === 'lifetime') return 0;
  if (w === 'day') return Math.floor(now / 86_400_000) * 86_400_000;
  return now - Number(w.slice(0, -1)) * 3_600_000;
}

/**
 * The bucket a warning is published once for: the window's start, except a rolling window,
 * which warns at most once per its length (its start moves with the clock).
 */
export function warningBucket(w: BudgetWindow, now: number): number {
  if (w === 'lifetime' || w === 'day') return windowStart(w, now);
  const len = Number(w.slice(0, -1)) * 3_600_000;
  return Math.floor(now / len) * len;
}

/** The scaled amount of one metric in `a`. */
export function amountOf(a: BudgetAmounts, m: BudgetMetric): bigint {
  if (m === 'cost') return decimalOf(a.cost);
  if (m === 'tokens') return BigInt((a.tokens ?? 0) + (a.tokensIn ?? 0) + (a.tokensOut ?? 0)) * UNIT;
  return BigInt(a[m] ?? 0) * UNIT;
}

/** Every metric of `a` as a decimal string. */
export function totalsOf(a: BudgetAmounts): Record<BudgetMetric, string> {
  return Object.fromEntries(BUDGET_METRICS.map((m) => [m, formatDecimal(amountOf(a, m))])) as Record<BudgetMetric, string>;
}

/** The window starts `limits` need at `now` (deduplicated). */
export function windowStartsOf(limits: readonly BudgetLimitSpec[], now: number): number[] {
  return [...new Set(limits.map((l) => windowStart(l.window, now)))];
}

/**
 * The limits that `amount` on top of `usage` would break: used + amount > max. With an empty
 * amount (a check before a turn), only limits already passed count as broken.
 */
export function breachesOf(check: BudgetCheck, usage: readonly BudgetUsage[], amount: BudgetAmounts, now: number): BudgetBreach[] {
  const out: BudgetBreach[] = [];
  for (const l of check.limits) {
    const start = windowStart(l.window, now);
    const u = usage.find((x) => x.windowStart === start);
    const used = decimalOf(u?.totals[l.metric]);
    const req = amountOf(amount, l.metric);
    const max = decimalOf(l.max);
    if (used + req > max) {
      out.push({ scope: l.from, key: check.key, limit: { metric: l.metric, max: l.max, window: l.window, policy: l.policy }, windowStart: start, used: formatDecimal(used), requested: formatDecimal(req) });
    }
  }
  return out;
}

/** The breach that decides: abort before ask before pause; warnings are not blocking. */
export function decidingBreach(breaches: readonly BudgetBreach[]): BudgetBreach | null {
  const rank: Record<BudgetPolicy, number> = { warn: 0, pause: 1, ask: 2, abort: 3 };
  let best: BudgetBreach | null = null;
  for (const b of breaches) if (b.limit.policy !== 'warn' && (!best || rank[b.limit.policy] > rank[best.limit.policy])) best = b;
  return best;
}

/**
 * Validates limits given by a user (defineAgent, setBudget): metric, window, policy and a
 * non-negative max (an integer except for cost). Throws a TypeError naming the bad one.
 */
export function normalizeLimits(input: unknown, where: string): BudgetLimitSpec[] {
  if (!Array.isArray(input)) throw new TypeError(`${where}: limits must be an array`);
  if (input.length > 50) throw new TypeError(`${where}: at most 50 limits`);
  return input.map((x: unknown, i) => {
    const l = (x ?? {}) as Record<string, unknown>;
    for (const k of Object.keys(l)) if (!['metric', 'max', 'window', 'policy'].includes(k)) throw new TypeError(`${where}: limits[${i}] has no option ${k} (metric, max, window, policy)`);
    const metric = l.metric as BudgetMetric;
    if (!BUDGET_METRICS.includes(metric)) throw new TypeError(`${where}: limits[${i}].metric must be one of ${BUDGET_METRICS.join(', ')}`);
    const window = l.window ?? 'lifetime';
    if (!isBudgetWindow(window)) throw new TypeError(`${where}: limits[${i}].window must be lifetime, day or <N>h (1-8760)`);
    const policy = (l.policy ?? 'abort') as BudgetPolicy;
    if (!BUDGET_POLICIES.includes(policy)) throw new TypeError(`${where}: limits[${i}].policy must be one of ${BUDGET_POLICIES.join(', ')}`);
    const max = typeof l.max === 'number' || typeof l.max === 'string' ? parseDecimal(l.max) : null;
    if (max === null) throw new TypeError(`${where}: limits[${i}].max must be a non-negative ${metric === 'cost' ? 'decimal (a string, at most 12 fraction digits)' : 'integer'}`);
    if (metric !== 'cost' && max % UNIT !== 0n) throw new TypeError(`${where}: limits[${i}].max must be an integer for ${metric}`);
    return { metric, max: formatDecimal(max), window, policy };
  });
}

/** Validates amounts (reserve, settle, record): non-negative integers, cost a decimal. */
export function normalizeAmounts(input: unknown, where: string): BudgetAmounts {
  if (input === null || typeof input !== 'object') throw new TypeError(`${where}: amounts must be an object`);
  const a = input as Record<string, unknown>;
  const out: Record<string, number | string> = {};
  for (const [k, v] of Object.entries(a)) {
    if (v === undefined) continue;
    if (k === 'cost') {
      const d = typeof v === 'string' || typeof v === 'number' ? parseDecimal(v) : null;
      if (d === null) throw new TypeError(`${where}: cost must be a non-negative decimal string (at most 12 fraction digits)`);
      out.cost = formatDecimal(d);
    } else if (k === 'tokens' || k === 'tokensIn' || k === 'tokensOut' || k === 'toolCalls') {
      if (!Number.isSafeInteger(v) || (v as number) < 0) throw new TypeError(`${where}: ${k} must be a non-negative integer`);
      out[k] = v as number;
    } else {
      throw new TypeError(`${where}: no amount ${k} (tokens, tokensIn, tokensOut, cost, toolCalls)`);
    }
  }
  return out;
}
