/**
 * Owns the store contract on top of SQL: the single implementation behind both the `pg` and
 * the PGlite backend (they differ only in the `SqlDb` adapter they pass in).
 */
import { commitDocument, commitRecords } from './commitQuery.js';
import { FencedError, StaleVersionError, StoreBatchTooLargeError, StoreDataError } from './errors.js';
import { historyLimitForSql } from './historyLimit.js';
import { migrate } from './migrate.js';
import * as sql from './queries.js';
import { num } from './queries.js';
import { stepOf } from './sessionStep.js';
import { LOG_MAX_AGE_MS, LOG_MAX_PER_SESSION, LOG_PRUNE_EVERY_MS } from './sessionLog.js';
import * as lq from './sessionLogQueries.js';
import * as wq from './wakeQueries.js';
import * as wpq from './waitpointQueries.js';
import * as bq from './budgetQueries.js';
import type { SessionWrite } from './queries.js';
import type { SqlDb } from './sqlDb.js';
import * as cq from './checkpoints.js';
import { CHECKPOINTS_PER_SESSION } from './checkpoints.js';
import type { CommitRecord, LoadedSession, LogPruneOptions, SessionStatus, Store } from './types.js';

export interface SqlStoreOptions {
  /** Schema the adapter's search_path points at; created by `migrate()` when missing. */
  readonly schema?: string;
  /** Clock for created_at/updated_at (ms), injectable like the memory store's. */
  readonly now?: () => number;
  /** How often (wall clock) commits trigger session-log retention; 0 turns it off. Default 60 s. */
  readonly logPruneEveryMs?: number;
}

const STATUSES: readonly SessionStatus[] = ['idle', 'active', 'sleeping', 'waiting', 'stopped'];

/**
 * Builds a `Store` over any `SqlDb`, so Postgres and PGlite share every query and every
 * commit rule. `commit` is one statement (`commitQuery.ts`): a stale version or a fenced epoch
 * anywhere in the batch writes none of it.
 */
