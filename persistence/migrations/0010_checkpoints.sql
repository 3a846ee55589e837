-- 0010: the flight recorder's checkpoints: every committed version of every session, kept so a
-- session can be forked from a recorded point (forkSession) and a replay can compare a new agent
-- version's states with the recorded ones (replaySession).
--
-- Only sessions of agent types that ask for it are recorded (table checkpoint_types).
--
-- A trigger on `sessions` writes them, so agentry_commit (0005/0007) is unchanged and a checkpoint
-- exists exactly when its version is committed (same statement, same transaction). A group commit
-- writes a session's row once per statement, with the last of its records: versions coalesced in
-- one statement keep only that one (a point between them is "not recorded").
--
-- `transitions_before` is the session's highest transition id BEFORE this commit: agentry_commit
-- writes the session row before the commit's transitions, so the trigger sees only earlier ones.
-- The commit that wrote transition T is the newest checkpoint with transitions_before < T.
--
-- Retention (persistence/checkpoints.ts): each committed session keeps its newest 100 checkpoints
-- (pruned with the session log, about once a minute), fewer when its agent type bounds its
-- transitions (retention.transitions: the same count and age).
CREATE TABLE checkpoints (
  session_id         text   NOT NULL,
  version            bigint NOT NULL,
  type               text   NOT NULL,
  status             text   NOT NULL,
  last_seq           bigint NOT NULL,
  snapshot           jsonb,
  transitions_before bigint NOT NULL,
  at                 bigint NOT NULL,
  PRIMARY KEY (session_id, version)
);
CREATE INDEX checkpoints_session_seq_idx ON checkpoints (session_id, last_seq);

-- The agent types whose sessions are recorded (defineAgent({ checkpoints: true })); each node
-- writes its registered types at start (Store.setCheckpointTypes). Recording costs a copy of
-- each committed row: off unless a type asks for it.
CREATE TABLE checkpoint_types (
  type text PRIMARY KEY
);

-- Statement-level, with the statement's new rows as a table: one set-based INSERT per commit
-- statement (a row-level trigger cost 6-12x the whole commit of 500 sessions; measured).
CREATE FUNCTION agentry_checkpoint() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
  INSERT INTO checkpoints (session_id, version, type, status, last_seq, snapshot, transitions_before, at)
  SELECT n.id, n.version, n.type, n.status, n.last_seq, n.snapshot,
         coalesce((SELECT t.id FROM transitions t WHERE t.session_id = n.id ORDER BY t.id DESC LIMIT 1), 0), n.updated_at
  FROM agentry_new_sessions n
  WHERE n.type IN (SELECT ct.type FROM checkpoint_types ct)
  ON CONFLICT (session_id, version) DO NOTHING;
  RETURN NULL;
END
$fn$;

CREATE TRIGGER sessions_checkpoint_insert AFTER INSERT ON sessions
  REFERENCING NEW TABLE AS agentry_new_sessions FOR EACH STATEMENT EXECUTE FUNCTION agentry_checkpoint();
CREATE TRIGGER sessions_checkpoint_update AFTER UPDATE ON sessions
  REFERENCING NEW TABLE AS agentry_new_sessions FOR EACH STATEMENT EXECUTE FUNCTION agentry_checkpoint();
