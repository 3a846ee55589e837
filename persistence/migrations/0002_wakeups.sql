-- 0002: wake-ups. Sleep and wait deadlines are sessions.wake_at (indexed in 0001): the commit
-- that puts a session to sleep writes its timer in the same row. Cron tasks get their own
-- table; event subscriptions are rows so the router can find recipients without live actors.

CREATE TABLE schedules (
  id          text    PRIMARY KEY,
  session_id  text    NOT NULL,
  partition   integer NOT NULL,
  task        jsonb,
  cron        text    NOT NULL,
  timezone    text    NOT NULL,
  next_run_at bigint,
  last_run_at bigint,
  created_at  bigint  NOT NULL
);
CREATE INDEX schedules_next_run_idx ON schedules (next_run_at) WHERE next_run_at IS NOT NULL;
CREATE INDEX schedules_session_idx ON schedules (session_id);

-- pattern is an event type or a NATS-style wildcard (`invoice.*`, `billing.>`).
CREATE TABLE event_subscriptions (
  session_id text    NOT NULL,
  pattern    text    NOT NULL,
  wildcard   boolean NOT NULL,
  PRIMARY KEY (session_id, pattern)
);
CREATE INDEX event_subscriptions_exact_idx ON event_subscriptions (pattern) WHERE NOT wildcard;

-- Event routing asks "who sleeps or waits on this type?".
CREATE INDEX sessions_wake_events_idx ON sessions USING gin (wake_events);