export function createSqlStore(db: SqlDb, kind: 'pg' | 'pglite', opts: SqlStoreOptions = {}): Store {
  const now = opts.now ?? Date.now;
  const pruneLog = async (o: LogPruneOptions): Promise<number> => {
    let n = 0;
    for (;;) {
      const k = await lq.deleteSessionLogOlderThan(db, o.before, 10_000);
      n += k;
      if (k < 10_000) break;
    }
    for (let i = 0; i < o.sessionIds.length; i += 1000) {
      n += await lq.deleteSessionLogBeyond(db, o.sessionIds.slice(i, i + 1000), o.keepPerSession);
      // The flight recorder's default bound rides on the same pass (the sessions commits touched).
      await cq.deleteCheckpointsBeyond(db, o.sessionIds.slice(i, i + 1000), CHECKPOINTS_PER_SESSION, null);
    }
    return n;
  };
  const retention = createLogRetention(pruneLog, now, opts.logPruneEveryMs ?? LOG_PRUNE_EVERY_MS);
  return {
    kind,
    migrate: () => migrate(db, { schema: opts.schema, now }),
    async ping() {
      await db.query('SELECT 1');
    },
    serverNow: () => sql.selectServerClock(db),
    async loadSession(id) {
      const row = await sql.selectSession(db, id);
      return row && sql.toSessionRecord(row);
    },
    async loadSessions(ids, historyLimit) {
      const out = new Map<string, LoadedSession>();
      const { byType, fallback } = historyLimitForSql(historyLimit);
      if (ids.length === 0) return out;
      for (const row of await sql.selectSessionsWithHistory(db, ids, byType, fallback)) {
        out.set(row.id, { record: sql.toSessionRecord(row), history: sql.toHistoryEntries(row.id, row.history) });
      }
      return out;
    },
    async commit(records) {
      if (records.length === 0) return;
      // One statement, its own transaction (migration 0005): fencing under a share lock held to
      // its end, every check before any write, so a failed check leaves nothing written.
      const doc = boundedCommitDocument(records);
      const outcome = await commitRecords(db, doc, now());
      if (outcome.kind === 'fenced') throw firstFenced(records, outcome.epochs) ?? new FencedError(records[0]!.sessionId, records[0]!.ownerEpoch);
      if (outcome.kind === 'conflict') throw firstConflict(records, outcome.versions);
      retention.committed(doc.logged);
    },
    async claimPartition(partition, epoch, node, lockTimeoutMs) {
      return db.transaction(async (tx) => {
        await tx.exec(`SET LOCAL lock_timeout = ${Math.max(1, Math.floor(lockTimeoutMs))}`);
        return sql.upsertPartitionEpoch(tx, partition, epoch, node, now());
      });
    },
    maxLastSeq: () => sql.selectMaxLastSeq(db),
    maxPartitionEpoch: () => sql.selectMaxPartitionEpoch(db),
    async loadMark(key) {
      const { rows } = await db.query<{ value: unknown }>('SELECT value FROM runtime_marks WHERE key = $1::text', [key]);
      return rows[0]?.value ?? null;
    },
    async saveMark(key, value) {
      await db.query(
        `INSERT INTO runtime_marks (key, value, updated_at) VALUES ($1::text, $2::text::jsonb, $3::bigint)
         ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = EXCLUDED.updated_at`,
        [key, JSON.stringify(value), now()],
      );
    },
    async getHistory(sessionId, opts = {}) {
      const rows = await sql.selectHistory(db, sessionId, opts.before ?? null, clampLimit(opts.limit, 100, 1000));
      return rows.map(sql.toHistoryEntry);
    },
    async getTransitions(sessionId, opts = {}) {
      const rows = await sql.selectTransitions(db, sessionId, opts.after ?? null, clampLimit(opts.limit, 1000, 10_000), opts.frames === true);
      return rows.map(sql.toTransitionRecord);
    },
    async getSessionStep(sessionId, id) {
      const rows = await sql.selectStepAndPrevious(db, sessionId, id);
      const step = rows[0];
      if (!step || num(step.id!) !== id) return null;
      const prev = rows[1];
      const states = (await sql.selectUserStatesUpTo(db, sessionId, id)).map((r) => ({ value: r.user_state, transitionId: num(r.id) }));
      return stepOf(sql.toTransitionRecord(step), step.frame ?? null, prev ? { transition: sql.toTransitionRecord(prev), frame: prev.frame ?? null } : null, states);
    },
    async listSessions(query = {}) {
      const rows = await sql.selectSessionSummaries(db, query, clampLimit(query.limit, 100, 1000));
      return rows.map(sql.toSessionSummary);
    },
    countSessions(query, cap) {
      return sql.countSessionsMatching(db, query, Math.max(0, Math.min(Math.trunc(cap), 1_000_000)));
    },
    async countSessionsByStatus() {
      const counts = Object.fromEntries(STATUSES.map((s) => [s, 0])) as Record<SessionStatus, number>;
      for (const { status, n } of await sql.countSessionsGroupedByStatus(db)) {
        if (status in counts) counts[status as SessionStatus] = n;
      }
      return counts;
    },
    async addDeadLetter(dl) {
      await sql.insertDeadLetter(db, dl);
    },
    async listDeadLetters(opts = {}) {
      const rows = await sql.selectDeadLetters(db, opts, clampLimit(opts.limit, 100, 1000));
      return rows.map((r) => ({ ...sql.toDeadLetter(r), agentType: r.agent_type }));
    },
    async getDeadLetter(id) {
      const row = await sql.selectDeadLetter(db, id);
      return row && sql.toDeadLetter(row);
    },
    async markDeadLetterReplayed(id, at) {
      await sql.updateDeadLetterReplayed(db, id, at);
    },
    deleteDeadLetters: (ids) => sql.deleteDeadLettersByIds(db, ids),
    async listTenants(opts = {}) {
      const rows = await sql.selectTenants(db, opts.after ?? null, clampLimit(opts.limit, 100, 1000));
      return rows.map((r) => {
        const byStatus = { idle: r.idle, active: r.active, sleeping: r.sleeping, waiting: r.waiting, stopped: r.stopped };
        return { tenant: r.tenant, sessions: r.idle + r.active + r.sleeping + r.waiting + r.stopped, byStatus };
      });
    },
    async pendingOutbox(limit, opts = {}) {
      const rows = await sql.selectPendingOutbox(db, clampLimit(limit, 100, 10_000), opts.partitions ?? null, opts.createdBefore ?? null);
      return rows.map(sql.toOutboxRecord);
    },
    async deleteOutbox(ids) {
      await sql.deleteOutboxByIds(db, ids);
    },
    dueWakes: (partitions, before, limit, from) => wq.selectDueWakes(db, partitions, before, limit, from ?? null),
    eventRecipients: (type) => wq.selectEventRecipients(db, type),
    addSchedule: (sched) => wq.insertSchedule(db, sched),
    deleteSchedule: (id) => wq.deleteScheduleById(db, id),
    getSchedule: (id) => wq.selectSchedule(db, id),
    listSchedules: (o = {}) => wq.selectSchedules(db, o, clampLimit(o.limit, 1000, 10_000)),
    dueSchedules: (partitions, before, limit, from) => wq.selectDueSchedules(db, partitions, before, limit, from ?? null),
    fireSchedule(id, expected, next, firedAt, outbox) {
      return db.transaction(async (tx) => {
        if (!(await wq.advanceSchedule(tx, id, expected, next, firedAt))) return false;
        if (outbox) await sql.insertOutbox(tx, [outbox]);
        return true;
      });
    },
    getWaitpoint: (id) => wpq.selectWaitpoint(db, id),
    settleWaitpoint(id, status, value, at, beforeExpiry, outbox) {
      return db.transaction(async (tx) => {
        if (await wpq.updateWaitpointSettled(tx, id, status, value, at, beforeExpiry)) {
          await sql.insertOutbox(tx, [outbox]);
          return { kind: 'settled' as const };
        }
        const record = await wpq.selectWaitpoint(tx, id);
        return record ? { kind: 'not-pending' as const, record } : { kind: 'missing' as const };
      });
    },
    listWaitpoints: (query = {}) => wpq.selectWaitpoints(db, query, clampLimit(query.limit, 100, 1000)),
    async readLog(sessionId, afterId, limit) {
      const rows = await lq.selectSessionLog(db, sessionId, Number.isFinite(afterId) ? Math.max(0, Math.floor(afterId)) : 0, clampLimit(limit, 100, 1000));
      return rows.map(lq.toSessionLogEntry);
    },
    lastLogId: (sessionId) => lq.selectLastLogId(db, sessionId),
    logPrunedThrough: (sessionId) => lq.selectLogPrunedThrough(db, sessionId),
    pruneLog,
    setCheckpointTypes: (record, skip) => cq.updateCheckpointTypes(db, record, skip),
    getCheckpoint: (sessionId, at) => cq.selectCheckpoint(db, sessionId, at),
    listCheckpoints: (sessionId, limit) => cq.selectCheckpoints(db, sessionId, clampLimit(limit, 100, 1000)),
    async prunePast(o) {
      let history = 0;
      let transitions = 0;
      for (let i = 0; i < o.sessionIds.length; i += 500) {
        const ids = o.sessionIds.slice(i, i + 500);
        if (o.history) history += await sql.deleteHistoryBeyond(db, ids, o.historyFloor, o.history.maxCount ?? null, o.history.before ?? null);
        if (o.transitions) {
          transitions += await sql.deleteTransitionsBeyond(db, ids, o.transitions.maxCount ?? null, o.transitions.before ?? null);
          await cq.deleteCheckpointsBeyond(db, ids, o.transitions.maxCount ?? null, o.transitions.before ?? null);
        }
      }
      return { history, transitions };
    },
    idleSessions: (type, partitions, updatedBefore, afterId, limit) =>
      (partitions.length === 0 ? Promise.resolve([]) : sql.selectIdleSessions(db, type, partitions, updatedBefore, afterId, clampLimit(limit, 500, 10_000))),
    pageSessions: async (afterId, limit, type) =>
      (await sql.selectSessionPage(db, afterId, clampLimit(limit, 100, 1000), type ?? null)).map(sql.toSessionRecord),
    replaceSnapshot: (id, expectedVersion, snapshot) => sql.updateSnapshotIfVersion(db, id, expectedVersion, snapshot),
    purgeSession: (id, expectedVersion) => db.transaction(async (tx) => {
      if (!(await sql.deleteStoppedSession(tx, id, expectedVersion))) return false;
      await sql.deleteSessionData(tx, id);
      return true;
    }),
    reserveBudget: (r) => bq.reserveBudget(db, r),
    settleBudget: (id, actual, at) => bq.updateBudgetSettled(db, id, actual, at),
    recordBudget: (entries) => bq.upsertBudgetEntries(db, entries),
    budgetUsage: (scope, key, starts) => bq.selectBudgetUsage(db, scope, key, starts),
    listBudgetLimits: () => bq.selectBudgetLimits(db),
    setBudgetLimits: (scope, key, limits, at) => bq.upsertBudgetLimits(db, scope, key, limits, at),
    markBudgetWarning: (key, at) => bq.insertBudgetWarning(db, key, at),
    budgetHeldSessions: (f) => bq.selectBudgetHeld(db, f),
    compactBudgetLedger: (before, max) => bq.compactBudgetLedger(db, before, max),
    tenantSpend: (since, limit) => bq.selectTenantSpend(db, since, clampLimit(limit, 100, 1000)),
    async close() {
      await retention.close();
      await db.close();
    },
  };
}

