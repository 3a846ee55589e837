/**
 * Owns the flight recorder's checkpoints (table `checkpoints`, migration 0010): a copy of each
 * committed version of a session (snapshot, status, last_seq), written by a trigger on `sessions`
 * in the commit's own statement. Fork reads the newest checkpoint at or before a point; replay
 * reads them all to compare a new agent version's states with the recorded ones.
 *
 * One function per statement, explicit casts, PG 15 features only (as in queries.ts); the memory
 * store keeps the same rows in a Map (memoryStore.ts) and applies the same rules.
 */
import { num, type Int8 } from './queries.js';
import type { Queryable } from './sqlDb.js';
import type { Checkpoint, CheckpointPoint, SessionStatus } from './types.js';

/** How many checkpoints each session keeps by default (its newest), pruned with the session log. */
export const CHECKPOINTS_PER_SESSION = 100;

interface CheckpointRow {
  session_id: string;
  version: Int8;
  type: string;
  status: string;
  last_seq: Int8;
  snapshot: unknown;
  transitions_before: Int8;
  at: Int8;
}

function toCheckpoint(r: CheckpointRow): Checkpoint {
  return {
    sessionId: r.session_id, version: num(r.version), type: r.type, status: r.status as SessionStatus, lastSeq: num(r.last_seq),
    snapshot: r.snapshot, transitionsBefore: num(r.transitions_before), at: num(r.at),
  };
}

const COLUMNS = 'session_id, version, type, status, last_seq, snapshot, transitions_before, at';

/**
 * The state a point names (see `Store.getCheckpoint`): `{ seq }` the newest checkpoint whose
 * last_seq is at most seq (null when seq is past what the session applied); `{ transition }` the
 * checkpoint of the commit that wrote that transition (null when the transition is not stored).
 */
export async function selectCheckpoint(q: Queryable, sessionId: string, at: CheckpointPoint): Promise<Checkpoint | null> {
  if ('seq' in at) {
    const { rows } = await q.query<CheckpointRow>(
      `SELECT ${COLUMNS} FROM checkpoints c
       WHERE c.session_id = $1::text AND c.last_seq <= $2::bigint
         AND $2::bigint <= (SELECT max(x.last_seq) FROM checkpoints x WHERE x.session_id = $1::text)
       ORDER BY c.version DESC LIMIT 1`,
      [sessionId, at.seq],
    );
    return rows[0] ? toCheckpoint(rows[0]) : null;
  }
  const { rows } = await q.query<CheckpointRow>(
    `SELECT ${COLUMNS} FROM checkpoints c
     WHERE c.session_id = $1::text AND c.transitions_before < $2::bigint
       AND EXISTS (SELECT 1 FROM transitions t WHERE t.id = $2::bigint AND t.session_id = $1::text)
     ORDER BY c.version DESC LIMIT 1`,
    [sessionId, at.transition],
  );
  return rows[0] ? toCheckpoint(rows[0]) : null;
}

/** A session's checkpoints, oldest first: the newest `limit`. */
export async function selectCheckpoints(q: Queryable, sessionId: string, limit: number): Promise<Checkpoint[]> {
  const { rows } = await q.query<CheckpointRow>(
    `SELECT * FROM (SELECT ${COLUMNS} FROM checkpoints WHERE session_id = $1::text ORDER BY version DESC LIMIT $2::integer) c
     ORDER BY version`,
    [sessionId, limit],
  );
  return rows.map(toCheckpoint);
}

/** Deletes checkpoints of `ids` beyond the newest `maxCount` per session or committed before `before`; returns how many. */
export async function deleteCheckpointsBeyond(q: Queryable, ids: readonly string[], maxCount: number | null, before: number | null): Promise<number> {
  if (ids.length === 0 || (maxCount === null && before === null)) return 0;
  const { rows } = await q.query<{ n: number }>(
    `WITH d AS (
       DELETE FROM checkpoints c USING (
         SELECT r.session_id, r.version FROM (
           SELECT session_id, version, at, row_number() OVER (PARTITION BY session_id ORDER BY version DESC) AS rn
           FROM checkpoints WHERE session_id = ANY($1::text[])
         ) r
         WHERE ($2::bigint IS NOT NULL AND r.rn > $2::bigint) OR ($3::bigint IS NOT NULL AND r.at < $3::bigint)
       ) x
       WHERE c.session_id = x.session_id AND c.version = x.version
       RETURNING 1)
     SELECT count(*)::integer AS n FROM d`,
    [[...ids], maxCount, before],
  );
  return rows[0]?.n ?? 0;
}

/** Adds `record` to and removes `skip` from the recorded agent types. */
export async function updateCheckpointTypes(q: Queryable, record: readonly string[], skip: readonly string[]): Promise<void> {
  await q.query(
    `WITH gone AS (DELETE FROM checkpoint_types WHERE type = ANY($2::text[]) RETURNING 1)
     INSERT INTO checkpoint_types (type) SELECT unnest($1::text[]) ON CONFLICT (type) DO NOTHING`,
    [[...record], [...skip]],
  );
}
