-- 0001: the session store. Times are bigint milliseconds since the epoch everywhere, the
-- unit the runtime's (injectable) clock speaks; use to_timestamp(x / 1000.0) to read them.
-- Runs inside the migration runner's transaction, after it created agentry_migrations.

CREATE TABLE IF NOT EXISTS agentry_migrations (
  version    integer PRIMARY KEY,
  name       text    NOT NULL,
  applied_at bigint  NOT NULL
);

CREATE TABLE sessions (
  id            text    COLLATE "C" PRIMARY KEY, -- byte order: keyset pages match JS string order
  type          text    NOT NULL,
  status        text    NOT NULL CHECK (status IN ('idle', 'active', 'sleeping', 'waiting', 'stopped')),
  snapshot      jsonb,
  last_seq      bigint  NOT NULL,
  version       bigint  NOT NULL CHECK (version >= 1),
  partition     integer NOT NULL,
  owner_epoch   bigint  NOT NULL,
  wake_at       bigint,
  wake_events   text[]  NOT NULL DEFAULT '{}',
  wake_priority text,
  created_at    bigint  NOT NULL,
  updated_at    bigint  NOT NULL
);
CREATE INDEX sessions_status_idx ON sessions (status);
CREATE INDEX sessions_type_idx ON sessions (type);
CREATE INDEX sessions_partition_status_idx ON sessions (partition, status);
CREATE INDEX sessions_wake_at_idx ON sessions (wake_at) WHERE wake_at IS NOT NULL;

-- One row per original inbox message. seq is unique per session for inbox messages but
-- internal records may reuse (negative) values, so batch_id is part of the key; a
-- redelivered batch inserts nothing (ON CONFLICT DO NOTHING on the key).
CREATE TABLE history (
  session_id text   NOT NULL,
  seq        bigint NOT NULL,
  batch_id   text   NOT NULL,
  kind       text   NOT NULL,
  body       jsonb,
  priority   text   NOT NULL,
  "from"     text,
  outcome    text   NOT NULL,
  at         bigint NOT NULL,
  PRIMARY KEY (session_id, seq, batch_id)
);

CREATE TABLE transitions (
  id         bigserial PRIMARY KEY,
  session_id text   NOT NULL,
  at         bigint NOT NULL,
  event      text   NOT NULL,
  from_state text   NOT NULL,
  to_state   text   NOT NULL
);
CREATE INDEX transitions_session_id_idx ON transitions (session_id, id);

CREATE TABLE outbox (
  id         text   PRIMARY KEY,
  session_id text   NOT NULL,
  subject    text   NOT NULL,
  headers    jsonb  NOT NULL DEFAULT '{}',
  body       text   NOT NULL,
  created_at bigint NOT NULL
);
CREATE INDEX outbox_created_at_idx ON outbox (created_at, id);

CREATE TABLE dead_letters (
  id          text    PRIMARY KEY,
  session_id  text    NOT NULL,
  reason      text    NOT NULL,
  error       text,
  attempts    integer NOT NULL,
  payload     jsonb,
  created_at  bigint  NOT NULL,
  replayed_at bigint
);
CREATE INDEX dead_letters_created_at_idx ON dead_letters (created_at, id);
CREATE INDEX dead_letters_session_id_idx ON dead_letters (session_id, created_at, id);
