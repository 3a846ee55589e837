-- 0021: small durable marks of the runtime itself, by key.
--
-- The first one is the event router's floor (`event-router`: the events stream's sequence every
-- event up to which the router's durable consumer acked, and that stream's creation time). NATS
-- keeps the floor in the consumer; when the consumer is gone at start (deleted by an operator or a
-- clean-up script while every node was down), the runtime re-creates it from this mark instead of
-- from "new events only", which skipped every event published meanwhile: stored, acknowledged to
-- its producer, never delivered. (0020 is left free.)
CREATE TABLE runtime_marks (
  key text PRIMARY KEY,
  value jsonb NOT NULL,
  updated_at bigint NOT NULL
);
