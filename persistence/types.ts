/**
 * The store contract between the runtime and its durable backends (Postgres via `pg`,
 * PGlite, and the in-memory store used for ephemeral runs).
 *
 * Persistence knows nothing of XState or NATS: a session snapshot is opaque JSON, a
 * sequence number is just the highest inbox stream sequence a commit covers. Row types
 * (snake_case, as SQL returns them) stay inside the backends; these are the domain types.
 */
import type {
  BudgetAmounts, BudgetEntry, BudgetHeldSession, BudgetLimitSpec, BudgetMetric, BudgetReserveOutcome, BudgetReserveRequest, BudgetScope, BudgetUsage,
} from './budget.js';

/** The five states a session can rest in, as stored in `sessions.status`. */
export type SessionStatus = 'idle' | 'active' | 'sleeping' | 'waiting' | 'stopped';

/** A session as loaded for hydration or inspection. */
export interface SessionRecord {
  readonly id: string;
  readonly type: string;
  readonly status: SessionStatus;
  /** The XState persisted snapshot (JSON), as committed. */
  readonly snapshot: unknown;
  /** Highest inbox stream sequence whose effect is contained in `snapshot`. */
  readonly lastSeq: number;
  /** Incremented by every commit; used for optimistic concurrency. */
  readonly version: number;
  readonly partition: number;
  /** Epoch of the partition lease under which the last commit was made (fencing). */
  readonly ownerEpoch: number;
  readonly wakeAt: number | null;
  readonly wakeEvents: readonly string[];
  readonly wakePriority: string | null;
  readonly createdAt: number;
  readonly updatedAt: number;
}

/** One original inbox message as kept in a session's history. */
export interface HistoryEntry {
  readonly sessionId: string;
  /** Inbox stream sequence (unique per session); 0-based internal records use negative numbers. */
  readonly seq: number;
  readonly kind: string;
  readonly body: unknown;
  readonly priority: string;
  readonly from: string | null;
  /** The handler run the message was part of; several messages share one when merged. */
  readonly batchId: string;
  /** `ok`, `dead-letter`, `interrupted`, `stopped`, or a turn policy's `superseded`, `rejected`, `rolled-back`. */
  readonly outcome: string;
  /**
   * What became of the message (`handled`, `merged`, `superseded`, `rejected`, `rolled-back`, …):
   * derived from `outcome` and the batch (not a column). Set on records the runtime commits and
   * on the pages the API reads.
   */
  readonly fate?: string;
  /** Milliseconds since the epoch when the message was received. */
  readonly at: number;
}

/** A session with its newest history, as `Store.loadSessions` returns it for hydration. */
export interface LoadedSession {
  readonly record: SessionRecord;
  /** Newest first, at most the session's history limit: what `getHistory(id, { limit })` returns. */
  readonly history: HistoryEntry[];
}

/**
 * History rows to load per session: one number for every session, or one per agent type
 * (`maxHistory` is per type) with `fallback` for types not listed. Plain data, not a function,
 * so it crosses to a store in another thread and into SQL as it is.
 */
export type HistoryLimit = number | { readonly byType: Readonly<Record<string, number>>; readonly fallback: number };

/** One state transition, for the inspector's timeline. */
export interface TransitionRecord {
  /** Set on records read from a store (grows in commit order per session): `forkSession({ at: { transition } })` names one. */
  readonly id?: number;
  readonly sessionId: string;
  readonly at: number;
  readonly event: string;
  readonly from: string;
  readonly to: string;
  /**
   * What the session was right after it (migration 0013; runtime/transitionFrame.ts builds it):
   * the event object and the context. Written by the host; read back by `getSessionStep`, and by
   * `getTransitions` only when asked (`frames: true`); null on rows older than 0013.
   */
  readonly frame?: unknown;
  /** The user state after it, present only when it changed since the session's previous frame. */
  readonly userState?: unknown;
}

