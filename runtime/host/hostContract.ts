/**
 * The session host's contract with the rest of the runtime: what it is given (`HostDeps`), what
 * it tells (`HostListener`), and what it counts (`HostStats`). Kept apart from the host so its
 * stages (handlerRuns.ts, commitChain.ts, …) and the metrics endpoint can name them without
 * importing the host itself.
 */
import type { ResolvedAgent } from '../../actors/defineAgent.js';
import type { CommitRecord, Store } from '../../persistence/types.js';
import type { Budgets } from '../budgets.js';
import type { Clock } from '../clock.js';
import type { RuntimeConfig } from '../config.js';
import type { GroupCommitter } from '../groupCommit.js';
import type { Logger } from '../logger.js';
import type { TenantRate } from '../tenantRate.js';
import type { Transport } from '../transport.js';

/** Live notifications for subscribers (control plane, inspector). */
export interface HostListener {
  onState?(sessionId: string, from: string, to: string, event: string, at: number): void;
  onCommitted?(record: CommitRecord): void;
  /** A live session was dropped (a failed commit, new agent code) and its commits have settled: its stored row is the truth again. */
  onDropped?(sessionId: string, partition: number): void;
}


export interface HostDeps {
  readonly config: RuntimeConfig;
  readonly store: Store;
  readonly committer: GroupCommitter;
  readonly transport: Pick<Transport, 'publishCore' | 'publishInbox' | 'publishEvent' | 'flushCore' | 'isConnected'>;
  readonly agents: ReadonlyMap<string, ResolvedAgent>;
  readonly logger: Logger;
  readonly clock?: Clock;
  readonly random?: () => number;
  /** Lease epoch of the partition (fencing); 0 when this node does not own it. Unset: leases are not in use. */
  readonly ownerEpoch?: (partition: number) => number;
  /** Re-delivers a partition's unacked messages in order (its feed restarts); see the module comment. */
  readonly restartPartition?: (partition: number, reason: string) => void;
  /** The partitions this node owns (whose stored outbox rows it sweeps). Unset: all of them. */
  readonly ownedPartitions?: () => readonly number[];
  /**
   * Whether this node may still act for partition p: it holds the lease and renewed it recently
   * (false after a long pause, before the node has learned it lost the lease). Unset: always.
   */
  readonly partitionUsable?: (partition: number) => boolean;
  /** Budgets (runtime/budgets.ts); unset: no limits, no metering. */
  readonly budgets?: Budgets;
  /** The node's per-tenant rate (runtime/tenantRate.ts), shared with the API; unset: messages are never deferred by rate. */
  readonly tenantRate?: TenantRate | null;
}

/** What a bounded shutdown left behind (redelivered to the next owner: nothing is lost). */
export interface ShutdownReport {
  /** Every commit of the sessions stopped here landed within the grace. */
  readonly committed: boolean;
  readonly unackedMessages: number;
  readonly sessionsWithPendingCommits: number;
  /** Turns still running at the grace's end, aborted here: their messages go to the next owner, and they run again there. */
  readonly abortedTurns: number;
}

/** Counters the metrics endpoint and benchmarks read. */
export interface HostStats {
  /** Messages or wakes that waited for an active slot (maxActiveSessions). */
  heldForCapacity: number;
  hydrations: number;
  passivations: number;
  merges: number;
  runs: number;
  retries: number;
  deadLetters: number;
  duplicatesSkipped: number;
  /** Records submitted to group commit. */
  commits: number;
  /** Changes that rode on another change's record (commit coalescing). */
  coalesced: number;
  /** Aborted handler runs still running `abortGraceMs` after their signal fired (they ignore `ctx.signal`). */
  abortIgnored: number;
  /** Turns aborted for running past their `turnTimeoutMs`. */
  turnTimeouts: number;
  /** Sessions loaded ahead of a wake due soon (`prefetchWake`). */
  wakesLoadedAhead: number;
  /** Running turns aborted because their session was stopped (a partition let go, a shutdown, a drop): they run again where the message goes next. */
  turnsAborted: number;
  /** Unacked messages held by sessions a partition release let go (they go to the partition's next owner). */
  releasedUnacked: number;
}

/** A zeroed HostStats. */
export function newHostStats(): HostStats {
  return { heldForCapacity: 0, hydrations: 0, passivations: 0, merges: 0, runs: 0, retries: 0, deadLetters: 0, duplicatesSkipped: 0, commits: 0, coalesced: 0, abortIgnored: 0, turnTimeouts: 0, wakesLoadedAhead: 0, turnsAborted: 0, releasedUnacked: 0 };
}
