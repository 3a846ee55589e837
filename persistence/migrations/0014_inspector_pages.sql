-- 0014: indexes for the inspector's fleet pages (issue 18).
--
-- Dead letters across sessions, newest first, filtered by reason (the Dead letters page and
-- listDeadLetters { reason }): without this a reason filter reads every dead letter.
CREATE INDEX dead_letters_reason_created_idx ON dead_letters (reason, created_at, id);
-- Cron tasks paged oldest first by (created_at, id) (the Schedules page and listTasks { after }).
CREATE INDEX schedules_created_idx ON schedules (created_at, id);
