/**
 * Owns the SQL of the session log (migration 0003): the shape of a commit's rows, reading a
 * session's entries after an id, and retention (by age and by count per session), which also
 * records per session the highest id it removed. One function per statement, explicit casts,
 * PG 15 features only (as in queries.ts).
 */
import { json, num, type Int8 } from './queries.js';
import type { SessionLogRow } from './sessionLog.js';
import type { Queryable } from './sqlDb.js';
import type { SessionLogEntry, SessionLogKind } from './types.js';

export interface SessionLogDbRow {
  id: Int8;
  session_id: string;
  kind: string;
  data: unknown;
  at: Int8;
}

export function toSessionLogEntry(row: SessionLogDbRow): SessionLogEntry {
  return { id: num(row.id), sessionId: row.session_id, kind: row.kind as SessionLogKind, data: row.data, at: num(row.at) };
}

/**
 * A log row as a row of the commit document's `log` (migration 0005 inserts them after the
 * session rows are written, so their row locks order the ids; ids follow array order). The
 * commit time is the store clock the commit is called with.
 *
 * Each row's `data` travels in the document as a string of its own JSON text, cast to json in
 * SQL: the column is json so a replayed reply keeps the handler's key order, and a reply may
 * carry a NUL as a `\u0000` escape (json keeps escapes; parsed as part of the jsonb document it
 * would be refused).
 */
export function toSessionLogParam(r: SessionLogRow): Record<string, unknown> {
  return { session_id: r.sessionId, kind: r.kind, data: json(r.data) ?? 'null' };
}

/** Oldest first by id, after `afterId` (exclusive), served by session_log_session_id_idx. */
export async function selectSessionLog(q: Queryable, sessionId: string, afterId: number, limit: number): Promise<SessionLogDbRow[]> {
  const { rows } = await q.query<SessionLogDbRow>(
    `SELECT id, session_id, kind, data, at FROM session_log
     WHERE session_id = $1::text AND id > $2::bigint
     ORDER BY id LIMIT $3::integer`,
    [sessionId, afterId, limit],
  );
  return rows;
}

/** The newest id of a session (one index probe), 0 when it has none. */
export async function selectLastLogId(q: Queryable, sessionId: string): Promise<number> {
  const { rows } = await q.query<{ id: Int8 | null }>('SELECT max(id) AS id FROM session_log WHERE session_id = $1::text', [sessionId]);
  return rows[0]?.id == null ? 0 : num(rows[0].id);
}

export async function selectLogPrunedThrough(q: Queryable, sessionId: string): Promise<number> {
  const { rows } = await q.query<{ pruned_through: Int8 }>(
    'SELECT pruned_through FROM session_log_pruned WHERE session_id = $1::text', [sessionId],
  );
  return rows[0] ? num(rows[0].pruned_through) : 0;
}

/** Records, per session, the highest id a DELETE … RETURNING session_id, id (`gone`) removed. */
const RECORD_PRUNED = `marks AS (
       INSERT INTO session_log_pruned (session_id, pruned_through)
       SELECT session_id, max(id) FROM gone GROUP BY session_id
       ON CONFLICT (session_id) DO UPDATE
         SET pruned_through = GREATEST(session_log_pruned.pruned_through, EXCLUDED.pruned_through)
       RETURNING 1
     )`;

/** Removes up to `limit` entries committed before `before` (oldest first); returns how many. */
export async function deleteSessionLogOlderThan(q: Queryable, before: number, limit: number): Promise<number> {
  const { rows } = await q.query<{ n: number }>(
    `WITH gone AS (
       DELETE FROM session_log WHERE id IN (
         SELECT id FROM session_log WHERE at < $1::bigint ORDER BY at LIMIT $2::integer
       ) RETURNING session_id, id
     ),
     ${RECORD_PRUNED}
     SELECT count(*)::integer AS n FROM gone`,
    [before, limit],
  );
  return rows[0]?.n ?? 0;
}

/** Keeps the newest `keep` entries of each of `sessionIds`, removing the rest; returns how many. */
export async function deleteSessionLogBeyond(q: Queryable, sessionIds: readonly string[], keep: number): Promise<number> {
  if (sessionIds.length === 0) return 0;
  const { rows } = await q.query<{ n: number }>(
    `WITH cut AS (
       SELECT s.sid, c.id AS cutoff
       FROM unnest($1::text[]) AS s(sid)
       CROSS JOIN LATERAL (
         SELECT id FROM session_log WHERE session_id = s.sid ORDER BY id DESC OFFSET $2::integer LIMIT 1
       ) c
     ),
     gone AS (
       DELETE FROM session_log l USING cut WHERE l.session_id = cut.sid AND l.id <= cut.cutoff
       RETURNING l.session_id, l.id
     ),
     ${RECORD_PRUNED}
     SELECT count(*)::integer AS n FROM gone`,
    [sessionIds, keep],
  );
  return rows[0]?.n ?? 0;
}
