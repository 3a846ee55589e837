-- 0003: the session log, the durable record that server-sent event streams
-- (GET /agents/:id/stream) replay from. The commit transaction that writes a session's
-- transitions and reply outbox rows also writes one log row for each, so a row exists exactly
-- when its change is committed.
--
-- Ordering: ids come from one sequence, so they are not contiguous per session, but they grow
-- in commit order per session: the log rows are inserted after the session row is updated,
-- whose row lock serialises every committing transaction of that session (and one node
-- submits a session's commits one at a time anyway). A reader that has seen id n of a session
-- has therefore seen every committed row of that session below n.
--
-- `at` is the store's clock at commit (retention is measured on it); `data` carries the
-- event's own time. `data` is json, not jsonb: a replayed reply must be the handler's JSON as it
-- was published (jsonb would reorder its keys), and nothing queries inside it. Retention (the store prunes it about once a minute) keeps 24 hours and at
-- most 1000 rows per session; session_log_pruned remembers the highest id removed per
-- session, so a client resuming below it is told that it missed entries.

CREATE TABLE session_log (
  id         bigserial PRIMARY KEY,
  session_id text      NOT NULL,
  kind       text      NOT NULL CHECK (kind IN ('state', 'reply')),
  data       json      NOT NULL,
  at         bigint    NOT NULL
);
CREATE INDEX session_log_session_id_idx ON session_log (session_id, id);
CREATE INDEX session_log_at_idx ON session_log (at);

CREATE TABLE session_log_pruned (
  session_id     text   PRIMARY KEY,
  pruned_through bigint NOT NULL
);