/** One step of a session as `getSessionStep` reads it back, for time travel. */
export interface SessionStep {
  /** The transition (with its id). */
  readonly transition: TransitionRecord;
  /** Its frame (null: written before migration 0013, or by a store that keeps none). */
  readonly frame: unknown;
  /** The step before it (null: it is the oldest kept). */
  readonly previous: { readonly transition: TransitionRecord; readonly frame: unknown } | null;
  /** The user state after the step: the newest recorded at or before it (absent: none kept). */
  readonly userState?: { readonly value: unknown; readonly transitionId: number };
  /** The same after the previous step. */
  readonly previousUserState?: { readonly value: unknown; readonly transitionId: number };
}

/** A message to publish after its commit: replies, mail, events. */
/** Which stored outbox rows `pendingOutbox` returns. */
export interface PendingOutboxQuery {
  readonly partitions?: readonly number[];
  readonly createdBefore?: number;
}

export interface OutboxRecord {
  /** Deterministic id, used as the `Nats-Msg-Id` so a resend is dropped by JetStream. */
  readonly id: string;
  readonly sessionId: string;
  readonly subject: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
  readonly createdAt: number;
}

/** Kinds of entry in a session's log. */
export type SessionLogKind = 'state' | 'reply' | 'fate';

/**
 * One committed change of a session, as its server-sent event stream replays it. The store
 * writes these itself in `commit`, one per transition and one per reply outbox row (see
 * `sessionLog.ts`), so they exist exactly when their change is committed.
 */
export interface SessionLogEntry {
  /** Grows in commit order per session; not contiguous (one sequence serves every session). */
  readonly id: number;
  readonly sessionId: string;
  readonly kind: SessionLogKind;
  /** `state`: `{ agentId, from, to, state, event, at }`; `reply`: `{ agentId, body, msgId, at }`; `fate`: `{ agentId, seq, fate, batchId, at }`. */
  readonly data: unknown;
  /** The store's clock at commit; retention is measured on it. */
  readonly at: number;
}

/** What `pruneLog` removes: entries committed before `before`, and all but the newest `keepPerSession` of `sessionIds`. */
export interface LogPruneOptions {
  readonly before: number;
  readonly keepPerSession: number;
  readonly sessionIds: readonly string[];
}

/**
 * What `prunePast` removes of `sessionIds`' stored past (an agent type's retention): history rows
 * beyond the newest `history.maxCount` or older than `history.before`, never the newest
 * `historyFloor` (what a hydration reads); transitions beyond the newest `transitions.maxCount`
 * or older than `transitions.before`.
 */
export interface PastPruneOptions {
  readonly sessionIds: readonly string[];
  readonly historyFloor: number;
  readonly history?: { readonly maxCount?: number; readonly before?: number };
  readonly transitions?: { readonly maxCount?: number; readonly before?: number };
}

/**
 * A committed version of a session, as the flight recorder keeps it (table `checkpoints`,
 * migration 0010): what fork starts from and what replay compares with.
 */
export interface Checkpoint {
  readonly sessionId: string;
  readonly version: number;
  readonly type: string;
  readonly status: SessionStatus;
  readonly lastSeq: number;
  /** The durable snapshot as committed (state, context with user state and deferred messages). */
  readonly snapshot: unknown;
  /** The session's highest transition id before this commit (its commit wrote the ones above). */
  readonly transitionsBefore: number;
  /** The store's clock at commit. */
  readonly at: number;
}

/** A recorded point of a session: after an inbox message (`seq`), or after the commit that wrote a transition (its id). */
export type CheckpointPoint = { readonly seq: number } | { readonly transition: number };

/** Everything one session changes in one step; the runtime acks inbox messages only after it commits. */
export interface CommitRecord {
  readonly sessionId: string;
  readonly type: string;
  readonly status: SessionStatus;
  readonly snapshot: unknown;
  readonly lastSeq: number;
  /** The version this commit writes; the row must currently hold `version - 1` (or not exist when 1). */
  readonly version: number;
  readonly partition: number;
  readonly ownerEpoch: number;
  readonly wakeAt: number | null;
  readonly wakeEvents: readonly string[];
  readonly wakePriority: string | null;
  readonly history: readonly HistoryEntry[];
  readonly transitions: readonly TransitionRecord[];
  readonly outbox: readonly OutboxRecord[];
  /** Event patterns the session starts receiving (exact types or NATS wildcards). */
  readonly subscribe?: readonly string[];
  readonly unsubscribe?: readonly string[];
  /** Waitpoints the session waits on: stored as pending unless a row with the id exists already. */
  readonly waitpoints?: readonly WaitpointRecord[];
}

