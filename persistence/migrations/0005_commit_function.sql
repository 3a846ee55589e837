-- 0005: a whole commit in one statement, so a store commit is one round trip instead of nine
-- (BEGIN, the epoch check, sessions, history, transitions, outbox, session log, subscriptions,
-- COMMIT). The client calls it in autocommit: the statement is the transaction.
--
--   SELECT agentry_commit(doc, now_ms)
--
-- `doc` is one JSON document built by persistence/commitQuery.ts:
--   fence        [{partition, epoch}]   each partition of the commit with the LOWEST owner epoch
--                                       its records carry
--   sessions     [{id, type, status, snapshot, last_seq, version, expected_version, partition,
--                  owner_epoch, check_epoch, wake_at, wake_events, wake_priority}], one per
--                session (its last record), or null when the records of one session do not follow
--                each other (a version gap, a falling epoch): the commit cannot land, only the
--                versions of `ids` are reported
--   ids          [text]                 the sessions of the commit, read only when sessions is null
--   history, transitions, outbox, log, unsubscribe, subscribe: rows as the statements of 0001-0003
--                took them (absent when empty); ids of transitions and log rows follow array order
--
-- Result: NULL when everything was written, else nothing was written and the result says why,
-- for the client to name the failing record the way the memory store would:
--   {"fenced":   [[partition, epoch], …]}        partitions whose recorded epoch is newer than
--                                                 the lowest epoch the commit brought for them
--   {"versions": {id: [version, owner_epoch], …}} the stored rows of the commit's sessions (as
--                                                 locked), when a version or row epoch check failed
-- A new session that a concurrent transaction created between the check and the insert (two
-- writers of one new id; fencing makes that a bug) raises SQLSTATE AGC01, which rolls the
-- statement back; the client then reads the versions itself.
--
-- Order of the checks, and why nothing is written before they all pass:
-- 1. The epoch rows of the commit's partitions are share-locked (in partition order) and compared.
--    The lock is held to the end of the statement's transaction, so a new owner's claim
--    (UPDATE of the row) waits for this commit to end: it committed before the takeover or is
--    refused (0004). With one statement there is no client-side pause inside the transaction.
-- 2. The existing session rows are locked FOR UPDATE in id order (concurrent commits touching the
--    same sessions lock them in the same order: no deadlock; an UPDATE … FROM alone locks in the
--    order of its plan, which for a hash join is the table's physical order), then checked
--    against the versions and epochs the commit expects. Locked rows cannot change before the
--    writes below. The lock costs a little (measured: a few µs per row, ~10 % of a 500-row
--    commit), and buys that order and a failure report of exactly what was checked.
-- 3. Only then the writes: new sessions (in id order), updates, history, transitions, outbox,
--    session log (after the session rows, whose locks order its ids per session: see 0003),
--    subscriptions.
-- Data Postgres refuses (a NUL, a lone surrogate, nesting too deep) fails the statement with its
-- own SQLSTATE (class 22/54) when `doc` is parsed, before anything runs; a log row's `data` is
-- parsed when it is cast to json, which also rolls everything back.
CREATE FUNCTION agentry_commit(doc jsonb, now_ms bigint) RETURNS jsonb
LANGUAGE plpgsql AS $fn$
DECLARE
  epochs jsonb;
  stored jsonb;
  fenced jsonb;
  ids text[];
  checks_pass boolean;
  n_new integer;
  n_old integer;
  n integer;
BEGIN
  -- 1. Fencing. Lock first (one scan, partition order), then compare.
  SELECT jsonb_object_agg(l.partition::text, l.epoch) INTO epochs
  FROM (
    SELECT pe.partition, pe.epoch FROM partition_epochs pe
    WHERE pe.partition = ANY(ARRAY(SELECT (x ->> 'partition')::integer FROM jsonb_array_elements(doc -> 'fence') x))
    ORDER BY pe.partition
    FOR SHARE
  ) l;
  SELECT jsonb_agg(jsonb_build_array(f.partition, (epochs ->> f.partition::text)::bigint)) INTO fenced
  FROM jsonb_to_recordset(doc -> 'fence') AS f(partition integer, epoch bigint)
  WHERE (epochs ->> f.partition::text)::bigint > f.epoch;
  IF fenced IS NOT NULL THEN
    RETURN jsonb_build_object('fenced', fenced);
  END IF;

  -- 2. Versions. Lock the existing rows (one scan, id order) and read them as locked: FOR UPDATE
  -- returns the newest version of a row it had to wait for, and nobody can change a locked row
  -- before this transaction ends, so the checks below hold for the writes after them.
  IF jsonb_typeof(doc -> 'sessions') IS DISTINCT FROM 'array' THEN
    ids := ARRAY(SELECT jsonb_array_elements_text(doc -> 'ids'));
    RETURN jsonb_build_object('versions', (
      SELECT coalesce(jsonb_object_agg(s.id, jsonb_build_array(s.version, s.owner_epoch)), '{}'::jsonb)
      FROM sessions s WHERE s.id = ANY(ids)));
  END IF;
  ids := ARRAY(SELECT x ->> 'id' FROM jsonb_array_elements(doc -> 'sessions') x);
  SELECT coalesce(jsonb_object_agg(l.id, jsonb_build_array(l.version, l.owner_epoch)), '{}'::jsonb) INTO stored
  FROM (SELECT s.id, s.version, s.owner_epoch FROM sessions s WHERE s.id = ANY(ids) ORDER BY s.id FOR UPDATE) l;
  SELECT coalesce(bool_and(CASE WHEN w.expected_version = 0 THEN NOT stored ? w.id
                               ELSE coalesce((stored -> w.id ->> 0)::bigint = w.expected_version
                                             AND (stored -> w.id ->> 1)::bigint <= w.check_epoch, false) END), true),
         count(*) FILTER (WHERE w.expected_version = 0),
         count(*) FILTER (WHERE w.expected_version > 0)
    INTO checks_pass, n_new, n_old
  FROM jsonb_to_recordset(doc -> 'sessions') AS w(id text, expected_version bigint, check_epoch bigint);
  IF NOT checks_pass THEN
    RETURN jsonb_build_object('versions', stored);
  END IF;

  -- 3. Writes.
  IF n_new > 0 THEN
    INSERT INTO sessions (id, type, status, snapshot, last_seq, version, partition, owner_epoch,
                          wake_at, wake_events, wake_priority, created_at, updated_at)
    SELECT i.id, i.type, i.status, i.snapshot, i.last_seq, i.version, i.partition, i.owner_epoch,
           i.wake_at, i.wake_events, i.wake_priority, now_ms, now_ms
    FROM jsonb_to_recordset(doc -> 'sessions')
      AS i(id text, type text, status text, snapshot jsonb, last_seq bigint, version bigint, expected_version bigint,
           partition integer, owner_epoch bigint, wake_at bigint, wake_events text[], wake_priority text)
    WHERE i.expected_version = 0
    ORDER BY i.id COLLATE "C"
    ON CONFLICT (id) DO NOTHING;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n <> n_new THEN
      RAISE EXCEPTION 'agentry_commit: a new session was created concurrently' USING ERRCODE = 'AGC01';
    END IF;
  END IF;
  IF n_old > 0 THEN
    UPDATE sessions s SET
      type = i.type, status = i.status, snapshot = i.snapshot, last_seq = i.last_seq,
      version = i.version, partition = i.partition, owner_epoch = i.owner_epoch, wake_at = i.wake_at,
      wake_events = i.wake_events, wake_priority = i.wake_priority, updated_at = now_ms
    FROM jsonb_to_recordset(doc -> 'sessions')
      AS i(id text, type text, status text, snapshot jsonb, last_seq bigint, version bigint, expected_version bigint,
           partition integer, owner_epoch bigint, check_epoch bigint, wake_at bigint, wake_events text[],
           wake_priority text)
    WHERE s.id = i.id AND i.expected_version > 0
      AND s.version = i.expected_version AND s.owner_epoch <= i.check_epoch;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n <> n_old THEN -- cannot happen: the rows are locked and were checked; never write half
      RAISE EXCEPTION 'agentry_commit: a checked session row changed' USING ERRCODE = 'AGC01';
    END IF;
  END IF;

  IF jsonb_array_length(doc -> 'history') > 0 THEN
    -- A redelivered batch (same key) inserts nothing.
    INSERT INTO history (session_id, seq, batch_id, kind, body, priority, "from", outcome, at)
    SELECT t.session_id, t.seq, t.batch_id, t.kind, t.body, t.priority, t."from", t.outcome, t.at
    FROM jsonb_to_recordset(doc -> 'history')
      AS t(session_id text, seq bigint, batch_id text, kind text, body jsonb, priority text, "from" text,
           outcome text, at bigint)
    ON CONFLICT (session_id, seq, batch_id) DO NOTHING;
  END IF;

  IF jsonb_array_length(doc -> 'transitions') > 0 THEN
    INSERT INTO transitions (session_id, at, event, from_state, to_state)
    SELECT t.session_id, t.at, t.event, t.from_state, t.to_state
    FROM ROWS FROM (jsonb_to_recordset(doc -> 'transitions')
        AS (session_id text, at bigint, event text, from_state text, to_state text))
      WITH ORDINALITY AS t(session_id, at, event, from_state, to_state, ord)
    ORDER BY t.ord;
  END IF;

  IF jsonb_array_length(doc -> 'outbox') > 0 THEN
    -- Outbox ids are deterministic: a re-run commit does not queue a second copy.
    INSERT INTO outbox (id, session_id, subject, headers, body, created_at)
    SELECT t.id, t.session_id, t.subject, t.headers, t.body, t.created_at
    FROM jsonb_to_recordset(doc -> 'outbox')
      AS t(id text, session_id text, subject text, headers jsonb, body text, created_at bigint)
    ON CONFLICT (id) DO NOTHING;
  END IF;

  IF jsonb_array_length(doc -> 'log') > 0 THEN
    -- `data` travels as its own JSON text, cast to json here (see sessionLogQueries.ts).
    INSERT INTO session_log (session_id, kind, data, at)
    SELECT t.session_id, t.kind, t.data::json, now_ms
    FROM ROWS FROM (jsonb_to_recordset(doc -> 'log') AS (session_id text, kind text, data text))
      WITH ORDINALITY AS t(session_id, kind, data, ord)
    ORDER BY t.ord;
  END IF;

  IF jsonb_array_length(doc -> 'unsubscribe') > 0 THEN
    DELETE FROM event_subscriptions e USING jsonb_to_recordset(doc -> 'unsubscribe') AS t(session_id text, pattern text)
    WHERE e.session_id = t.session_id AND e.pattern = t.pattern;
  END IF;
  IF jsonb_array_length(doc -> 'subscribe') > 0 THEN
    INSERT INTO event_subscriptions (session_id, pattern, wildcard)
    SELECT t.session_id, t.pattern, t.wildcard
    FROM jsonb_to_recordset(doc -> 'subscribe') AS t(session_id text, pattern text, wildcard boolean)
    ON CONFLICT DO NOTHING;
  END IF;

  RETURN NULL;
END
$fn$;
