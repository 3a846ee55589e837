-- 0011: indexes for the sessions list at fleet scale (listAgents: filters, sorts, keyset pages).
--
-- listAgents sorts by last activity (updated_at, id), by id (the primary key), by type or by
-- state (then newest activity first, then id), and filters by state, type, tenant, id prefix and
-- a last-activity range. Every index ends in the sort's tie-break, so a keyset page is one index
-- range scan that stops after `limit` rows, read forwards or backwards; a state, type or tenant
-- filter with the default sort (newest activity first) scans its own index for the same reason. They replace the single-column status and
-- type indexes of 0001, whose queries (counts by status, the partition/status index) are served
-- by the new ones' leading column.
--
-- Cost: updated_at changes on every commit, so commits no longer get heap-only (HOT) updates and
-- each commit adds an entry to every index of the table (measured in docs/benchmarks.md).
DROP INDEX IF EXISTS sessions_status_idx;
DROP INDEX IF EXISTS sessions_type_idx;
CREATE INDEX sessions_updated_idx ON sessions (updated_at, id);
CREATE INDEX sessions_status_updated_idx ON sessions (status, updated_at DESC, id DESC);
CREATE INDEX sessions_type_updated_idx ON sessions (type, updated_at DESC, id DESC);
CREATE INDEX sessions_tenant_updated_idx ON sessions (tenant, updated_at DESC, id DESC) WHERE tenant IS NOT NULL;