/**
 * Session-log retention driven by commits: remembers which sessions got log rows and, at most
 * once per `everyMs` (wall clock), prunes in the background: entries older than 24 h (store
 * clock) and all but the newest 1000 of those sessions. Outside the commit transaction, so a
 * commit never waits for it; a failure is retried at the next interval.
 */
function createLogRetention(prune: (o: LogPruneOptions) => Promise<number>, now: () => number, everyMs: number): {
  committed(sessionIds: readonly string[]): void;
  close(): Promise<void>;
} {
  const touched = new Set<string>();
  let last = Date.now();
  let running: Promise<void> | null = null;
  let closed = false;
  return {
    committed(sessionIds) {
      if (everyMs <= 0 || closed) return;
      for (const id of sessionIds) touched.add(id);
      if (running || Date.now() - last < everyMs) return;
      last = Date.now();
      const ids = [...touched];
      touched.clear();
      running = prune({ before: now() - LOG_MAX_AGE_MS, keepPerSession: LOG_MAX_PER_SESSION, sessionIds: ids })
        .then(() => undefined, () => { for (const id of ids) touched.add(id); })
        .finally(() => { running = null; });
    },
    async close() {
      closed = true;
      await running;
    },
  };
}

/**
 * Collapses the records into one write per session (its last record), checked against the
 * version and epoch the session's first record expects. Returns null when records for one
 * session do not follow each other (version gap, falling epoch): that batch cannot commit.
 */
