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

/**
 * True when a nats-server of this version, run as a cluster with replicated streams, is known to
 * lose acknowledged messages of a work-queue stream (the inbox) — before 2.10. So that an
 * operator on such a server is told at start, not after a loss nobody can explain.
 *
 * Measured with test/durability/natsClusterLoss.test.ts (3 servers; the inbox's leader, the lease
 * bucket's leader and the node's own server killed in turn under load; the runs per version are in
 * docs/operations.md, "A NATS cluster"): on 2.9.10 acknowledged messages were lost (a run of them
 * gone, the stream's last sequence gone backwards across a leader change, below a sequence its
 * consumer had already delivered) and partitions were left with a consumer no create accepted any
 * more ("filtered consumer not unique on workqueue stream"); on 2.10.29 and 2.11.8 nothing
 * acknowledged was lost. The pattern matches nats-server's own reports fixed through 2.10.x
 * (nats-io/nats-server#3953, #5612, #5638). A single server (natsReplicas 1, no cluster) is not
 * concerned. An unreadable version: false (nothing is claimed).
 */
export function clusterLosesAckedMessages(version: string | undefined | null): boolean {
  const v = parseServerVersion(version);
  if (!v) return false;
  return v[0] < 2 || (v[0] === 2 && v[1] < 10);
}

/**
 * A known fault of the nats-server the node runs on that does not stop it from working.
 * `NATS_SERVER_CLUSTER_FAULTS`: a cluster of a version before 2.10 (`clusterLosesAckedMessages`).
 */
export interface NatsServerWarning {
  readonly code: 'NATS_SERVER_CLUSTER_FAULTS';
  readonly message: string;
  readonly serverVersion: string;
}

/**
 * What an operator must be told about the server a node starts on (`nc.info`) with `replicas`
 * (config natsReplicas): the node logs each at error level and shows it in readiness and
 * metrics, and starts anyway — the server works, at a risk the operator should remove. A
 * cluster is natsReplicas > 1 or a server that names its cluster (`info.cluster`): a node with
 * natsReplicas 1 on a cluster still has its streams on servers with these faults.
 */
export function natsServerWarnings(info: { readonly version?: string; readonly cluster?: string } | undefined, replicas: number): NatsServerWarning[] {
  const version = info?.version;
  if (!(replicas > 1 || Boolean(info?.cluster)) || !clusterLosesAckedMessages(version)) return [];
  return [{
    code: 'NATS_SERVER_CLUSTER_FAULTS',
    serverVersion: version ?? '',
    message: `nats-server ${version ?? ''} in a cluster is known to lose acknowledged messages of replicated work-queue streams (the inbox) around leader changes, and to leave a partition whose consumer cannot be created again ("filtered consumer not unique on workqueue stream"): nats-io/nats-server#3953, #5612, #5638, fixed through 2.10.x (docs/operations.md, "A NATS cluster"); upgrade every server of the cluster to nats-server 2.10 or later`,
  }];
}
