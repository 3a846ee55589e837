-- 0006: the session log also holds `fate` rows: what became of each message a commit settles
-- when it is not plainly `handled` (merged into one turn with others, superseded by `latest`,
-- rejected by `reject`, rolled back by `rollback`, dead-lettered, interrupted, stopped). Server-sent
-- event streams replay them as `fate` events. The rows are derived in persistence/sessionLog.ts.
ALTER TABLE session_log DROP CONSTRAINT IF EXISTS session_log_kind_check;
ALTER TABLE session_log ADD CONSTRAINT session_log_kind_check CHECK (kind IN ('state', 'reply', 'fate'));
