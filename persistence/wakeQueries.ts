/**
 * Owns the SQL of wake-ups: due sleep/wait deadlines (sessions.wake_at), event recipients
 * (sleepers/waiters listing a type, and subscriptions) and cron schedules. One function per
 * statement, explicit casts, PG 15 features only (as in queries.ts).
 */
import { isWildcard, patternMatches } from './patterns.js';
import { json, num, numOrNull, type Int8 } from './queries.js';
import type { Queryable } from './sqlDb.js';
import type { DueWake, OutboxRecord, ScheduleQuery, ScheduleRecord, SessionStatus } from './types.js';

interface DueWakeRow { id: string; wake_at: Int8; status: string; partition: number }
interface ScheduleRow {
  id: string; session_id: string; partition: number; task: unknown; cron: string; timezone: string;
  next_run_at: Int8 | null; last_run_at: Int8 | null; created_at: Int8;
}

const SCHEDULE_COLUMNS = 'id, session_id, partition, task, cron, timezone, next_run_at, last_run_at, created_at';

export function toSchedule(r: ScheduleRow): ScheduleRecord {
  return {
    id: r.id, sessionId: r.session_id, partition: r.partition, task: r.task, cron: r.cron, timezone: r.timezone,
    nextRunAt: numOrNull(r.next_run_at), lastRunAt: numOrNull(r.last_run_at), createdAt: num(r.created_at),
  };
}

/**
 * Sleeping/waiting sessions whose deadline is in [`from`, `before`), and `active` ones whose run
 * carries a wake or deferred mail (their wake time is the run's commit: resumed if it never ends), (served by
 * sessions_wake_at_idx), ordered by (wake_at, id) so that a reader paging from the last
 * deadline it read sees rows of one deadline in a stable order.
 */
export async function selectDueWakes(q: Queryable, partitions: readonly number[] | null, before: number, limit: number, from: number | null): Promise<DueWake[]> {
  const { rows } = await q.query<DueWakeRow>(
    `SELECT id, wake_at, status, partition FROM sessions
     WHERE wake_at IS NOT NULL AND wake_at < $1::bigint AND status IN ('sleeping', 'waiting', 'active')
       AND ($2::integer[] IS NULL OR partition = ANY($2::integer[]))
       AND ($4::bigint IS NULL OR wake_at >= $4::bigint)
     ORDER BY wake_at, id LIMIT $3::integer`,
    [before, partitions, limit, from],
  );
  return rows.map((r) => ({ sessionId: r.id, wakeAt: num(r.wake_at), status: r.status as SessionStatus, partition: r.partition }));
}

/** Sessions an event reaches: sleepers/waiters listing the type, exact and wildcard subscribers. */
export async function selectEventRecipients(q: Queryable, type: string): Promise<string[]> {
  const { rows } = await q.query<{ id: string }>(
    `SELECT id FROM sessions WHERE wake_events @> ARRAY[$1::text] AND status IN ('sleeping', 'waiting')
     UNION
     SELECT e.session_id FROM event_subscriptions e JOIN sessions s ON s.id = e.session_id
     WHERE e.pattern = $1::text AND NOT e.wildcard AND s.status <> 'stopped'`,
    [type],
  );
  const ids = new Set(rows.map((r) => r.id));
  const wild = await q.query<{ session_id: string; pattern: string }>(
    `SELECT e.session_id, e.pattern FROM event_subscriptions e JOIN sessions s ON s.id = e.session_id
     WHERE e.wildcard AND s.status <> 'stopped'`,
  );
  for (const r of wild.rows) if (patternMatches(r.pattern, type)) ids.add(r.session_id);
  return [...ids].sort();
}

/** A subscription a commit adds or removes, as a row of the commit document's `subscribe` / `unsubscribe`. */
export function toSubscriptionParam(sessionId: string, pattern: string): Record<string, unknown> {
  return { session_id: sessionId, pattern, wildcard: isWildcard(pattern) };
}

export async function insertSchedule(q: Queryable, s: ScheduleRecord): Promise<void> {
  await q.query(
    `INSERT INTO schedules (${SCHEDULE_COLUMNS})
     VALUES ($1::text, $2::text, $3::integer, $4::text::jsonb, $5::text, $6::text, $7::bigint, $8::bigint, $9::bigint)`,
    [s.id, s.sessionId, s.partition, json(s.task), s.cron, s.timezone, s.nextRunAt, s.lastRunAt, s.createdAt],
  );
}

export async function deleteScheduleById(q: Queryable, id: string): Promise<boolean> {
  const { rows } = await q.query<{ id: string }>('DELETE FROM schedules WHERE id = $1::text RETURNING id', [id]);
  return rows.length > 0;
}

export async function selectSchedule(q: Queryable, id: string): Promise<ScheduleRecord | null> {
  const { rows } = await q.query<ScheduleRow>(`SELECT ${SCHEDULE_COLUMNS} FROM schedules WHERE id = $1::text`, [id]);
  return rows[0] ? toSchedule(rows[0]) : null;
}

/** Oldest first (created_at, id), of one session or tenant, after a cursor row. */
export async function selectSchedules(q: Queryable, query: ScheduleQuery, limit: number): Promise<ScheduleRecord[]> {
  const { rows } = await q.query<ScheduleRow>(
    `SELECT ${SCHEDULE_COLUMNS.split(', ').map((c) => `c.${c}`).join(', ')} FROM schedules c
     WHERE ($1::text IS NULL OR c.session_id = $1::text)
       AND ($2::text IS NULL OR EXISTS (SELECT 1 FROM sessions s WHERE s.id = (c.session_id COLLATE "C") AND s.tenant = $2::text))
       AND ($3::bigint IS NULL OR (c.created_at, c.id) > ($3::bigint, $4::text))
     ORDER BY c.created_at, c.id LIMIT $5::integer`,
    [query.sessionId ?? null, query.tenant ?? null, query.after?.createdAt ?? null, query.after?.id ?? null, limit],
  );
  return rows.map(toSchedule);
}

/** Schedules due in [`from`, `before`), ordered by (next_run_at, id) for stable paging. */
export async function selectDueSchedules(q: Queryable, partitions: readonly number[] | null, before: number, limit: number, from: number | null): Promise<ScheduleRecord[]> {
  const { rows } = await q.query<ScheduleRow>(
    `SELECT ${SCHEDULE_COLUMNS} FROM schedules
     WHERE next_run_at IS NOT NULL AND next_run_at < $1::bigint
       AND ($2::integer[] IS NULL OR partition = ANY($2::integer[]))
       AND ($4::bigint IS NULL OR next_run_at >= $4::bigint)
     ORDER BY next_run_at, id LIMIT $3::integer`,
    [before, partitions, limit, from],
  );
  return rows.map(toSchedule);
}

/** Compare-and-set of next_run_at; true when this firing won. */
export async function advanceSchedule(q: Queryable, id: string, expected: number, next: number | null, firedAt: number): Promise<boolean> {
  const { rows } = await q.query<{ id: string }>(
    `UPDATE schedules SET next_run_at = $3::bigint, last_run_at = $4::bigint
     WHERE id = $1::text AND next_run_at = $2::bigint RETURNING id`,
    [id, expected, next, firedAt],
  );
  return rows.length > 0;
}

export type { OutboxRecord };