/** Where a waitpoint is: waiting for a value, or settled one of three ways. */
export type WaitpointState = 'pending' | 'completed' | 'cancelled' | 'timed-out';

/**
 * A durable waitpoint (table `waitpoints`, migration 0007): created pending by the commit that
 * puts its session in `waiting`, settled once by a compare-and-set that also queues the message
 * telling the session (an outbox row), so a crash between the two cannot lose or double it.
 */
export interface WaitpointRecord {
  /** 128 random bits, base64url: the capability. */
  readonly id: string;
  readonly sessionId: string;
  readonly agentType: string;
  readonly partition: number;
  readonly status: WaitpointState;
  /** JSON Schema of the value. */
  readonly schema: unknown;
  readonly hasDefault: boolean;
  readonly defaultValue: unknown;
  readonly tags: readonly string[];
  /** The settled value (null while pending). */
  readonly value: unknown;
  readonly createdAt: number;
  /** When it times out; null never. */
  readonly expiresAt: number | null;
  readonly settledAt: number | null;
}

/** Which waitpoints `listWaitpoints` returns, oldest first (by creation time, then id). */
export interface WaitpointQuery {
  /** Default `pending`; null: any status. */
  readonly status?: WaitpointState | null;
  readonly agentType?: string;
  readonly sessionId?: string;
  /** Holds this tag. */
  readonly tag?: string;
  /** Created at or before this time (ms): "older than" an age. */
  readonly createdBefore?: number;
  /** Cursor: strictly after this (createdAt, id). */
  readonly after?: { readonly createdAt: number; readonly id: string };
  readonly limit?: number;
}

/** How a settle call went: `settled` (this call won), or the row as it is (not pending, or absent). */
export type SettleOutcome =
  | { readonly kind: 'settled' }
  | { readonly kind: 'not-pending'; readonly record: WaitpointRecord }
  | { readonly kind: 'missing' };

/** A sleeping or waiting session whose deadline falls before a horizon. */
export interface DueWake {
  readonly sessionId: string;
  readonly wakeAt: number;
  readonly status: SessionStatus;
  readonly partition: number;
}

/** A cron task. */
export interface ScheduleRecord {
  readonly id: string;
  readonly sessionId: string;
  readonly partition: number;
  readonly task: unknown;
  readonly cron: string;
  readonly timezone: string;
  /** Null once the expression has no further firing. */
  readonly nextRunAt: number | null;
  readonly lastRunAt: number | null;
  readonly createdAt: number;
}

/** A batch that could not be processed, kept for inspection and replay. */
export interface DeadLetter {
  /** Deterministic id (e.g. `<sessionId>:<firstSeq>` or `nomatch:<seq>`), so a redelivery records it once. */
  readonly id: string;
  readonly sessionId: string;
  readonly reason: string;
  readonly error: string | null;
  readonly attempts: number;
  readonly payload: unknown;
  readonly createdAt: number;
  readonly replayedAt: number | null;
  /** The agent type of its session, when listed (null: the session has no row). */
  readonly agentType?: string | null;
}

/**
 * Which dead letters `listDeadLetters` returns, newest first (created_at, then id, descending).
 * Every filter is optional; `before` is the cursor of the previous page (its last row).
 */
export interface DeadLetterQuery {
  readonly sessionId?: string;
  readonly reason?: string;
  /** The agent type of the dead letter's session. */
  readonly agentType?: string;
  /** The tenant of the dead letter's session. */
  readonly tenant?: string;
  /** Created at or after (ms). */
  readonly since?: number;
  /** Created before (ms). */
  readonly until?: number;
  /** true: only replayed ones; false: only those never replayed. */
  readonly replayed?: boolean;
  /** Exclusive: rows after this one in newest-first order. */
  readonly before?: { readonly createdAt: number; readonly id: string };
  readonly limit?: number;
}

