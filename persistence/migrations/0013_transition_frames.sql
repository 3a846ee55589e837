-- 0013: time travel in the inspector (issue 18). Each transition row also keeps a `frame`: the
-- event object that caused it and the session's context right after it (wake and wait
-- conditions, waitpoint, mailbox, last seq, last error), so `getSessionAt` can show the whole
-- session as it was at that step, not only its state name. `user_state` holds the user state
-- after the transition only when it changed since the session's previous frame (in practice once
-- per turn, when a run's result is applied); a reader takes the newest non-null one at or before
-- the step. Both are null on rows written before this migration (those steps show the state
-- name alone).
--
-- Cost: a frame is a few hundred bytes of JSON per transition (two or three per turn); the user
-- state is copied once per turn that changed it (the snapshot already carries it, so a commit
-- writes it about twice instead of once). Measured in docs/benchmarks.md (hostcpu suite).
--
-- agentry_commit below is 0007's, with the two new columns in the transitions insert.
ALTER TABLE transitions ADD COLUMN frame json;
ALTER TABLE transitions ADD COLUMN user_state json;

CREATE OR REPLACE FUNCTION agentry_commit(doc jsonb, now_ms bigint) RETURNS jsonb
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
    -- frame and user_state travel as strings of their own JSON text, cast to json: a message body
    -- may carry a NUL as a \u0000 escape, which json keeps and jsonb refuses (as session_log.data).
    INSERT INTO transitions (session_id, at, event, from_state, to_state, frame, user_state)
    SELECT t.session_id, t.at, t.event, t.from_state, t.to_state, t.frame::json, t.user_state::json
    FROM ROWS FROM (jsonb_to_recordset(doc -> 'transitions')
        AS (session_id text, at bigint, event text, from_state text, to_state text, frame text, user_state text))
      WITH ORDINALITY AS t(session_id, at, event, from_state, to_state, frame, user_state, ord)
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

  IF jsonb_array_length(doc -> 'waitpoints') > 0 THEN
    -- 0007: a waitpoint is created pending by the commit that puts its session in `waiting`;
    -- every later commit of that wait carries it again and inserts nothing (a settled row stays settled).
    INSERT INTO waitpoints (id, session_id, agent_type, partition, status, schema, has_default, default_value,
                            tags, created_at, expires_at)
    SELECT t.id, t.session_id, t.agent_type, t.partition, 'pending', t.schema, t.has_default, t.default_value,
           t.tags, t.created_at, t.expires_at
    FROM jsonb_to_recordset(doc -> 'waitpoints')
      AS t(id text, session_id text, agent_type text, partition integer, schema jsonb, has_default boolean,
           default_value jsonb, tags text[], created_at bigint, expires_at bigint)
    ON CONFLICT (id) DO NOTHING;
  END IF;

  RETURN NULL;
END
$fn$;
