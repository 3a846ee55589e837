/**
 * What the runtime needs to know about the nats-server it talks to, from the version string in
 * the server's INFO (`nc.info.version`).
 *
 * nats-server before 2.10 keeps, per file-store block and subject, the subject's first
 * sequence, and recomputes it eagerly whenever that first message is removed: it reads every
 * sequence after it until the subject's next message. On the inbox (a work-queue stream, one
 * subject per session) every ack removes a message, and the distance to the session's next
 * message is about the number of sessions interleaved with it; behind a backlog the messages
 * in between are still stored and each is parsed. Measured on 2.9.10 (docs/benchmarks.md,
 * "nats-server's cost per message: the profile"): a deep inbox of 1,000 interleaved sessions
 * costs the server ~290 µs per acked message and caps its ack rate near 2,700/s, against
 * ~75 µs with 64 sessions. 2.10 made the recomputation lazy.
 */

/** Major, minor and patch of a `x.y.z[-suffix]` version, or null when it is not one. */
export function parseServerVersion(version: string | undefined | null): [number, number, number] | null {
  const m = /^v?(\d+)\.(\d+)\.(\d+)/.exec(version ?? '');
  return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : null;
}

/**
 * True when the server's acks cost it a scan that grows with the inbox backlog (before 2.10, see
 * above), so an operator can be told why the server's CPU climbs once the runtime falls behind.
 * An unreadable version: false (nothing is claimed).
 */
export function ackCostGrowsWithBacklog(version: string | undefined | null): boolean {
  const v = parseServerVersion(version);
  if (!v) return false;
  return v[0] < 2 || (v[0] === 2 && v[1] < 10);
}

/** Whether the server serves direct gets (`allow_direct`, 2.9+), which @nats-io/kv turns on for a bucket it makes there. */
export function allowsDirectGet(version: string | undefined | null): boolean {
  const v = parseServerVersion(version);
  return v !== null && (v[0] > 2 || (v[0] === 2 && v[1] >= 9));
}
