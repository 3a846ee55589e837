-- 0016: the budget ledger is compacted (issue 17). Closed rows (settled, metered) older than the
-- longest window any limit can look at are folded into one row per session, id `.rollup:<session>`
-- (a session id has no `.`, so it cannot be a reservation's id), `at` 0: it counts in the lifetime
-- window only, as those rows did. This index finds the rows to fold without reading the ledger.
CREATE INDEX budget_ledger_closed_at_idx ON budget_ledger (at) WHERE state <> 'reserved' AND at > 0;
