-- 0009: tenants and budgets (issue 17).
--
-- Tenants. A session may belong to a tenant, set once: by createAgent or by the header
-- `Agentry-Tenant` of the message that creates it. The runtime keeps it in the session's snapshot
-- (`context.tenant`); this column is filled from there by a trigger when the row is inserted and
-- is never changed afterwards, so agentry_commit (0005/0007) stays as it is and the tenant is
-- stored in the same statement as the session's first commit.
ALTER TABLE sessions ADD COLUMN tenant text;
CREATE INDEX sessions_tenant_idx ON sessions (tenant, id) WHERE tenant IS NOT NULL;

CREATE OR REPLACE FUNCTION agentry_session_tenant() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
  IF TG_OP = 'UPDATE' THEN
    NEW.tenant := OLD.tenant; -- immutable
  ELSIF NEW.tenant IS NULL THEN
    NEW.tenant := NEW.snapshot #>> '{context,tenant}';
  END IF;
  RETURN NEW;
END
$fn$;
CREATE TRIGGER sessions_tenant BEFORE INSERT OR UPDATE OF tenant ON sessions
  FOR EACH ROW EXECUTE FUNCTION agentry_session_tenant();

-- Budgets. One ledger row per reservation (`reserved`, then `settled` by the same id), per
-- direct record (`settled`) and per metered turn (`metered`: turns and handler wall-clock).
-- Ids are deterministic (session, first message of the turn, call index), so a re-run turn
-- finds its reservation instead of making a second one. `at` places a row in the windows.
-- Cost is NUMERIC: a decimal in the unit the user chose, never a float.
CREATE TABLE budget_ledger (
  id           text    PRIMARY KEY,
  session_id   text    NOT NULL,
  tenant       text,
  at           bigint  NOT NULL,
  state        text    NOT NULL CHECK (state IN ('reserved', 'settled', 'metered')),
  tokens       bigint  NOT NULL DEFAULT 0, -- reserved tokens not split into in/out (0 once settled)
  tokens_in    bigint  NOT NULL DEFAULT 0,
  tokens_out   bigint  NOT NULL DEFAULT 0,
  cost         numeric NOT NULL DEFAULT 0,
  tool_calls   bigint  NOT NULL DEFAULT 0,
  wall_ms      bigint  NOT NULL DEFAULT 0,
  turns        bigint  NOT NULL DEFAULT 0,
  settled_at   bigint
);
CREATE INDEX budget_ledger_session_idx ON budget_ledger (session_id, at);
CREATE INDEX budget_ledger_tenant_idx ON budget_ledger (tenant, at) WHERE tenant IS NOT NULL;

-- Limits set at run time (setBudget), per agent type (overriding defineAgent's), session or tenant.
CREATE TABLE budget_limits (
  scope      text   NOT NULL CHECK (scope IN ('type', 'session', 'tenant')),
  key        text   NOT NULL,
  limits     jsonb  NOT NULL,
  updated_at bigint NOT NULL,
  PRIMARY KEY (scope, key)
);

-- One row per warning published (`warn` policy): at most one per limit and window.
CREATE TABLE budget_warnings (
  key text   PRIMARY KEY,
  at  bigint NOT NULL
);
