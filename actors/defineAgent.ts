/**
 * The agent-definition API: what a user writes to make an agent type. A definition is pure
 * data plus a handler; it holds no mutable state shared between sessions (each run gets its
 * own `ctx.state` draft, committed only when the run completes).
 */
import type {
  InboxMessage, NextStep, Priority, SessionLimits, TurnPolicy, WaitCondition, WaitpointSpec, WakeCondition,
} from './types.js';
import { isTurnPolicy, TURN_POLICIES } from './types.js';
import type { MigrateSteps } from './agentVersion.js';

/** A past message as the handler sees it in `ctx.history`. */
export interface HistoryItem {
  readonly seq: number;
  readonly kind: string;
  readonly body: unknown;
  readonly from: string | null;
  readonly batchId: string;
  readonly outcome: string;
  readonly at: number;
}

/** The log functions a handler gets: a child logger bound to its session and run. */
export interface HandlerLog {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

/** Options of `ctx.sleep()`: wake by time, by named events, or by mail at or above a priority. */
export interface SleepOptions {
  /** Wake at this time (Date or epoch ms). */
  readonly until?: Date | number;
  /** Or wake after this many milliseconds. */
  readonly durationMs?: number;
  readonly wakeEvents?: readonly string[];
  readonly wakeOnMailPriority?: Priority;
}

/** Options of `ctx.waitFor()`: an event, a reply from a sender, or a waitpoint, with an optional timeout. */
export interface WaitOptions {
  readonly event?: string;
  readonly replyFrom?: string;
  readonly timeoutMs?: number;
  /** Wait for a person (or any program holding the id) to complete a durable waitpoint. */
  readonly waitpoint?: WaitpointOptions;
}

/**
 * A waitpoint: the session waits until someone completes it with a value matching `schema`
 * (`completeWaitpoint`, `agentry waitpoint complete`, or `POST /waitpoints/<id>`), it is
 * cancelled, or `timeoutMs` passes. The next turn gets one message of kind `waitpoint` whose body
 * is `{ id, status: 'completed' | 'cancelled' | 'timed-out', value }`.
 */
export interface WaitpointOptions {
  /** A zod 4 schema or a JSON Schema object; the value is validated against it when it is completed. */
  readonly schema: unknown;
  /** After this long the waitpoint times out (with `default` as its value, if given). */
  readonly timeoutMs: number;
  /** The value a timeout completes it with (status `timed-out`); without it the value is null. */
  readonly default?: unknown;
  /** Labels for `listWaitpoints` (e.g. `approval`, `tool:refund`). */
  readonly tags?: readonly string[];
}

/**
 * Amounts for `ctx.budget`: token counts are non-negative integers; `cost` is a decimal string
 * in whatever unit you choose (dollars, credits), at most 12 fraction digits, never a float.
 */
export interface BudgetAmount {
  /** Tokens not split into in/out (a reservation's estimate). */
  readonly tokens?: number;
  readonly tokensIn?: number;
  readonly tokensOut?: number;
  readonly cost?: string;
  readonly toolCalls?: number;
}

/** A durable reservation: its id is the session, the turn's first message and the call's index in the turn. */
export interface BudgetReservation {
  readonly id: string;
  /** True when a re-run of the turn found the reservation its earlier run made (nothing was reserved twice). */
  readonly reused: boolean;
}

/**
 * One limit: `metric` over `window` may not exceed `max`; on a breach `policy` decides:
 * `warn` (event `budget.warning`, once per window), `ask` (a waitpoint for a person), `pause`
 * (the session sleeps until the limit is raised), `abort` (dead letter `budget`; the default).
 */
export interface BudgetLimit {
  readonly metric: 'tokens' | 'tokensIn' | 'tokensOut' | 'cost' | 'toolCalls' | 'wallMs' | 'turns';
  /** An integer, or for cost a decimal string. */
  readonly max: number | string;
  /** `lifetime` (default), `day` (UTC) or `<N>h` (the rolling last N hours). */
  readonly window?: 'lifetime' | 'day' | `${number}h`;
  readonly policy?: 'warn' | 'ask' | 'pause' | 'abort';
}

/**
 * `ctx.budget`: reserve before an LLM call, settle after it. Reservations are durable and
 * idempotent per turn (see docs/budgets.md): a re-run of the turn reuses them.
 * @example
 * const r = await ctx.budget.reserve({ tokens: 4000, cost: '0.08' });   // BUDGET_EXCEEDED if it would break a limit
 * const out = await llm(prompt);
 * await ctx.budget.settle({ tokensIn: out.in, tokensOut: out.out, cost: out.cost }, r);
 */
export interface HandlerBudget {
  /** Reserves `amount` against every limit of the session, its agent type and its tenant; throws BudgetExceededError when one would break. */
  reserve(amount: BudgetAmount): Promise<BudgetReservation>;
  /** Replaces a reservation's amount by what was spent (default: the run's oldest unsettled reservation). */
  settle(actual: BudgetAmount, reservation?: BudgetReservation): Promise<void>;
  /** Records spend without a reservation (e.g. a tool call): counted, never refused. */
  record(amount: BudgetAmount): Promise<void>;
}

const NEXT: unique symbol = Symbol.for('agentry.next');

/** What `ctx.sleep()` / `ctx.waitFor()` return; a handler returns it to leave `active` that way. */
export interface HandlerResult {
  readonly [NEXT]: NextStep;
  /** `ctx.waitFor({ waitpoint })`: the new waitpoint's id, to hand to whoever completes it (a link, a button). */
  readonly waitpointId?: string;
}

/** Everything a handler run can see and do. Effects are buffered and committed with the run. */
export interface HandlerContext<S = unknown> {
  readonly sessionId: string;
  readonly agentType: string;
  /** Identifies this run; a merged or retried batch gets a new one. */
  readonly runId: number;
  /** 1 on the first try, then 2, 3, … on retries. */
  readonly attempt: number;
  /** Aborted when a newer message supersedes this run (cancel-and-merge), on interrupt, or at shutdown. */
  readonly signal: AbortSignal;
  /** The session's user state: a private copy, persisted when the run completes. */
  state: S;
  /** The most recent history (trimmed to the agent's `maxHistory`), oldest first. */
  readonly history: readonly HistoryItem[];
  readonly log: HandlerLog;
  /** The session's tenant (null: none). */
  readonly tenant: string | null;
  /** Budget reservations around LLM calls (see HandlerBudget). */
  readonly budget: HandlerBudget;
  /** The runtime's clock (fake in tests). */
  now(): number;
  /** Sends a reply to `agentry.out.<sessionId>`, published after the run commits (never for an aborted run). */
  reply(body: unknown): void;
  /** Streams a partial output now (not durable; `Agentry-Run` header tells runs apart). */
  stream(chunk: unknown): void;
  /** Sends mail to another session's inbox after the run commits. */
  mail(to: string, body: unknown, opts?: { priority?: Priority }): void;
  /** Publishes an event on the event bus after the run commits. */
  publish(type: string, data?: unknown, opts?: { priority?: Priority }): void;
  /** Starts receiving events matching `pattern` (an event type or a NATS wildcard such as `invoice.*`), from this commit on. */
  subscribe(pattern: string): void;
  unsubscribe(pattern: string): void;
  /** Ends the run by going to sleep; return its result from the handler. */
  sleep(opts: SleepOptions): HandlerResult;
  /**
   * Ends the run by waiting for an event, a reply or a waitpoint; return its result from the
   * handler. With `waitpoint`, the result's `waitpointId` is the id to hand out.
   * @example
   * const next = ctx.waitFor({ waitpoint: { schema: z.object({ approve: z.boolean() }), timeoutMs: 3_600_000, default: { approve: false } } });
   * ctx.reply({ approveAt: `/waitpoints/${next.waitpointId}` });
   * return next;
   */
  waitFor(opts: WaitOptions): HandlerResult;
}

/** What `onAbort` gets as its context: the session's state to repair, and the run's logger and clock. */
export interface AbortContext<S = unknown> {
  readonly sessionId: string;
  readonly agentType: string;
  /**
   * A draft of the state the aborted turn started from (an aborted turn commits nothing). Change
   * it to repair the transcript: the next turn starts from it, and it is committed with that turn.
   */
  state: S;
  readonly log: HandlerLog;
  now(): number;
}

/** What an aborted turn had done when it was aborted. */
export interface AbortedTurn<S = unknown> {
  readonly runId: number;
  /** `merged` (cancel-and-merge, debounce), `superseded` (latest), `rolled-back`, `interrupted`, `stopped`, `timeout` (past `turnTimeoutMs`). */
  readonly reason: string;
  readonly batch: readonly InboxMessage[];
  /** The turn's own draft of the state when it was aborted (discarded). */
  readonly state: S;
  /** Chunks it had streamed (they are followed by a `retracted` notice). */
  readonly streamed: number;
}

/** A handler: receives the batch (merged messages, oldest first) and the run context. */
export type Handler<S> = (batch: readonly InboxMessage[], ctx: HandlerContext<S>) =>
  Promise<HandlerResult | undefined> | HandlerResult | undefined;

/** What a user writes to define an agent type. */
export interface AgentDefinition<S = unknown> {
  readonly type: string;
  /**
   * What a message that arrives during a turn does (see `TurnPolicy`): `cancel-and-merge`
   * (default), `queue`, `latest`, `reject`, `debounce` or `rollback`. A session (createAgent) and
   * a message (`Agentry-Turn-Policy`, sendMessage's `policy`) can override it.
   */
  readonly onMessage?: TurnPolicy;
  /** `debounce`: how long the session waits for quiet before a turn starts (default 500 ms). */
  readonly debounceMs?: number;
  readonly initialState?: () => S;
  /** Most messages merged into one run (default 50). */
  readonly maxMerge?: number;
  /** A run stops absorbing messages after this long, so a steady stream cannot starve it (default 2000 ms); it also bounds a debounce wait. */
  readonly maxMergeDelayMs?: number;
  /** Attempts per batch before it is dead-lettered (default 3). */
  readonly maxAttempts?: number;
  /**
   * Longest a turn (one handler call) may run, in ms; 0: no limit. Past it the turn's
   * `ctx.signal` fires (reason: a `TIMEOUT` error) and the turn counts as a failed attempt
   * (retried after `retryBaseMs`…, dead-lettered after `maxAttempts`), whether or not the handler
   * stops. Default: the runtime's `turnTimeoutMs` (15 minutes).
   */
  readonly turnTimeoutMs?: number;
  readonly retryBaseMs?: number;
  readonly retryCapMs?: number;
  /** How many history messages `ctx.history` holds (default 50). */
  readonly maxHistory?: number;
  /**
   * How much of each session's stored history and timeline to keep (default: everything). Rows
   * beyond the newest `maxCount`, or older than `maxAgeMs`, are deleted by a periodic job; the
   * newest `maxHistory` history messages (what `ctx.history` and a hydration read) always stay.
   */
  readonly retention?: RetentionOptions;
  /**
   * Keep a checkpoint of every committed version of this type's sessions (the flight recorder:
   * what `forkSession` starts from and `replaySession` compares with). Off by default: each
   * commit then also writes a copy of the session's snapshot (the newest 100 per session are kept).
   */
  readonly checkpoints?: boolean;
  /** Event patterns every session of this type receives from its creation (types or NATS wildcards). */
  readonly subscribe?: readonly string[];
  /**
   * Version of this agent's code and state shape (a positive integer, default 1). Every stored
   * snapshot records the version that wrote it; a session whose snapshot is older is migrated
   * through `migrate` when it next hydrates (or by `agentry migrate`).
   */
  readonly version?: number;
  /**
   * Steps between versions: `migrate[n](state)` returns the user state of version n + 1 from that
   * of version n. Pure and deterministic (it may run more than once: in a dry run, and again on
   * hydration). A session it cannot migrate keeps its snapshot and messages (MIGRATION_FAILED).
   * @example
   * defineAgent({ type: 'support', version: 2, migrate: { 1: (s) => ({ ...s, turns: s.count }) }, … })
   */
  readonly migrate?: Readonly<Record<number, (state: any) => unknown>>; // eslint-disable-line @typescript-eslint/no-explicit-any
  /**
   * Stop sessions that committed nothing for `idleMs` (and with `purge`, delete them: a later
   * message to the id starts a new session). Sessions with a pending wake-up time are not stopped
   * before it. Default: `AGENTRY_SESSION_TTL_MS` (unset: sessions live forever).
   */
  readonly sessionTtl?: SessionTtl;
  /**
   * Most messages a session holds not yet handled (queued behind a turn, deferred while it sleeps
   * or waits, merged into a turn not yet committed). Past it a message is refused: MAILBOX_FULL
   * (HTTP 429) to an API sender, a dead letter `mailbox-full` for a NATS producer. Default: no bound.
   */
  readonly maxMailbox?: number;
  /** Budget limits of each session of this type (setBudget({ agentType }) replaces them at run time). */
  readonly budget?: { readonly limits: readonly BudgetLimit[] };
  readonly handle: Handler<S>;
  /**
   * Called (synchronously) when a turn is aborted before it commits — merged into a newer turn,
   * superseded, rolled back, interrupted, stopped — so the agent can repair its transcript (close a
   * tool call that never got its result) before the next turn runs: change `ctx.state`. Best effort:
   * the repair lives in memory until the next turn commits it (a crash before that loses it, as it
   * loses the aborted turn). A throw is logged and the repair dropped.
   */
  readonly onAbort?: (ctx: AbortContext<S>, partial: AbortedTurn<S>) => void;
}

/** How long a session may stay untouched before it is stopped (and, with `purge`, deleted). */
export interface SessionTtl {
  readonly idleMs: number;
  readonly purge?: boolean;
}

/** Bounds on one table of a session's stored past: count of newest rows kept, age (ms) of the oldest. */
export interface RetentionBound {
  readonly maxCount?: number;
  readonly maxAgeMs?: number;
}

/** What an agent type keeps of each session's history (messages) and transitions (timeline). */
export interface RetentionOptions {
  readonly history?: RetentionBound;
  readonly transitions?: RetentionBound;
}

/** A definition with every default filled in, as the runtime uses it. */
export interface ResolvedAgent<S = unknown> {
  readonly type: string;
  readonly limits: SessionLimits;
  readonly maxHistory: number;
  /** Set when the type bounds its stored history or transitions (absent: keep everything). */
  readonly retention?: RetentionOptions;
  /** Whether this type's sessions get checkpoints (fork and replay). */
  readonly checkpoints: boolean;
  readonly subscribe: readonly string[];
  /** The code's version (1 when not given). */
  readonly version: number;
  /** Migration steps by the version they start from (empty when not given). */
  readonly migrate: MigrateSteps;
  /** Set when the type stops idle sessions (absent: the runtime's default, if any). */
  readonly sessionTtl?: SessionTtl;
  /** Set when the type bounds its sessions' mailboxes. */
  readonly maxMailbox?: number;
  /** Set when the type has its own turn limit (absent: the runtime's `turnTimeoutMs`; 0: none). */
  readonly turnTimeoutMs?: number;
  /** The type's budget limits as given (the runtime validates them when it starts). */
  readonly budget?: { readonly limits: readonly BudgetLimit[] };
  readonly initialState: () => S;
  readonly handle: Handler<S>;
  readonly onAbort?: (ctx: AbortContext<S>, partial: AbortedTurn<S>) => void;
}

/** Any agent definition, whatever its user-state type (handlers are contravariant in it). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyAgent = ResolvedAgent<any>;

export const DEFAULT_LIMITS: Required<SessionLimits> = Object.freeze({
  policy: 'cancel-and-merge',
  debounceMs: 500,
  maxMerge: 50,
  maxMergeDelayMs: 2000,
  maxAttempts: 3,
  retryBaseMs: 200,
  retryCapMs: 30_000,
});

/**
 * Declares an agent type. Validates the options once, at definition time, so a typo fails at
 * start-up rather than on the first message.
 *
 * @example
 * export default defineAgent({
 *   type: 'echo',
 *   handle(batch, ctx) { ctx.reply({ text: batch.map((m) => String(m.body)).join('\n') }); },
 * });
 */
export function defineAgent<S = unknown>(def: AgentDefinition<S>): ResolvedAgent<S> {
  if (typeof def.type !== 'string' || !/^[A-Za-z0-9_-]{1,64}$/.test(def.type)) {
    throw new TypeError(`agent type must be 1-64 characters of [A-Za-z0-9_-], got ${JSON.stringify(def.type)}`);
  }
  if (typeof def.handle !== 'function') throw new TypeError(`agent ${def.type}: handle must be a function`);
  if (def.onAbort !== undefined && typeof def.onAbort !== 'function') throw new TypeError(`agent ${def.type}: onAbort must be a function`);
  const positive = (name: string, v: number | undefined, dflt: number): number => {
    if (v === undefined) return dflt;
    if (!Number.isFinite(v) || v < 0) throw new TypeError(`agent ${def.type}: ${name} must be a non-negative number`);
    return v;
  };
  const policy = def.onMessage ?? DEFAULT_LIMITS.policy;
  if (!isTurnPolicy(policy)) throw new TypeError(`agent ${def.type}: onMessage must be one of ${TURN_POLICIES.join(', ')}`);
  return Object.freeze({
    type: def.type,
    limits: Object.freeze({
      policy,
      debounceMs: positive('debounceMs', def.debounceMs, DEFAULT_LIMITS.debounceMs),
      maxMerge: Math.max(1, positive('maxMerge', def.maxMerge, DEFAULT_LIMITS.maxMerge)),
      maxMergeDelayMs: positive('maxMergeDelayMs', def.maxMergeDelayMs, DEFAULT_LIMITS.maxMergeDelayMs),
      maxAttempts: Math.max(1, positive('maxAttempts', def.maxAttempts, DEFAULT_LIMITS.maxAttempts)),
      retryBaseMs: positive('retryBaseMs', def.retryBaseMs, DEFAULT_LIMITS.retryBaseMs),
      retryCapMs: positive('retryCapMs', def.retryCapMs, DEFAULT_LIMITS.retryCapMs),
    }),
    maxHistory: positive('maxHistory', def.maxHistory, 50),
    ...(retentionOf(def.type, def.retention) ?? {}),
    checkpoints: def.checkpoints === true,
    subscribe: Object.freeze((def.subscribe ?? []).map((p) => assertEventPattern(p, def.type))),
    ...versionOf(def.type, def.version, def.migrate),
    ...(def.sessionTtl !== undefined ? { sessionTtl: sessionTtlOf(def.type, def.sessionTtl) } : {}),
    ...(def.maxMailbox !== undefined ? { maxMailbox: positiveInt(def.type, 'maxMailbox', def.maxMailbox) } : {}),
    ...(def.turnTimeoutMs !== undefined ? { turnTimeoutMs: positive('turnTimeoutMs', def.turnTimeoutMs, 0) } : {}),
    ...(budgetOf(def.type, def.budget) ?? {}),
    initialState: def.initialState ?? (() => ({}) as S),
    handle: def.handle,
    ...(def.onAbort ? { onAbort: def.onAbort } : {}),
  });
}

/** A positive integer option, or a TypeError naming it. */
function positiveInt(type: string, name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new TypeError(`agent ${type}: ${name} must be a positive integer, got ${JSON.stringify(v)}`);
  return v;
}

/** Checks `version` and `migrate`: steps are functions keyed by versions below the current one. */
function versionOf(type: string, version: number | undefined, migrate: AgentDefinition['migrate']): { version: number; migrate: MigrateSteps } {
  const v = version === undefined ? 1 : positiveInt(type, 'version', version);
  const steps: Record<number, (state: unknown) => unknown> = {};
  for (const [k, fn] of Object.entries(migrate ?? {})) {
    const from = Number(k);
    if (!Number.isInteger(from) || from < 1 || from >= v) throw new TypeError(`agent ${type}: migrate[${k}] must be keyed by a version from 1 to ${v - 1} (version is ${v})`);
    if (typeof fn !== 'function') throw new TypeError(`agent ${type}: migrate[${k}] must be a function (state) => newState`);
    steps[from] = fn as (state: unknown) => unknown;
  }
  return { version: v, migrate: Object.freeze(steps) };
}

/** Checks a `sessionTtl` option. */
export function sessionTtlOf(type: string, ttl: SessionTtl): SessionTtl {
  if (ttl === null || typeof ttl !== 'object') throw new TypeError(`agent ${type}: sessionTtl must be { idleMs, purge? }`);
  for (const k of Object.keys(ttl)) if (k !== 'idleMs' && k !== 'purge') throw new TypeError(`agent ${type}: sessionTtl has no option ${k} (idleMs, purge)`);
  const idleMs = positiveInt(type, 'sessionTtl.idleMs', ttl.idleMs);
  if (ttl.purge !== undefined && typeof ttl.purge !== 'boolean') throw new TypeError(`agent ${type}: sessionTtl.purge must be a boolean`);
  return Object.freeze({ idleMs, purge: ttl.purge ?? false });
}

/** Copies a type's budget limits (their values are checked when the runtime starts). */
function budgetOf(type: string, b: AgentDefinition['budget']): { budget: { readonly limits: readonly BudgetLimit[] } } | undefined {
  if (b === undefined) return undefined;
  if (b === null || typeof b !== 'object' || !Array.isArray(b.limits)) throw new TypeError(`${type}: budget must be { limits: [...] }`);
  return { budget: Object.freeze({ limits: Object.freeze((b.limits as readonly BudgetLimit[]).map((l): BudgetLimit => Object.freeze({ ...l }))) }) };
}

/** Checks a type's retention options (positive integers); undefined when nothing is bounded. */
function retentionOf(type: string, r: RetentionOptions | undefined): { retention: RetentionOptions } | undefined {
  if (r === undefined) return undefined;
  const bound = (table: string, b: RetentionBound | undefined): RetentionBound | undefined => {
    if (b === undefined) return undefined;
    for (const [k, v] of Object.entries(b)) {
      if (k !== 'maxCount' && k !== 'maxAgeMs') throw new TypeError(`${type}: retention.${table} has no option ${k} (maxCount, maxAgeMs)`);
      if (v !== undefined && (!Number.isInteger(v) || (v as number) < 1)) throw new TypeError(`${type}: retention.${table}.${k} must be a positive integer`);
    }
    return b.maxCount === undefined && b.maxAgeMs === undefined ? undefined : Object.freeze({ ...b });
  };
  const history = bound('history', r.history);
  const transitions = bound('transitions', r.transitions);
  if (!history && !transitions) return undefined;
  return { retention: Object.freeze({ ...(history ? { history } : {}), ...(transitions ? { transitions } : {}) }) };
}

const EVENT_PATTERN = /^([A-Za-z0-9_-]+|\*)(\.([A-Za-z0-9_-]+|\*))*(\.>)?$|^>$/;
const EVENT_TYPE = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/;

/** True when `type` is a valid event type: dot-separated tokens of [A-Za-z0-9_-]. */
export function isEventType(type: unknown): type is string {
  return typeof type === 'string' && type.length <= 200 && EVENT_TYPE.test(type);
}

/** Checks an event pattern (a type, with `*` tokens and an optional trailing `>`). */
export function assertEventPattern(pattern: string, where: string): string {
  if (typeof pattern !== 'string' || pattern.length > 200 || !EVENT_PATTERN.test(pattern)) {
    throw new TypeError(`${where}: invalid event pattern ${JSON.stringify(pattern)} (tokens of [A-Za-z0-9_-], '*' or a final '>')`);
  }
  return pattern;
}

/** Builds the result of `ctx.sleep()` (exported for the runtime, which implements ctx). */
export function sleepResult(opts: SleepOptions, now: number): HandlerResult {
  let until: number | null = null;
  if (opts.until !== undefined) until = typeof opts.until === 'number' ? opts.until : opts.until.getTime();
  else if (opts.durationMs !== undefined) until = now + opts.durationMs;
  if (until !== null && !Number.isFinite(until)) throw new TypeError('sleep: until/durationMs must be a finite time');
  const wake: WakeCondition = { until, events: [...(opts.wakeEvents ?? [])], mailPriority: opts.wakeOnMailPriority ?? null };
  return { [NEXT]: { type: 'sleep', wake } };
}

/**
 * Builds the result of `ctx.waitFor()`. `waitpoint` is the stored form of `opts.waitpoint`
 * (id and JSON Schema), which the runtime makes: this module does no I/O and no crypto.
 */
export function waitResult(opts: WaitOptions, now: number, waitpoint?: WaitpointSpec): HandlerResult {
  if (opts.waitpoint !== undefined) {
    if (!waitpoint) throw new TypeError('waitFor: a waitpoint needs the runtime to create it');
    if (opts.event !== undefined || opts.replyFrom !== undefined) throw new TypeError('waitFor: a waitpoint cannot be combined with event or replyFrom');
    const t = opts.waitpoint.timeoutMs;
    if (typeof t !== 'number' || !Number.isFinite(t) || t <= 0) throw new TypeError('waitFor: waitpoint.timeoutMs must be a positive number');
    const wait: WaitCondition = { event: null, replyFrom: null, timeoutAt: now + t, waitpoint };
    return { [NEXT]: { type: 'wait', wait }, waitpointId: waitpoint.id };
  }
  if (opts.event === undefined && opts.replyFrom === undefined) throw new TypeError('waitFor needs an event, replyFrom or a waitpoint');
  const wait: WaitCondition = {
    event: opts.event ?? null,
    replyFrom: opts.replyFrom ?? null,
    timeoutAt: opts.timeoutMs === undefined ? null : now + opts.timeoutMs,
  };
  return { [NEXT]: { type: 'wait', wait } };
}

/** Reads the next step out of a handler's return value (idle when it returned nothing). */
export function nextStepOf(result: unknown): NextStep {
  if (result !== null && typeof result === 'object' && NEXT in result) return (result as HandlerResult)[NEXT];
  return IDLE_STEP;
}

/** The step of a handler that returned nothing (shared: a NextStep is never changed). */
const IDLE_STEP: NextStep = Object.freeze({ type: 'idle' });
