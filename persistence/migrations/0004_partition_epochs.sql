-- 0004: the fencing epoch of each partition, as its current owner recorded it.
--
-- A node that takes a partition's lease (NATS KV; the revision is the epoch) writes the epoch
-- here *before* it consumes, and every commit transaction reads the rows of its partitions
-- FOR SHARE as its first statement and refuses records whose epoch is older. The share lock
-- is what makes the check hold at COMMIT and not only at the moment it ran: the new owner's
-- UPDATE waits until every transaction that checked the old epoch has ended, so a transaction
-- of a deposed node (paused by GC, SIGSTOP or a VM freeze) either committed before the new
-- owner began, or is refused. A paused transaction cannot hold the new owner for long: the
-- runtime's connections set idle_in_transaction_session_timeout, and the claim retries with a
-- lock_timeout.
CREATE TABLE partition_epochs (
  partition  integer PRIMARY KEY,
  epoch      bigint  NOT NULL,
  node       text    NOT NULL,
  claimed_at bigint  NOT NULL
);
