/**
 * Owns the SQL of waitpoints (table `waitpoints`, migration 0007): the rows a commit creates
 * (through `agentry_commit`'s `doc.waitpoints`), the settle compare-and-set, reads and the
 * paged listing. One function per statement, explicit casts, PG 15 features only.
 */
import { json, num, numOrNull, type Int8 } from './queries.js';
import type { Queryable } from './sqlDb.js';
import type { WaitpointQuery, WaitpointRecord, WaitpointState } from './types.js';

interface WaitpointRow {
  id: string; session_id: string; agent_type: string; partition: number; status: string; schema: unknown;
  has_default: boolean; default_value: unknown; tags: string[]; value: unknown;
  created_at: Int8; expires_at: Int8 | null; settled_at: Int8 | null;
}

const COLUMNS = 'id, session_id, agent_type, partition, status, schema, has_default, default_value, tags, value, created_at, expires_at, settled_at';

/** The domain record of a row. */
export function toWaitpointRecord(r: WaitpointRow): WaitpointRecord {
  return {
    id: r.id, sessionId: r.session_id, agentType: r.agent_type, partition: r.partition, status: r.status as WaitpointState,
    schema: r.schema, hasDefault: r.has_default, defaultValue: r.default_value ?? null, tags: r.tags, value: r.value ?? null,
    createdAt: num(r.created_at), expiresAt: numOrNull(r.expires_at), settledAt: numOrNull(r.settled_at),
  };
}

/** A new waitpoint as the commit document takes it (see migration 0007). */
export function toWaitpointParam(w: WaitpointRecord): Record<string, unknown> {
  return {
    id: w.id, session_id: w.sessionId, agent_type: w.agentType, partition: w.partition, schema: w.schema,
    has_default: w.hasDefault, default_value: w.hasDefault ? (w.defaultValue ?? null) : null, tags: w.tags,
    created_at: w.createdAt, expires_at: w.expiresAt,
  };
}

export async function selectWaitpoint(q: Queryable, id: string): Promise<WaitpointRecord | null> {
  const { rows } = await q.query<WaitpointRow>(`SELECT ${COLUMNS} FROM waitpoints WHERE id = $1::text`, [id]);
  return rows[0] ? toWaitpointRecord(rows[0]) : null;
}

/**
 * The compare-and-set: pending → `status` with `value`. True when this call won. With
 * `beforeExpiry`, a waitpoint whose expiry is at or before `at` is not settled (it times out).
 * The row stays locked to the end of the caller's transaction.
 */
export async function updateWaitpointSettled(
  q: Queryable, id: string, status: Exclude<WaitpointState, 'pending'>, value: unknown, at: number, beforeExpiry: boolean,
): Promise<boolean> {
  const { rows } = await q.query<{ id: string }>(
    `UPDATE waitpoints SET status = $2::text, value = $3::jsonb, settled_at = $4::bigint
     WHERE id = $1::text AND status = 'pending' AND (NOT $5::boolean OR expires_at IS NULL OR expires_at > $4::bigint)
     RETURNING id`,
    [id, status, json(value), at, beforeExpiry],
  );
  return rows.length === 1;
}

/** A page of waitpoints, oldest first by (created_at, id). */
export async function selectWaitpoints(q: Queryable, o: WaitpointQuery, limit: number): Promise<WaitpointRecord[]> {
  const status = o.status === undefined ? 'pending' : o.status;
  const { rows } = await q.query<WaitpointRow>(
    `SELECT ${COLUMNS} FROM waitpoints
     WHERE ($1::text IS NULL OR status = $1::text)
       AND ($2::text IS NULL OR agent_type = $2::text)
       AND ($3::text IS NULL OR session_id = $3::text)
       AND ($4::text IS NULL OR tags @> ARRAY[$4::text])
       AND ($5::bigint IS NULL OR created_at <= $5::bigint)
       AND ($6::bigint IS NULL OR (created_at, id) > ($6::bigint, $7::text))
     ORDER BY created_at, id LIMIT $8::integer`,
    [status, o.agentType ?? null, o.sessionId ?? null, o.tag ?? null, o.createdBefore ?? null, o.after?.createdAt ?? null, o.after?.id ?? '', limit],
  );
  return rows.map(toWaitpointRecord);
}