export function planSessionWrites(records: readonly CommitRecord[]): SessionWrite[] | null {
  const bySession = new Map<string, SessionWrite>();
  for (const r of records) {
    const prev = bySession.get(r.sessionId);
    if (prev) {
      if (r.version !== prev.record.version + 1 || r.ownerEpoch < prev.record.ownerEpoch) return null;
      bySession.set(r.sessionId, { ...prev, record: r });
    } else {
      bySession.set(r.sessionId, { record: r, expectedVersion: r.version - 1, checkEpoch: r.ownerEpoch });
    }
  }
  // Id order, so concurrent commits touching the same sessions lock rows in the same order.
  return [...bySession.values()].sort((a, b) => (a.record.sessionId < b.record.sessionId ? -1 : 1));
}

/**
 * Replays the memory store's checks over the stored versions to name the first failing
 * record. Stale is checked before fenced, as there. If nothing fails any more (the rows changed
 * after the check that refused the batch), the batch is still reported stale: it did not commit.
 */
export function firstConflict(
  records: readonly CommitRecord[], stored: ReadonlyMap<string, { version: number; ownerEpoch: number }>,
): StaleVersionError | FencedError {
  const cur = new Map(stored);
  for (const r of records) {
    const c = cur.get(r.sessionId);
    if ((c?.version ?? 0) !== r.version - 1) return new StaleVersionError(r.sessionId, r.version - 1);
    if (c && c.ownerEpoch > r.ownerEpoch) return new FencedError(r.sessionId, r.ownerEpoch);
    cur.set(r.sessionId, { version: r.version, ownerEpoch: r.ownerEpoch });
  }
  const first = records[0]!;
  return new StaleVersionError(first.sessionId, first.version - 1);
}

/** The first record whose partition has a newer recorded epoch than the record's own, as a `FencedError`. */
export function firstFenced(records: readonly CommitRecord[], epochs: ReadonlyMap<number, number>): FencedError | null {
  for (const r of records) {
    const e = epochs.get(r.partition);
    if (e !== undefined && e > r.ownerEpoch) return new FencedError(r.sessionId, r.ownerEpoch);
  }
  return null;
}

/** Missing or nonsensical limits fall back to the default; large ones are capped. */
function clampLimit(limit: number | undefined, fallback: number, max: number): number {
  if (limit === undefined || !Number.isFinite(limit)) return fallback;
  return Math.max(0, Math.min(max, Math.floor(limit)));
}

/**
 * Most characters of one commit document with more than one record (64 Mi: about 64 MB of
 * JSON). Larger ones are split by the committer. A backlog of sessions with megabytes of state
 * each made documents of hundreds of MB: a commit past the 15 s query deadline, tried again
 * whole at every retry (200 sessions of 1.5 MB: 70 commits in 4 minutes, readiness down);
 * past V8's longest string (~512 MB) one could not even be built.
 */
export const MAX_COMMIT_DOCUMENT_CHARS = 64 * 1024 * 1024;

/** The commit document of `records`, or the error that makes the committer split them (or refuses one record as data). */
function boundedCommitDocument(records: readonly CommitRecord[]): ReturnType<typeof commitDocument> {
  let doc: ReturnType<typeof commitDocument>;
  try {
    doc = commitDocument(records, planSessionWrites(records));
  } catch (err) {
    if (!(err instanceof RangeError) || !/Invalid string length/i.test(err.message)) throw err;
    if (records.length > 1) throw new StoreBatchTooLargeError(`a commit of ${records.length} records is too large to build as one document`, { cause: err });
    throw new StoreDataError(`session ${records[0]!.sessionId}'s commit is too large to store (its state and outputs exceed ~512 MB as JSON)`, { cause: err });
  }
  if (records.length > 1 && doc.json.length > MAX_COMMIT_DOCUMENT_CHARS) {
    throw new StoreBatchTooLargeError(`a commit of ${records.length} records is ${Math.round(doc.json.length / 1048576)} MB as JSON (at most ${MAX_COMMIT_DOCUMENT_CHARS / 1048576} MB per batch)`);
  }
  return doc;
}