/** Which cron tasks `listSchedules` returns, oldest first (created_at, then id). */
export interface ScheduleQuery {
  readonly sessionId?: string;
  /** The tenant of the task's session. */
  readonly tenant?: string;
  /** Exclusive: rows after this one. */
  readonly after?: { readonly createdAt: number; readonly id: string };
  readonly limit?: number;
}

/** One tenant: its sessions by status (tenants with budget limits but no sessions have zeros). */
export interface TenantSummary {
  readonly tenant: string;
  readonly sessions: number;
  readonly byStatus: Readonly<Record<SessionStatus, number>>;
}

/**
 * Orders of the sessions list. Each ends in a unique tie-break, so keyset pages neither repeat
 * nor skip a row that did not change: `id`; `updatedAt` then id; `type` and `status` then newest
 * activity first, then id (descending reverses every part).
 */
export type SessionSort = 'id' | 'updatedAt' | 'type' | 'status';

/** Where a keyset page starts: the sort key of the last row of the previous page. */
export interface SessionCursor {
  readonly id: string;
  readonly updatedAt: number;
  readonly type: string;
  readonly status: string;
}

export interface ListSessionsQuery {
  readonly status?: SessionStatus;
  /** Any of these states (with `status`, both must hold). */
  readonly statuses?: readonly SessionStatus[];
  readonly type?: string;
  /** Only sessions of this tenant. */
  readonly tenant?: string;
  /** Only sessions carrying this tag (set at creation; see migration 0019). */
  readonly tag?: string;
  /** Substring of the session id (not indexed: a scan; prefer `idPrefix`). */
  readonly idContains?: string;
  /** Start of the session id (an index range; case-sensitive, no wildcards). */
  readonly idPrefix?: string;
  /** Last activity at or after this time (epoch ms). */
  readonly updatedAfter?: number;
  /** Last activity before this time (epoch ms). */
  readonly updatedBefore?: number;
  /** Default `id`, ascending. */
  readonly sort?: SessionSort;
  readonly desc?: boolean;
  /** Id sort only: the last id seen (the original cursor, kept for existing callers). */
  readonly after?: string;
  /** Any sort: the last row seen (wins over `after`). */
  readonly from?: SessionCursor;
  readonly limit?: number;
}

export interface SessionSummary {
  readonly id: string;
  readonly type: string;
  readonly status: SessionStatus;
  readonly wakeAt: number | null;
  readonly updatedAt: number;
  /** The session's tenant (set once, at creation); null when it has none. */
  readonly tenant: string | null;
  /** The session's tags (set once, at creation); empty when it has none. */
  readonly tags: readonly string[];
}

export interface MigrationResult {
  /** Migration versions applied by this call (empty when the schema was current). */
  readonly applied: readonly number[];
  readonly current: number;
}

/**
 * The durable store. Every method is one query or one transaction; backends must make
 * `commit` atomic over all its records (group commit relies on it).
 */
