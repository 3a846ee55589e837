/**
 * Computes a session's partition exactly as nats-server's `{{partition(N,1)}}` mapping does:
 * FNV-1a (32-bit) of the session id token, modulo N. The runtime needs it to file sessions,
 * timers and leases under the partition whose consumer delivers their messages; start-up
 * probes the server to prove both agree.
 */

/** FNV-1a 32-bit hash of the UTF-8 bytes of `s`. */
export function fnv1a32(s: string): number {
  let h = 0x811c9dc5;
  for (const b of Buffer.from(s, 'utf8')) {
    h ^= b;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** The partition of a session id among `partitions`. */
export function partitionOf(sessionId: string, partitions: number): number {
  return fnv1a32(sessionId) % partitions;
}
