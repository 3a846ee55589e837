/**
 * The cluster view an operator asks for (`listNodes`, `getPartitions`, `agentry nodes|partitions`):
 * who is alive, what each node runs, who owns which partition under which epoch. Read from the
 * lease bucket, so any node answers for the whole cluster; what a node reports of itself travels
 * in its heartbeat (written every quarter of the lease TTL).
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LeaseManager } from './leases.js';

/** A node of the cluster as the lease bucket shows it. */
export interface NodeInfo {
  readonly nodeId: string;
  /** The node that answered. */
  readonly self: boolean;
  readonly version: string | null;
  readonly startedAt: number | null;
  readonly uptimeMs: number | null;
  /** Age of its last heartbeat (a live node's is under the lease TTL; the bucket drops older ones). */
  readonly heartbeatAgeMs: number;
  /** Partitions whose lease names it now. */
  readonly partitions: readonly number[];
  readonly liveSessions: number | null;
  readonly activeSessions: number | null;
  /** How long ago its oldest lease was renewed, as it last reported (lease tick lag). */
  readonly leaseRenewalAgeMs: number | null;
  /**
   * Postgres' clock minus its wall clock (ms), as it last measured (runtime/storeClock.ts): it keeps
   * time by the store's clock, but a large value means its host's NTP is broken. Null: not measured.
   */
  readonly clockOffsetMs: number | null;
}

/** A partition's lease: its owner and fencing epoch, or free. */
export interface PartitionInfo {
  readonly partition: number;
  readonly nodeId: string | null;
  readonly epoch: number | null;
  /** How long ago its owner last renewed it. */
  readonly renewalAgeMs: number | null;
}

let version: string | null | undefined;

/** This package's version (from its package.json, found from this module in sources and dist). */
export function packageVersion(): string | null {
  if (version !== undefined) return version;
  version = null;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i++, dir = dirname(dir)) {
    const f = join(dir, 'package.json');
    if (!existsSync(f)) continue;
    try { version = (JSON.parse(readFileSync(f, 'utf8')) as { version?: string }).version ?? null; } catch { /* unreadable: unknown */ }
    break;
  }
  return version;
}

const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

/** Every live node, with the partitions the bucket says it owns. */
export async function listNodes(leases: LeaseManager, selfId: string, now: number): Promise<NodeInfo[]> {
  const view = await leases.clusterView();
  return view.nodes.map((n) => {
    const startedAt = num(n.info.startedAt);
    return {
      nodeId: n.nodeId,
      self: n.nodeId === selfId,
      version: typeof n.info.version === 'string' ? n.info.version : null,
      startedAt,
      uptimeMs: startedAt === null ? null : Math.max(0, now - startedAt),
      heartbeatAgeMs: Math.max(0, now - n.at),
      partitions: view.partitions.filter((p) => p.nodeId === n.nodeId).map((p) => p.partition),
      liveSessions: num(n.info.liveSessions),
      activeSessions: num(n.info.activeSessions),
      leaseRenewalAgeMs: num(n.info.renewalAgeMs),
      clockOffsetMs: num(n.info.clockOffsetMs),
    };
  });
}

/** Every partition, owned or free. */
export async function getPartitions(leases: LeaseManager, now: number): Promise<PartitionInfo[]> {
  const view = await leases.clusterView();
  return view.partitions.map((p) => ({
    partition: p.partition, nodeId: p.nodeId, epoch: p.epoch,
    renewalAgeMs: p.renewedAt === null ? null : Math.max(0, now - p.renewedAt),
  }));
}