export interface Store {
  readonly kind: 'pg' | 'pglite' | 'memory';
  /** Applies pending migrations under an advisory lock; throws `SchemaTooNewError` for a newer schema. */
  migrate(): Promise<MigrationResult>;
  /** Cheap round trip used by readiness checks. */
  ping(): Promise<void>;
  /**
   * The database server's clock (epoch ms), read in one round trip: the runtime's time authority
   * when several nodes share a Postgres (runtime/storeClock.ts). Absent where the store runs in
   * this process (PGlite, memory), whose clock is this node's own.
   */
  serverNow?(): Promise<number>;
  loadSession(id: string): Promise<SessionRecord | null>;
  /**
   * Hydration reads for many sessions in one query however many ids: each stored session of
   * `ids` with its newest history (newest first, exactly as `getHistory`), `historyLimit` rows
   * per session or per its type (capped at 1000, as `getHistory`). Ids with no session are
   * absent from the map.
   * @example
   * const loaded = await store.loadSessions(ids, { byType: { support: 200 }, fallback: 50 });
   */
  loadSessions(ids: readonly string[], historyLimit: HistoryLimit): Promise<Map<string, LoadedSession>>;
  /**
   * Commits records in one transaction, in order (a session may appear more than once).
   * Throws `StaleVersionError` (and commits nothing) when a session's stored version is not
   * the one a record expects, or `FencedError` when its stored owner epoch is newer.
   */
  commit(records: readonly CommitRecord[]): Promise<void>;
  /**
   * Records that `node` owns `partition` under fencing `epoch` (its lease revision), so commits
   * of older epochs are refused from now on. Waits (up to `lockTimeoutMs`, then throws) for
   * transactions that checked the older epoch to end. False when a newer epoch is recorded.
   */
  claimPartition(partition: number, epoch: number, node: string, lockTimeoutMs: number): Promise<boolean>;
  /**
   * The highest inbox stream sequence any stored session has applied (`last_seq`; 0 for none):
   * an inbox stream the runtime has to create again starts past it, or sessions would skip its
   * first messages as already applied.
   */
  maxLastSeq(): Promise<number>;
  /**
   * The highest partition epoch ever claimed (0 for none): a lease bucket the runtime has to
   * create again (deleted, or a nats-server whose store was wiped) starts its revisions past it,
   * or every new lease's epoch would be refused as older than the one recorded.
   */
  maxPartitionEpoch(): Promise<number>;
  /**
   * A durable mark of the runtime by key (the event router's floor: runtime/wakeups.ts), or null
   * when never saved. Marks outlive what NATS keeps of them (a consumer deleted while every node
   * was down).
   */
  loadMark(key: string): Promise<unknown>;
  /** Saves a mark (the last write wins: its writers save what they read from NATS, which only moves on). */
  saveMark(key: string, value: unknown): Promise<void>;
  /** Newest first; `before` is an exclusive upper bound on `seq`. */
  getHistory(sessionId: string, opts?: { limit?: number; before?: number }): Promise<HistoryEntry[]>;
  /** Oldest first. */
  getTransitions(sessionId: string, opts?: { limit?: number; after?: number; frames?: boolean }): Promise<TransitionRecord[]>;
  /**
   * One transition of a session with what it recorded of the session (frame, user state) and the
   * same of the step before it, for time travel; null when the session has no transition `id`
   * (never written, or pruned by retention).
   */
  getSessionStep(sessionId: string, id: number): Promise<SessionStep | null>;
  listSessions(query?: ListSessionsQuery): Promise<SessionSummary[]>;
  /**
   * How many sessions match `query`'s filters, counting no further than `cap` (so a count never
   * reads more than `cap` index entries however large the fleet).
   */
  countSessions(query: ListSessionsQuery, cap: number): Promise<number>;
  countSessionsByStatus(): Promise<Record<SessionStatus, number>>;
  /** Ignores a dead letter whose id already exists. */
  addDeadLetter(dl: DeadLetter): Promise<void>;
  /** Newest first, filtered, with each row's `agentType`; `limit` defaults to 100, at most 1000. */
  listDeadLetters(opts?: DeadLetterQuery): Promise<DeadLetter[]>;
  getDeadLetter(id: string): Promise<DeadLetter | null>;
  markDeadLetterReplayed(id: string, at: number): Promise<void>;
  /** Deletes these dead letters; returns the ids that existed (so a repeated call deletes nothing and says so). */
  deleteDeadLetters(ids: readonly string[]): Promise<string[]>;
  /**
   * Tenants in name order after `after`: every tenant of a stored session or with budget limits
   * set, with its session counts by status. `limit` defaults to 100, at most 1000.
   */
  listTenants(opts?: { after?: string; limit?: number }): Promise<TenantSummary[]>;
  /**
   * Outbox rows committed but not yet confirmed published, oldest first (published again after a
   * crash, a NATS outage or an ambiguous commit). `partitions`: only rows of sessions in these
   * partitions, and rows whose session has no row (a cron firing for a session not created yet);
   * `createdBefore`: only rows created before this time (ms).
   */
  pendingOutbox(limit: number, opts?: PendingOutboxQuery): Promise<OutboxRecord[]>;
  deleteOutbox(ids: readonly string[]): Promise<void>;
  /** Sleeping/waiting sessions due in [`from`, `before`) (and `active` ones carrying a wake: see selectDueWakes), oldest first; `partitions` null means all. */
  dueWakes(partitions: readonly number[] | null, before: number, limit: number, from?: number): Promise<DueWake[]>;
  /** Sessions an event of `type` goes to: sleepers/waiters listing it and subscribers (not stopped ones). */
  eventRecipients(type: string): Promise<string[]>;
  /** Inserts a schedule; throws when the id exists. */
  addSchedule(s: ScheduleRecord): Promise<void>;
  /** True when a schedule was removed. */
  deleteSchedule(id: string): Promise<boolean>;
  getSchedule(id: string): Promise<ScheduleRecord | null>;
  /** Oldest first (created_at, id); `limit` defaults to 1000, at most 10,000. */
  listSchedules(opts?: ScheduleQuery): Promise<ScheduleRecord[]>;
  /** Schedules due in [`from`, `before`); `partitions` null means all. */
  dueSchedules(partitions: readonly number[] | null, before: number, limit: number, from?: number): Promise<ScheduleRecord[]>;
  /**
   * Records a firing atomically: moves `next_run_at` from `expectedNextRunAt` to `nextRunAt` and
   * writes the outbox row that delivers it (none: a skipped firing). False (nothing written) when another firing won.
   */
  fireSchedule(id: string, expectedNextRunAt: number, nextRunAt: number | null, firedAt: number, outbox: OutboxRecord | null): Promise<boolean>;
  getWaitpoint(id: string): Promise<WaitpointRecord | null>;
  /**
   * Settles a pending waitpoint: one transaction moves it from `pending` to `status` with `value`
   * and inserts `outbox` (the message to its session), so the settlement and its delivery are
   * stored together. `beforeExpiry`: only while its expiry has not passed at `at` (completion and
   * cancellation; a timeout settles at or after it). Anything else writes nothing.
   */
  settleWaitpoint(id: string, status: Exclude<WaitpointState, 'pending'>, value: unknown, at: number, beforeExpiry: boolean, outbox: OutboxRecord): Promise<SettleOutcome>;
  listWaitpoints(query?: WaitpointQuery): Promise<WaitpointRecord[]>;
  /** A session's log entries with id above `afterId`, oldest first; `limit` is capped at 1000. */
  readLog(sessionId: string, afterId: number, limit: number): Promise<SessionLogEntry[]>;
  /** Id of the session's newest log entry (0: none): where a stream that wants only new entries starts. */
  lastLogId(sessionId: string): Promise<number>;
  /** Highest log id of the session that retention removed (0: none): a reader that saw less missed entries. */
  logPrunedThrough(sessionId: string): Promise<number>;
  /**
   * Applies log retention now and returns how many entries it removed. Stores also do this on
   * their own about once a minute (24 h, 1000 per session), for the sessions they committed.
   */
  pruneLog(opts: LogPruneOptions): Promise<number>;
  /**
   * The newest checkpoint at or before a point (`{ seq }`: last_seq at most seq, and seq not past
   * what the session applied; `{ transition }`: the commit that wrote that stored transition), or
   * null when the point is not recorded (pruned by retention, coalesced, or never reached).
   */
  getCheckpoint(sessionId: string, at: CheckpointPoint): Promise<Checkpoint | null>;
  /**
   * Which agent types' sessions get checkpoints from now on: `record` are added, `skip` removed
   * (each node calls it at start with its registered types). Recording is off for other types.
   */
  setCheckpointTypes(record: readonly string[], skip: readonly string[]): Promise<void>;
  /** A session's newest `limit` checkpoints (default 100, at most 1000), oldest first. */
  listCheckpoints(sessionId: string, limit?: number): Promise<Checkpoint[]>;
  /** Deletes history and transitions beyond a retention (see PastPruneOptions); returns the rows deleted. Transition bounds also bound checkpoints. */
  prunePast(opts: PastPruneOptions): Promise<{ history: number; transitions: number }>;
  /**
   * Ids of sessions of `type` in `partitions` not changed since `updatedBefore`, in id order after
   * `afterId`: the idle sessions an age-bounded retention visits (they commit nothing that would).
   */
  idleSessions(type: string, partitions: readonly number[], updatedBefore: number, afterId: string | null, limit: number): Promise<string[]>;
  /**
   * Sessions with their snapshots in id order after `afterId` (null: from the start), at most
   * `limit` (capped at 1000), optionally of one `type`: how `agentry migrate` streams every
   * stored snapshot in pages with bounded memory.
   */
  pageSessions(afterId: string | null, limit: number, type?: string): Promise<SessionRecord[]>;
  /**
   * Replaces a session's snapshot (an eager migration) only while its row still holds
   * `expectedVersion`, and moves the version on by one, so a live owner's next commit (which
   * expects the old version) is refused and its session re-hydrates from the new snapshot.
   * Keeps `updated_at` (a migration is no activity). False when the row moved on (or is gone).
   */
  replaceSnapshot(id: string, expectedVersion: number, snapshot: unknown): Promise<boolean>;
  /**
   * Deletes a stopped session and everything stored under its id (history, transitions,
   * subscriptions, schedules, waitpoints, log, checkpoints) in one transaction, only while the row is
   * `stopped`, still holds `expectedVersion` and has no unpublished outbox row. Dead letters stay.
   * False (nothing deleted) otherwise.
   */
  purgeSession(id: string, expectedVersion: number): Promise<boolean>;
  /**
   * Budgets (migration 0009, persistence/budget.ts). A reservation checks every limit of
   * `checks` against the scopes' usage and writes `entry` only when none that blocks would
   * break, under a lock per scope; an existing id is `reused` (a re-run turn), never counted twice.
   */
  reserveBudget(r: BudgetReserveRequest): Promise<BudgetReserveOutcome>;
  /** Settles a reservation with the actual amounts (settling again replaces them); false when no row has the id. */
  settleBudget(id: string, actual: BudgetAmounts, at: number): Promise<boolean>;
  /** Writes metered turns and direct records; an existing id takes the new amounts. */
  recordBudget(entries: readonly BudgetEntry[]): Promise<void>;
  /** A session's or tenant's sums from each window start on. */
  budgetUsage(scope: 'session' | 'tenant', key: string, windowStarts: readonly number[]): Promise<BudgetUsage[]>;
  /** Every limit set stored by setBudget. */
  listBudgetLimits(): Promise<{ scope: BudgetScope; key: string; limits: BudgetLimitSpec[]; updatedAt: number }[]>;
  /** Replaces a scope's limits (null removes them). */
  setBudgetLimits(scope: BudgetScope, key: string, limits: readonly BudgetLimitSpec[] | null, at: number): Promise<void>;
  /** True the first time `key` is marked: a warning is published once per limit and window. */
  markBudgetWarning(key: string, at: number): Promise<boolean>;
  /** Sessions a budget breach holds (paused or asking), filtered by id, tenant or type. */
  budgetHeldSessions(filter: { sessionId?: string; tenant?: string; type?: string }): Promise<BudgetHeldSession[]>;
  /**
   * Folds up to `max` closed ledger rows (settled, metered) older than `before` into one lifetime
   * row per session (id `.rollup:<session>`, `at` 0), so the ledger does not grow with every turn
   * for ever; usage of every window starting after `before` is unchanged. Returns the rows folded.
   */
  compactBudgetLedger(before: number, max: number): Promise<number>;
  /** Spend per tenant since `since` (ms), the most expensive first. */
  tenantSpend(since: number, limit: number): Promise<{ tenant: string; totals: Record<BudgetMetric, string> }[]>;
  close(): Promise<void>;
}

