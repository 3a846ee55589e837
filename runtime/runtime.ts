/**
 * Owns one runtime node: it opens the store (running migrations), connects to NATS, makes sure
 * the streams exist and the partition mapping agrees, starts a consumer per partition, and
 * exposes the session operations the control plane, the CLI and embedders call.
 */
import { AgentryError } from '../actors/errors.js';
import type { AnyAgent, ResolvedAgent, SleepOptions } from '../actors/defineAgent.js';
import { assertSessionId } from '../actors/sessionId.js';
import { isPriority, isTurnPolicy, TURN_POLICIES, type MessageKind, type Priority, type TurnPolicy, type WakeCondition } from '../actors/types.js';
import { SessionBusyError } from '../actors/errors.js';
import { EXPIRES_AT_HEADER, TURN_POLICY_HEADER } from './inbox.js';
import { randomUUID } from 'node:crypto';
import type {
  CheckpointPoint, DeadLetter, DeadLetterQuery, HistoryEntry, ListSessionsQuery, ScheduleQuery, SessionSummary, Store, TenantSummary, TransitionRecord,
} from '../persistence/types.js';
import { readEventsNewestFirst, type EventLogPage, type EventLogQuery } from './eventLog.js';
import { discardDeadLetters, replayDeadLetters, type BulkOutcome, type DiscardOutcome, type ReplayDone } from './deadLetterBulk.js';
import { loadConfig, type RuntimeConfig, type RuntimeConfigInput } from './config.js';
import { createGroupCommitter, type GroupCommitter } from './groupCommit.js';
import { createLogger, type Logger } from './logger.js';
import { realClock, type Clock } from './clock.js';
import { StoreClock, type ClockStatus } from './storeClock.js';
import { watchUnhandledRejections } from './unhandledRejections.js';
import { createTenantRate, RATE_CHARGED_HEADER, type TenantRate } from './tenantRate.js';
import { SessionHost, type SessionView } from './host/sessionHost.js';
import { commandWithin, settleWithin } from './deadline.js';
import { OUTBOX_TAKEOVER_AGE_MS } from './host/outbox.js';
import { createKeyedSerial } from './keyedSerial.js';
import { createRetention } from './retention.js';
import { createSessionTtl } from './sessionTtl.js';
import { BUDGET_WARNING_EVENT, Budgets } from './budgets.js';
import { isTenant } from './host/sessionHost.js';
import { createBudgetApi, type BudgetRef, type BudgetReport, type SetBudgetResult } from './budgetApi.js';
import { createHealth, type Readiness } from './health.js';
import { openStoreFor } from './store.js';
import { H, createTransport, type Transport } from './transport.js';
import { activeTraceHeaders, traceCarrierOf } from './tracing.js';
import { replaySession, type ReplayOptions, type ReplayReport } from './replay.js';
import { assertPoint, forkIdOf, forkResultOf, planFork, type ForkOptions, type ForkResult } from './fork.js';
import { createWakeups, type EventRecord, type PublishEventOptions, type Wakeups } from './wakeups.js';
import type { Waitpoints } from './waitpoints.js';
import { requestCtl, serveCtl } from './ctl.js';
import { deadLetterInboxMessage, type InboxDeadLetterResult } from './inboxDeadLetter.js';
import { historyPage } from './historyPage.js';
import { readSessionAt, type SessionAt } from './sessionAt.js';
import { getPartitions, listNodes, packageVersion, type NodeInfo, type PartitionInfo } from './cluster.js';
import { LeaseManager } from './leases.js';
import { partitionOf } from './partition.js';
import type { Subscription } from '@nats-io/transport-node';

export interface RuntimeOptions {
  /** Configuration overrides (on top of environment variables and defaults). */
  readonly config?: RuntimeConfigInput;
  /** The agent types this node can run (from `defineAgent`). */
  readonly agents: readonly AnyAgent[];
  /** A store to use instead of the configured one (tests, embedding). */
  readonly store?: Store;
  readonly clock?: Clock;
  readonly logger?: Logger;
}

/** Options of `sendMessage`: the kind and headers a producer would set on the wire. */
export interface SendOptions {
  readonly kind?: Exclude<MessageKind, 'wake'>;
  readonly priority?: Priority;
  readonly from?: string;
  readonly eventType?: string;
  /** De-duplication id: a second publish with the same id within 2 minutes is dropped. */
  readonly msgId?: string;
  /**
   * This message's turn policy (header `Agentry-Turn-Policy`) instead of the session's. With
   * `reject`, `sendMessage` answers once the session took the message, or throws SESSION_BUSY
   * when it refused it because a turn was running.
   */
  readonly policy?: TurnPolicy;
  /**
   * W3C trace context to continue (header `traceparent`); unset: the caller's active span, if an
   * OpenTelemetry SDK is registered. A malformed one is ignored. See docs/tracing.md.
   */
  readonly traceparent?: string;
  /** W3C `tracestate` that goes with `traceparent`. */
  readonly tracestate?: string;
  /**
   * Epoch ms, a Date or an ISO time (header `Agentry-Expires-At`): if the message has not started
   * being handled by then it is dead-lettered with reason `expired` instead (never run late).
   */
  readonly expiresAt?: number | Date | string;
  /**
   * The sender's tenant (header `Agentry-Tenant`): sets the tenant of a session this message
   * creates; for an existing session of another tenant, TENANT_MISMATCH (before publishing).
   */
  readonly tenant?: string;
  /**
   * The caller already took this message's token from the node's tenant rate (`tenantRate.take`:
   * the API does, before it publishes): the message is stamped so that this node's host does not
   * count it again (runtime/tenantRate.ts).
   */
  readonly rateCharged?: boolean;
}

/** Options of `sleepAgent`: the handler's `ctx.sleep()` options; `until` also takes an ISO time. */
export interface SleepAgentOptions extends Omit<SleepOptions, 'until'> {
  /** Wake at this time: a Date, epoch milliseconds or an ISO 8601 time. */
  readonly until?: Date | string | number;
  /** @deprecated The former name of `until` (still accepted; giving both is INVALID_ARGUMENT). */
  readonly untilTime?: string | number;
}

/** A cron task as stored and listed. */
export interface TaskInfo {
  readonly taskId: string;
  readonly agentId: string;
  readonly task: unknown;
  readonly schedule: string;
  readonly timezone: string;
  readonly nextRunAt: number | null;
  readonly lastRunAt: number | null;
  /** When it was scheduled (ms): with `taskId`, the order tasks are listed in. */
  readonly createdAt: number;
}

export type { Readiness } from './health.js';
export type { NodeInfo, PartitionInfo } from './cluster.js';

/** What `stop()` left undone when its deadline passed (`clean` when nothing). */
export interface StopReport {
  readonly clean: boolean;
  readonly ms: number;
  readonly unackedMessages: number;
  readonly sessionsWithPendingCommits: number;
  /** Handler turns still running when the grace ran out, aborted (they run again on the next owner). */
  readonly abortedTurns: number;
  /** Shutdown steps that did not finish in time (`handlers`: turns aborted; `commits`: commits left). */
  readonly timedOut: readonly string[];
}

/** A running node. Create with `createRuntime`, then `start()`; `stop()` is graceful. */
export interface Runtime {
  readonly config: RuntimeConfig;
  readonly logger: Logger;
  readonly store: Store;
  readonly host: SessionHost;
  readonly transport: Transport;
  readonly committer: GroupCommitter;
  readonly wakeups: Wakeups;
  /** Waitpoints: complete, cancel and list (any node; the store decides who wins). */
  readonly waitpoints: Waitpoints;
  readonly leases: LeaseManager;
  readonly clock: Clock;
  /**
   * How this node keeps time: synchronised with Postgres' clock (`source: 'store'`, with the
   * offset of this node's wall clock from it), or its own (PGlite, an injected clock).
   */
  clockStatus(): ClockStatus;
  /**
   * Promise rejections nothing handled (an agent handler that did not await or catch one) that
   * this node logged and survived since it started (AGENTRY_UNHANDLED_REJECTIONS=log).
   */
  unhandledRejections(): number;
  /**
   * The node's per-tenant rate (AGENTRY_TENANT_RATE; null: none), one bucket per tenant shared by
   * the API (which refuses over it) and the host (which defers inbox messages over it).
   */
  readonly tenantRate: TenantRate | null;
  readiness(): Readiness;
  /** Creates a session; `opts.policy` sets its turn policy instead of its agent type's. */
  createAgent(agentId: string, type: string, userState?: unknown, opts?: { policy?: TurnPolicy; tenant?: string; tags?: readonly string[] }): Promise<SessionView>;
  /**
   * Creates a new session from a recorded point of `agentId` (its state, context and history as
   * of then), leaving `agentId` untouched: UNKNOWN_SESSION, POINT_NOT_RECORDED. See runtime/fork.ts.
   * @example
   * const { agentId } = await rt.forkSession('support-1', { at: { seq: 42 } });
   */
  forkSession(agentId: string, opts: ForkOptions): Promise<ForkResult>;
  /**
   * Runs `agentId`'s recorded history through an agent (default: the one registered for its
   * type) in a sandbox — nothing published, nothing committed — and reports the turns whose state
   * differs from the recorded one: a regression check for new agent code. See runtime/replay.ts.
   */
  replaySession(agentId: string, opts?: ReplayOptions): Promise<ReplayReport>;
  getAgent(agentId: string): Promise<SessionView>;
  listAgents(query?: ListSessionsQuery): Promise<SessionSummary[]>;
  sendMessage(agentId: string, message: unknown, opts?: SendOptions): Promise<{ seq: number }>;
  sendMail(to: string, body: unknown, opts: { from?: string; priority?: Priority; rateCharged?: boolean }): Promise<{ seq: number }>;
  sleepAgent(agentId: string, opts?: SleepAgentOptions): Promise<SessionView>;
  wakeAgent(agentId: string): Promise<SessionView>;
  stopAgent(agentId: string, reason?: string): Promise<SessionView>;
  interruptAgent(agentId: string, reason?: string): Promise<SessionView & { interrupted: boolean }>;
  getHistory(agentId: string, opts?: { limit?: number; before?: number }): Promise<HistoryEntry[]>;
  /** Oldest first; `frames: true` adds what each step recorded (runtime/transitionFrame.ts; the sequence view reads it). */
  getTransitions(agentId: string, opts?: { limit?: number; after?: number; frames?: boolean }): Promise<TransitionRecord[]>;
  /**
   * The session as it was right after transition `transition` (an id from getTransitions): state,
   * context, mailbox, wake condition, waitpoint, the event object and the history as of then, with
   * the step before it for a diff. The inspector's time travel. POINT_NOT_RECORDED when it has no
   * such transition.
   *
   * @example
   * const [t] = await rt.getTransitions('support-1', { limit: 1 });
   * const past = await rt.getSessionAt('support-1', t!.id!);
   */
  getSessionAt(agentId: string, transition: number, opts?: { until?: number; historyLimit?: number }): Promise<SessionAt>;
  /** Schedules a cron task (croner syntax, IANA time zone; default UTC); each firing reaches the inbox as a `task`. */
  scheduleTask(agentId: string, task: unknown, schedule: string, opts?: { timezone?: string; taskId?: string }): Promise<{ taskId: string; nextRunAt: number | null }>;
  cancelTask(taskId: string): Promise<{ cancelled: boolean }>;
  /** Cron tasks oldest first (scheduled time, id), of one session or all, optionally by tenant and after a cursor task. */
  listTasks(agentId?: string, opts?: Omit<ScheduleQuery, 'sessionId'>): Promise<TaskInfo[]>;
  /** Publishes on the event bus; `recipients` counts the sessions it was delivered to. */
  publishEvent(type: string, data?: unknown, opts?: PublishEventOptions): Promise<{ seq: number; recipients: number; duplicate?: boolean }>;
  /** The event history (stream `<prefix>_EVENTS`), oldest first, by type and time. */
  listEvents(opts?: { type?: string; since?: number; limit?: number }): Promise<EventRecord[]>;
  /** The event history newest first, by type pattern, sender and time, one page per call (runtime/eventLog.ts). */
  eventLog(query: EventLogQuery): Promise<EventLogPage>;
  /** Moves a sleeping session's wake time (keeping its event and mail conditions). */
  scheduleWake(agentId: string, at: number): Promise<SessionView>;
  /** Removes a sleeping session's wake time: only events, mail or wakeAgent wake it now. */
  cancelWake(agentId: string): Promise<SessionView>;
  /** When the session wakes next by time (sleep deadline or wait timeout), or null. */
  getNextWakeTime(agentId: string): Promise<number | null>;
  /** Dead letters across sessions, newest first, filtered (reason, session, agent type, tenant, time). */
  listDeadLetters(opts?: DeadLetterQuery): Promise<DeadLetter[]>;
  /**
   * Replays up to 100 dead letters, one outcome per id (runtime/deadLetterBulk.ts); those
   * replayed before are skipped unless `force`, so sending the same batch again is safe.
   */
  replayDeadLetters(ids: readonly string[], opts?: { force?: boolean }): Promise<BulkOutcome<ReplayDone>[]>;
  /** Deletes up to 100 dead letters for good; an id already gone reports `discarded: false`. */
  discardDeadLetters(ids: readonly string[]): Promise<DiscardOutcome[]>;
  /** Tenants (of stored sessions, or with budget limits) in name order, with their sessions by status. */
  listTenants(opts?: { after?: string; limit?: number }): Promise<TenantSummary[]>;
  /**
   * Publishes a dead letter's messages to its session's inbox again (once: the ids are
   * deterministic). `duplicates` counts the messages JetStream dropped because the same replay
   * was stored within its duplicate window (2 minutes); `published` the ones stored now.
   */
  replayDeadLetter(id: string): Promise<{ published: number; duplicates: number }>;
  /**
   * Moves one stuck inbox message (by stream sequence) to the dead letters (reason `operator`),
   * then deletes it from the stream: stored before deleted, one dead letter however often retried.
   */
  deadLetterInboxMessage(seq: number, reason: string): Promise<InboxDeadLetterResult>;
  /** Every live node of the cluster (from the lease bucket: any node answers for all). */
  listNodes(): Promise<NodeInfo[]>;
  /** Every partition: its owner and fencing epoch, or free. */
  getPartitions(): Promise<PartitionInfo[]>;
  /**
   * Swaps in new code for the registered agent types without a restart (`agentry dev` on save:
   * partitions, consumers and live sessions stay): runs that start from now on use the new
   * handlers, a run under way finishes with the one it started with. The set of types must stay
   * the same — sessions, the default type and subscriptions name them — else CONFIG_INVALID
   * (restart the node to add or remove a type). A session's limits are part of its snapshot and
   * keep the values it was created with, as they do across a restart.
   */
  replaceAgents(agents: readonly AnyAgent[]): void;
  /** Budgets: limits, ctx.budget and metering (runtime/budgets.ts). */
  readonly budgets: Budgets;
  /**
   * Sets the budget limits of one agent type, session or tenant (null removes them), effective at
   * once on this node and within a few seconds on others; resumes the sessions the scope held.
   */
  /**
   * Sets a scope's limits and resumes the sessions it held: `resumed` counts the first pass (at
   * once); a second pass follows at `secondPassAt`. With `wait`, resolves after it too (`resumedLater`).
   */
  setBudget(ref: BudgetRef, limits: unknown, opts?: { wait?: boolean }): Promise<SetBudgetResult>;
  /** The limits and usage of one agent type, session or tenant. */
  getBudget(ref: BudgetRef): Promise<BudgetReport>;
  /**
   * Graceful, bounded by `shutdownGraceMs`: hands partitions off, lets handlers finish, drains
   * commits. Never waits past the deadline for a server that is gone; the report says what was
   * left (unacked messages are redelivered to the next owner: nothing is lost).
   */
  stop(): Promise<StopReport>;
}

/**
 * Starts a runtime node and resolves when it is consuming. Fails fast (with a clear message) when
 * the store's schema is newer than this code or the NATS server's partition mapping disagrees.
 *
 * @example
 * const rt = await createRuntime({ agents: [echo], config: { natsUrl: 'nats://127.0.0.1:4222' } });
 * await rt.sendMessage('s1', { text: 'hi' });
 */
export async function createRuntime(opts: RuntimeOptions): Promise<Runtime> {
  const config = loadConfig(opts.config ?? {});
  if (!config.natsUrl) throw new AgentryError('CONFIG_INVALID', 'natsUrl (NATS_URL) is required; `agentry dev` starts a nats-server for you');
  const logger = opts.logger ?? createLogger(config.logLevel, { node: config.nodeId });
  const agents = new Map<string, ResolvedAgent>();
  for (const a of opts.agents as readonly ResolvedAgent[]) {
    if (agents.has(a.type)) throw new AgentryError('CONFIG_INVALID', `agent type ${a.type} is registered twice`);
    agents.set(a.type, a);
  }
  if (config.defaultAgentType !== undefined && !agents.has(config.defaultAgentType)) {
    throw new AgentryError('CONFIG_INVALID', `defaultAgentType (AGENTRY_DEFAULT_AGENT) ${config.defaultAgentType} is not a registered agent type`);
  }

  const store = opts.store ?? (await openStoreFor(config));
  let migrated = false;
  try {
    await store.migrate();
  } catch (e) {
    // A store we opened is ours to close: otherwise a refused start (SCHEMA_TOO_NEW, store down)
    // leaves a pg pool holding its connection until idle timeout, or a PGlite handle on the data dir.
    if (!opts.store) await store.close().catch(() => undefined);
    throw e;
  }
  migrated = true;
  // The flight recorder records the types that ask for it (a failure here must not stop a node: fork then says not recorded).
  await store.setCheckpointTypes([...agents.values()].filter((a) => a.checkpoints).map((a) => a.type), [...agents.values()].filter((a) => !a.checkpoints).map((a) => a.type))
    .catch((err: unknown) => { logger.warn({ err }, 'could not record which agent types keep checkpoints'); });

  const transport = await createTransport({
    url: config.natsUrl, partitions: config.partitions, streamPrefix: config.streamPrefix, ackWaitMs: config.ackWaitMs,
    duplicateWindowMs: config.duplicateWindowMs, replicas: config.natsReplicas,
    maxAckPending: config.maxAckPendingPerPartition,
    consumerBuffer: config.consumerBuffer ?? Math.max(64, Math.ceil(8192 / config.partitions)),
    maxPayloadBytes: config.maxPayloadBytes, inboxMaxBytes: config.inboxMaxBytes, eventsMaxBytes: config.eventsMaxBytes,
    logger, name: `agentry-${config.nodeId}`,
    recordedInboxSeq: () => store.maxLastSeq(),
    leaseBucket: { name: `${config.streamPrefix}_LEASES`, ttlMs: config.leaseTtlMs, recordedEpoch: () => store.maxPartitionEpoch() },
  });
  try {
    await transport.ensureStreams();
    await transport.probePartitions();
  } catch (e) {
    await transport.close();
    if (!opts.store) await store.close();
    throw e;
  }

  // A record whose partition lease lapsed is refused before it reaches the store (fencing, first line).
  const committer = createGroupCommitter({
    store, logger, maxBatch: config.groupCommitMaxBatch, lingerMs: config.groupCommitLingerMs,
    concurrency: store.kind === 'pglite' ? 1 : config.groupCommitConcurrency,
    fence: (p, epoch) => leases.fenceOf(p, epoch),
  });
  /** Set by stop(): partition drains share its one deadline. */
  let stopDeadline: number | null = null;
  const drainMs = (): number => (stopDeadline === null ? config.shutdownGraceMs : Math.max(0, stopDeadline - Date.now()));
  // With Postgres, the store's clock is the time authority of every node sharing it: due times
  // are absolute and any node may fire what another set (runtime/storeClock.ts). An injected
  // clock (tests) is used as it is; PGlite runs in this process, on this process's clock.
  const storeClock = !opts.clock && store.kind === 'pg' && store.serverNow
    ? new StoreClock({ read: () => store.serverNow!(), logger, everyMs: config.clockSyncEveryMs, warnMs: config.clockSkewWarnMs })
    : null;
  await storeClock?.start();
  const clock = opts.clock ?? storeClock ?? realClock;
  const clockStatus = (): ClockStatus => storeClock?.status()
    ?? { source: 'local', offsetMs: store.kind === 'pg' ? null : 0, uncertaintyMs: store.kind === 'pg' ? null : 0, syncAgeMs: null };
  const startedAt = Date.now();
  // Leases come first: the host stamps each commit with its partition's fencing epoch.
  const ctlSubs = new Map<number, Subscription>();
  /**
   * A partition's acquisitions and releases run one after another. A lease lost and taken again
   * at once (every lease lapses after a long stall, and this node's next round re-takes the free
   * ones) started the new feed while the old release was still closing its consumer; the
   * release then dropped the sessions the new feed had just filled, without a feed restart: the
   * new consumer later redelivered their messages behind newer ones a fresh hydration had
   * committed, and they were acked as duplicates, lost for good (2 of ~25 CPU-bound 3-node runs
   * of bench/scaleout.mjs).
   */
  const inOrder = createKeyedSerial<number>();
  // eslint-disable-next-line prefer-const -- assigned below; the lease callbacks need it first
  let serveLocal: (sid: string, op: string, args: unknown[]) => Promise<unknown>;
  const leases = new LeaseManager({
    nc: transport.controlNc, bucket: `${config.streamPrefix}_LEASES`, nodeId: config.nodeId, partitions: config.partitions,
    ttlMs: config.leaseTtlMs, logger,
    // Read at each heartbeat, after start(): the host exists by then.
    nodeInfo: (): Record<string, unknown> => ({ version: packageVersion(), startedAt, liveSessions: host.liveCount(), activeSessions: host.activeCount(), clockOffsetMs: clockStatus().offsetMs }),
    events: {
      acquired: (p, epoch) => inOrder(p, async () => {
        // A release of an earlier epoch of p ran first (inOrder): if the lease went meanwhile, let it go.
        if (leases.epochOf(p) !== epoch) throw new AgentryError('FENCED', `partition ${p}: lease epoch ${epoch} is gone`);
        const t0 = Date.now();
        // Fence the previous owner in Postgres before consuming: from here on its commits are refused.
        await claimPartition(p, epoch);
        // Lost while claiming: starting the feed would delete the new owner's consumer.
        if (leases.epochOf(p) !== epoch) throw new AgentryError('FENCED', `partition ${p}: lease epoch ${epoch} was lost while claiming it`);
        const claimedMs = Date.now() - t0;
        await transport.startPartition(p, epoch, (part, m) => { host.dispatch(part, m); }, {
          confirm: () => leases.confirm(p), // false means it has released p already
        });
        ctlSubs.set(p, serveCtl(transport.nc, p, (sid, op, args) => serveLocal(sid, op, args)));
        void wakeups.scheduler.refresh();
        // What the previous owner committed and did not publish (it crashed, or its commit was
        // ambiguous); younger rows may still be on their way out, the periodic sweep takes them.
        host.sweepOutbox([p], OUTBOX_TAKEOVER_AGE_MS).catch((err: unknown) => { logger.warn({ err, partition: p }, 'outbox sweep of a taken partition failed; the periodic sweep retries'); });
        logger.info({ partition: p, epoch, claimMs: claimedMs, ms: Date.now() - t0 }, 'partition acquired');
      }),
      suspended: (p) => { transport.pausePartition(p); },
      resumed: (p) => { transport.restartPartition(p, 'lease renewed after a lapse'); },
      released: (p, graceful) => inOrder(p, async () => {
        ctlSubs.get(p)?.unsubscribe();
        ctlSubs.delete(p);
        await transport.stopPartition(p);
        await host.releasePartition(p, graceful, drainMs());
        // Forgets p's timers and fired marks (its next owner runs them) before the lease is gone:
        // a graceful release runs while p is still held, so a refresh alone would keep them.
        wakeups.scheduler.released(p);
        void wakeups.scheduler.refresh();
        logger.info({ partition: p, graceful }, 'partition released');
      }),
    },
  });
  // Budgets: limits (agent types', stored ones), ctx.budget, metering; see runtime/budgets.ts.
  const budgets = new Budgets({
    store, agents, logger, now: () => clock.now(), ledgerKeepMs: config.budgetLedgerKeepMs,
    publishWarning: async (data, msgId) => {
      await transport.publishEvent(BUDGET_WARNING_EVENT, JSON.stringify(data), { [H.kind]: 'event', [H.eventType]: BUDGET_WARNING_EVENT, [H.from]: 'agentry.budget', [H.priority]: 'normal' }, msgId);
    },
  });
  await budgets.start();
  const tenantRate = config.tenantRatePerSec > 0 ? createTenantRate(config.tenantRatePerSec, config.tenantBurst, () => clock.now()) : null;
  const host = new SessionHost({
    config, store, committer, transport, agents, logger, clock, budgets, tenantRate,
    ownerEpoch: (p) => leases.epochOf(p),
    restartPartition: (p, reason) => { transport.restartPartition(p, reason); },
    ownedPartitions: () => leases.owned(),
    partitionUsable: (p) => leases.usable(p, leases.epochOf(p)),
  });
  // Agent types' retention: the past of the sessions each commit touched is pruned in the background.
  const retention = createRetention({
    store, agents: () => agents, logger, everyMs: config.retentionEveryMs, now: () => clock.now(),
    counts: host.retentionCounts, owned: () => leases.owned(),
  });
  host.listen({ onCommitted: (r) => { retention.committed(r); } });
  // Session TTL: idle sessions of owned partitions are stopped (and purged) in the background.
  const sessionTtl = createSessionTtl({
    store, agents: () => agents, logger, everyMs: config.sessionTtlEveryMs, now: () => clock.now(), owned: () => leases.owned(),
    expire: (sid, cutoff, purge) => host.expireIdle(sid, cutoff, purge),
    ...(config.sessionTtlMs !== undefined ? { fallback: { idleMs: config.sessionTtlMs, purge: config.sessionTtlPurge } } : {}),
  });

  /**
   * Records the new epoch in Postgres. Its UPDATE waits for commit transactions that checked
   * the old epoch (a paused one is ended by idle_in_transaction_session_timeout), so it retries
   * on a lock timeout until the lease itself is in doubt.
   */
  async function claimPartition(p: number, epoch: number): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        if (await store.claimPartition(p, epoch, config.nodeId, 2_000)) return;
        throw new AgentryError('FENCED', `partition ${p}: a newer owner than epoch ${epoch} is recorded`);
      } catch (err) {
        if ((err as { code?: string }).code === 'FENCED' || !leases.usable(p, epoch)) throw err;
        if (attempt === 1) logger.warn({ err: (err as Error).message, partition: p }, 'could not record the partition epoch yet (a previous owner still commits?); retrying');
        await new Promise((r) => setTimeout(r, Math.min(2_000, 100 * attempt)));
      }
    }
  }
  host.start();
  // Timers fire for the partitions this node serves: not one it is draining for a graceful release.
  const wakeups = createWakeups({ config, store, transport, host, clock, logger, partitions: () => leases.serving() });

  // Pings with deadlines on their own timer: a blackholed Postgres or NATS turns readiness false.
  // Real time, not the injected clock: readiness is about wall-clock deadlines (a fake clock that
  // advances hours at once would fire thousands of ping rounds).
  const health = createHealth({ store, nc: transport.nc, committerHealthy: () => committer.healthy(), migrations: () => migrated, logger });
  logger.info({ partitions: config.partitions, store: store.kind, agents: [...agents.keys()] }, 'runtime started');

  const publishToInbox = async (agentId: string, body: unknown, o: SendOptions): Promise<{ seq: number; duplicate: boolean }> => {
    assertSessionId(agentId);
    if (o.priority !== undefined && !isPriority(o.priority)) throw new AgentryError('INVALID_ARGUMENT', `priority must be low, normal, high or urgent`);
    const hdrs: Record<string, string> = { [H.kind]: o.kind ?? 'message', [H.priority]: o.priority ?? 'normal' };
    if (o.from) hdrs[H.from] = o.from;
    if (o.eventType) hdrs[H.eventType] = o.eventType;
    Object.assign(hdrs, o.traceparent !== undefined ? traceCarrierOf(o.traceparent, o.tracestate) : activeTraceHeaders());
    if (o.tenant !== undefined) {
      if (!isTenant(o.tenant)) throw new AgentryError('INVALID_ARGUMENT', 'tenant must be 1-64 characters of [A-Za-z0-9_-]');
      hdrs[H.tenant] = o.tenant;
    }
    if (o.rateCharged && tenantRate) hdrs[RATE_CHARGED_HEADER] = tenantRate.chargedMark;
    if (o.policy !== undefined) {
      if (!isTurnPolicy(o.policy)) throw new AgentryError('INVALID_ARGUMENT', `policy must be one of ${TURN_POLICIES.join(', ')}`);
      hdrs[TURN_POLICY_HEADER] = o.policy;
    }
    if (o.expiresAt !== undefined) {
      const at = o.expiresAt instanceof Date ? o.expiresAt.getTime() : typeof o.expiresAt === 'number' ? o.expiresAt : Date.parse(o.expiresAt);
      if (!Number.isFinite(at)) throw new AgentryError('INVALID_ARGUMENT', 'expiresAt must be a Date, epoch milliseconds or an ISO 8601 time');
      hdrs[EXPIRES_AT_HEADER] = String(at);
    }
    const payload = typeof body === 'string' ? body : JSON.stringify(body ?? null);
    if (Buffer.byteLength(payload) > config.maxPayloadBytes) throw new AgentryError('PAYLOAD_TOO_LARGE', `message is larger than ${config.maxPayloadBytes} bytes`);
    try {
      return await transport.publishInboxAck(agentId, payload, hdrs, o.msgId);
    } catch (e) {
      if (e instanceof AgentryError) throw e; // the transport's own (a full or missing stream) says more
      throw new AgentryError('NOT_READY', `could not publish to NATS: ${(e as Error).message}`, { retryable: true, cause: e });
    }
  };

  const existing = async (agentId: string): Promise<SessionView> => {
    const v = await host.get(agentId);
    if (!v) throw new AgentryError('UNKNOWN_SESSION', `no session ${agentId}`);
    return v;
  };

  /** Session commands as the owning node runs them (reached locally or over `agentry.ctl.<id>`). */
  const commandDeadlineMs = Math.max(100, Math.floor(config.ctlTimeoutMs * 0.8));
  const local = {
    /** Runs on the owner of the fork's id: plans from the store (any node could) and creates it here. */
    forkSession: async (newId: string, sourceId: string, at: CheckpointPoint): Promise<ForkResult> => {
      const plan = await planFork(store, sourceId, { at, newId }, agents.get((await store.loadSession(sourceId))?.type ?? '')?.maxHistory ?? 50);
      await host.createFrom(plan.newId, plan.type, plan.snapshot, plan.history, plan.point.lastSeq);
      return forkResultOf(plan, sourceId);
    },
    createAgent: (agentId: string, type: string, userState?: unknown, o?: { policy?: TurnPolicy; tenant?: string; tags?: readonly string[] }) => {
      if (o?.policy !== undefined && !isTurnPolicy(o.policy)) return Promise.reject(new AgentryError('INVALID_ARGUMENT', `policy must be one of ${TURN_POLICIES.join(', ')}`));
      return host.create(agentId, type, userState, o?.policy, o?.tenant, o?.tags);
    },
    /** Wakes a session a budget paused; the wake is the runtime's (its handler does not see it). */
    resumeBudget: (agentId: string) => host.command(agentId, { type: 'WAKE', reason: 'manual', at: clock.now(), detail: { budget: 'resumed' } }),
    /**
     * A message with turn policy `reject`, sent from the session's owner so its answer can say
     * whether the session took it: SESSION_BUSY when a turn was running. The session decides on
     * delivery (one place, the machine); past `ctlTimeoutMs / 2` the seq is returned undecided.
     */
    sendRejectable: async (agentId: string, message: unknown, o: SendOptions) => {
      const msgId = o.msgId ?? `reject:${randomUUID()}`;
      const wait = host.awaitDecision(msgId, Math.max(1000, Math.floor(config.ctlTimeoutMs / 2)));
      let published: { seq: number; duplicate: boolean };
      try {
        published = await publishToInbox(agentId, message, { ...o, msgId, policy: 'reject' });
      } catch (e) {
        wait.cancel();
        throw e;
      }
      if (published.duplicate) { wait.cancel(); return { seq: published.seq }; } // delivered (and decided) before
      if ((await wait.decision) === 'rejected') throw new SessionBusyError(agentId, published.seq);
      return { seq: published.seq };
    },
    getAgent: existing,
    sleepAgent: async (agentId: string, o: SleepAgentOptions = {}) => {
      // eslint-disable-next-line @typescript-eslint/no-deprecated -- the one place that still honours the old name
      const legacy = o.untilTime;
      if (o.until !== undefined && legacy !== undefined) throw new AgentryError('INVALID_ARGUMENT', 'give until or untilTime (its deprecated alias), not both');
      const name = o.until !== undefined ? 'until' : 'untilTime';
      const at = o.until ?? legacy;
      let until: number | null = null;
      if (at !== undefined) until = typeof at === 'number' ? at : at instanceof Date ? at.getTime() : Date.parse(at);
      else if (o.durationMs !== undefined) until = clock.now() + o.durationMs;
      if (until !== null && !Number.isFinite(until)) throw new AgentryError('INVALID_ARGUMENT', `${name} must be an ISO time or epoch milliseconds`);
      const wake: WakeCondition = { until, events: [...(o.wakeEvents ?? [])], mailPriority: o.wakeOnMailPriority ?? null };
      return host.command(agentId, { type: 'SLEEP', wake, at: clock.now() });
    },
    wakeAgent: (agentId: string) => host.command(agentId, { type: 'WAKE', reason: 'manual', at: clock.now() }),
    stopAgent: (agentId: string, reason?: string) => host.command(agentId, { type: 'STOP', at: clock.now(), ...(reason ? { reason } : {}) }),
    interruptAgent: async (agentId: string, reason?: string) => {
      const r = await host.command(agentId, { type: 'INTERRUPT', at: clock.now(), ...(reason ? { reason } : {}) });
      return { ...r, interrupted: r.changed };
    },
    scheduleWake: async (agentId: string, at: number) => {
      const v = await existing(agentId);
      if (v.state !== 'sleeping' || !v.wake) throw new AgentryError('INVALID_TRANSITION', `session ${agentId} is ${v.state}: only a sleeping session has a wake time`, { details: { state: v.state } });
      if (!Number.isFinite(at)) throw new AgentryError('INVALID_ARGUMENT', 'at must be epoch milliseconds');
      return host.command(agentId, { type: 'SLEEP', wake: { ...v.wake, until: at }, at: clock.now() });
    },
    cancelWake: async (agentId: string) => {
      const v = await existing(agentId);
      if (v.state !== 'sleeping' || !v.wake) throw new AgentryError('INVALID_TRANSITION', `session ${agentId} is ${v.state}: only a sleeping session has a wake time`, { details: { state: v.state } });
      return host.command(agentId, { type: 'SLEEP', wake: { ...v.wake, until: null }, at: clock.now() });
    },
    scheduleTask: (agentId: string, task: unknown, schedule: string, o?: { timezone?: string; taskId?: string }) => wakeups.scheduleTask(agentId, task, schedule, o),
  };
  type LocalOps = typeof local;

  serveLocal = (sid, op, args) => {
    if (!leases.owns(partitionOf(sid, config.partitions))) {
      return Promise.reject(new AgentryError('NOT_READY', `session ${sid}'s partition moved off node ${config.nodeId}`, { retryable: true }));
    }
    if (!(op in local) || args[0] !== sid) return Promise.reject(new AgentryError('INVALID_ARGUMENT', `unknown control operation ${op}`));
    return runLocal(sid, op as keyof LocalOps, args);
  };

  /**
   * Runs a command on this node, the session's owner, with an answer within
   * `commandDeadlineMs` (deadline.ts `commandWithin`). A command that changes the session is
   * refused up front while group commit cannot write (a store that is down, read-only or out of
   * disk): NOT_READY, nothing changed, rather than a change that waits out the outage unseen.
   * The deadline is shorter than a remote caller's `ctlTimeoutMs`, so its answer gets there.
   */
  const runLocal = <K extends keyof LocalOps>(sid: string, op: K, args: readonly unknown[]): Promise<Awaited<ReturnType<LocalOps[K]>>> => {
    if (!READ_ONLY_COMMANDS.has(op) && !committer.healthy()) {
      return Promise.reject(new AgentryError('NOT_READY', `${op} on session ${sid} was refused: the store is not accepting writes right now (nothing was changed); retry`, { retryable: true, details: { reason: 'store-unavailable' } }));
    }
    const run = (local[op] as (...a: unknown[]) => Promise<Awaited<ReturnType<LocalOps[K]>>>)(...args);
    return commandWithin(run, commandDeadlineMs, op, sid);
  };

  /** Runs a session command where the session lives: here, or on its partition's owner. */
  const routed = async <K extends keyof LocalOps>(op: K, ...args: Parameters<LocalOps[K]>): Promise<Awaited<ReturnType<LocalOps[K]>>> => {
    const sid = args[0];
    assertSessionId(sid);
    if (leases.owns(partitionOf(sid, config.partitions))) return runLocal(sid, op, args);
    return requestCtl<Awaited<ReturnType<LocalOps[K]>>>(transport.nc, sid, op, args, config.ctlTimeoutMs);
  };

  // From before the first handler can run (a partition taken starts its feed) to the end of stop().
  const rejections = config.unhandledRejections === 'log' ? watchUnhandledRejections(logger) : null;
  try {
    await leases.start();
  } catch (err) {
    rejections?.stop();
    throw err;
  }
  await wakeups.start();
  // Diagnostics (2026-11-29): a partition this node serves, its lease usable, with no feed for
  // `UNFED_WARN_MS` has an acquisition (claim, consumer start) stuck behind something; logged at
  // most once per `UNFED_WARN_MS`. A feed with no consumer is the feed watchdog's (partitionFeed.ts).
  const unfedSince = new Map<number, number>();
  let unfedWarnedAt = -Infinity;
  const unfedTimer = setInterval(() => {
    const now = Date.now();
    const fed = new Set(transport.feedStates().map((f) => f.partition));
    const serving = new Set(leases.serving().filter((p) => !fed.has(p) && leases.usable(p, leases.epochOf(p))));
    for (const p of [...unfedSince.keys()]) if (!serving.has(p)) unfedSince.delete(p);
    for (const p of serving) if (!unfedSince.has(p)) unfedSince.set(p, now);
    const stuck = [...unfedSince].filter(([, at]) => now - at >= UNFED_WARN_MS).map(([p]) => p);
    if (stuck.length > 0 && now - unfedWarnedAt >= UNFED_WARN_MS) {
      unfedWarnedAt = now;
      logger.warn({ partitions: stuck, forMs: Math.max(...stuck.map((p) => now - unfedSince.get(p)!)) }, 'partitions owned, their leases usable, with no consumer feed for long (their start is stuck)');
    }
  }, 5_000);
  unfedTimer.unref();
  const budgetApi = createBudgetApi({
    budgets, store, waitpoints: host.waitpoints, logger, now: () => clock.now(),
    getAgent: (agentId) => routed('getAgent', agentId),
    resume: (agentId) => routed('resumeBudget', agentId),
  });

  /** Publishes a dead letter's messages to its session's inbox again, with deterministic ids (a repeat within JetStream's window is dropped). */
  async function replayOneDeadLetter(id: string): Promise<{ published: number; duplicates: number }> {
    const dl = await store.getDeadLetter(id);
    if (!dl) throw new AgentryError('INVALID_ARGUMENT', `no dead letter ${id}`);
    const msgs = Array.isArray(dl.payload) && dl.payload.every((m) => m && typeof m === 'object' && 'kind' in m && 'body' in m)
      ? (dl.payload as { kind: string; body: unknown; priority?: Priority; from?: string; eventType?: string }[]).filter((m) => m.kind !== 'wake')
      : [{ kind: 'message', body: dl.payload }];
    let i = 0;
    let duplicates = 0;
    for (const m of msgs) {
      const r = await publishToInbox(dl.sessionId, m.body, {
        kind: m.kind as SendOptions['kind'], msgId: `replay:${dl.id}:${i++}`,
        ...(m.priority ? { priority: m.priority } : {}), ...(m.from ? { from: m.from } : {}), ...(m.eventType ? { eventType: m.eventType } : {}),
      });
      if (r.duplicate) duplicates++;
    }
    await store.markDeadLetterReplayed(id, clock.now());
    return { published: msgs.length - duplicates, duplicates };
  }

  const runtime: Runtime = {
    config, logger, store, host, transport, committer, wakeups, leases, clock, waitpoints: host.waitpoints, budgets, tenantRate,
    clockStatus,
    unhandledRejections: () => rejections?.count() ?? 0,
    setBudget: (ref, limits, o) => budgetApi.setBudget(ref, limits, o),
    getBudget: (ref) => budgetApi.getBudget(ref),
    readiness() {
      const r = health.readiness();
      // A lost connection shows before the next ping does; a deleted stream until it is re-created.
      const nats = r.checks.nats && transport.isConnected();
      const streams = transport.streamsReady();
      const warnings = transport.serverWarnings().map(({ code, message }) => ({ code, message }));
      return { ok: r.ok && nats && streams, checks: { ...r.checks, nats, streams }, ...(warnings.length > 0 ? { warnings } : {}) };
    },
    createAgent: (agentId, type, userState, o) => routed('createAgent', agentId, type, userState, o),
    forkSession: (agentId, o) => routed('forkSession', o.newId ?? forkIdOf(agentId), agentId, assertPoint(o.at)),
    // Any node: it only reads the store, and runs the handler here.
    replaySession: async (agentId, o = {}) => {
      assertSessionId(agentId);
      const type = (await store.loadSession(agentId))?.type;
      if (type === undefined) throw new AgentryError('UNKNOWN_SESSION', `no session ${agentId}`);
      const agent = o.agent ?? agents.get(type);
      if (!agent) throw new AgentryError('UNKNOWN_AGENT_TYPE', `no agent type ${JSON.stringify(type)} is registered on this node`);
      return replaySession(store, agentId, agent, o);
    },
    getAgent: (agentId) => routed('getAgent', agentId),
    listAgents: (query) => store.listSessions(query),
    sendMessage: async (agentId, message, o = {}) => (o.policy === 'reject'
      ? routed('sendRejectable', agentId, message, o)
      : { seq: (await publishToInbox(agentId, message, o)).seq }),
    sendMail: async (to, body, o) => ({ seq: (await publishToInbox(to, body, { kind: 'mail', priority: o.priority ?? 'normal', ...(o.from ? { from: o.from } : {}), ...(o.rateCharged ? { rateCharged: true } : {}) })).seq }),
    sleepAgent: (agentId, o = {}) => routed('sleepAgent', agentId, o),
    wakeAgent: (agentId) => routed('wakeAgent', agentId),
    stopAgent: (agentId, reason) => routed('stopAgent', agentId, reason),
    interruptAgent: (agentId, reason) => routed('interruptAgent', agentId, reason),
    async getHistory(agentId, o = {}) {
      await existing(agentId);
      return historyPage(store, agentId, o); // wake records among the messages by time
    },
    async getTransitions(agentId, o = {}) {
      await existing(agentId);
      return store.getTransitions(agentId, o);
    },
    async getSessionAt(agentId, transition, o = {}) {
      const v = await existing(agentId);
      return readSessionAt(store, v, transition, o);
    },
    scheduleTask: (agentId, task, schedule, o) => routed('scheduleTask', agentId, task, schedule, o),
    cancelTask: (taskId) => wakeups.cancelTask(taskId),
    async listTasks(agentId, o = {}) {
      return (await store.listSchedules({ ...o, ...(agentId ? { sessionId: agentId } : {}) })).map((t) => ({
        taskId: t.id, agentId: t.sessionId, task: t.task, schedule: t.cron, timezone: t.timezone, nextRunAt: t.nextRunAt, lastRunAt: t.lastRunAt, createdAt: t.createdAt,
      }));
    },
    publishEvent: (type, data, o) => wakeups.publishEvent(type, data, o),
    listEvents: (o) => wakeups.listEvents(o),
    eventLog: (q) => readEventsNewestFirst(transport, q),
    scheduleWake: (agentId, at) => routed('scheduleWake', agentId, at),
    cancelWake: (agentId) => routed('cancelWake', agentId),
    async getNextWakeTime(agentId) {
      const v = await routed('getAgent', agentId);
      return v.state === 'sleeping' ? (v.wake?.until ?? null) : v.state === 'waiting' ? (v.wait?.timeoutAt ?? null) : null;
    },
    listDeadLetters: (o) => store.listDeadLetters(o),
    replayDeadLetter: (id) => replayOneDeadLetter(id),
    replayDeadLetters: (ids, o = {}) => replayDeadLetters(store, replayOneDeadLetter, ids, {
      ...o, onInternal: (id, err) => { logger.warn({ err, deadLetter: id }, 'bulk replay of a dead letter failed'); },
    }),
    discardDeadLetters: (ids) => discardDeadLetters(store, ids),
    listTenants: (o) => store.listTenants(o),
    listNodes: () => listNodes(leases, config.nodeId, Date.now()),
    getPartitions: () => getPartitions(leases, Date.now()),
    replaceAgents(list) {
      const next = new Map<string, ResolvedAgent>();
      for (const a of list as readonly ResolvedAgent[]) {
        if (next.has(a.type)) throw new AgentryError('CONFIG_INVALID', `agent type ${a.type} is registered twice`);
        next.set(a.type, a);
      }
      const was = [...agents.keys()].sort();
      const now = [...next.keys()].sort();
      if (was.join('\0') !== now.join('\0')) {
        throw new AgentryError('CONFIG_INVALID', `the agent types changed (${was.join(', ')} → ${now.join(', ')}): restart the node to add or remove a type`, { details: { was, now } });
      }
      for (const [type, a] of next) agents.set(type, a);
      host.agentsReplaced();
      budgets.agentsReplaced();
      logger.info({ agents: now }, 'agents replaced');
    },
    deadLetterInboxMessage: (seq, reason) => deadLetterInboxMessage({ transport, store, config, clock, logger }, seq, reason),
    async stop() {
      const t0 = Date.now();
      stopDeadline = t0 + config.shutdownGraceMs;
      logger.info({ graceMs: config.shutdownGraceMs }, 'runtime stopping');
      health.stop();
      storeClock?.stop();
      clearInterval(unfedTimer);
      const timedOut: string[] = [];
      const step = async (name: string, p: Promise<unknown>, ms = drainMs()): Promise<void> => {
        if (!(await settleWithin(p.catch((err: unknown) => { logger.warn({ err, step: name }, 'shutdown step failed'); }), ms))) timedOut.push(name);
      };
      await step('wakeups', wakeups.stop());
      await step('session-ttl', sessionTtl.stop(), Math.max(500, drainMs()));
      // Drains and frees every partition, so other nodes take over at once (not: after the TTL).
      // Partition releases drain and let go of sessions before the host's own shutdown: what they
      // aborted and left unacked counts in this stop's report too (read from the host's counters).
      const aborted0 = host.stats.turnsAborted;
      const released0 = host.stats.releasedUnacked;
      let leasesFreed = false;
      await step('leases', leases.stop().then((ok) => { leasesFreed = ok; }));
      if (!leasesFreed && !timedOut.includes('leases')) timedOut.push('lease-release');
      await step('consumers', transport.stopConsuming(), Math.max(500, drainMs()));
      const hostReport = await host.shutdown(drainMs());
      await step('budgets', budgets.stop(), Math.max(500, drainMs()));
      await step('retention', retention.stop(), Math.max(500, drainMs()));
      const abortedTurns = host.stats.turnsAborted - aborted0;
      if (abortedTurns > 0) timedOut.push('handlers');
      if (!hostReport.committed) timedOut.push('commits');
      await step('commit-drain', committer.drain());
      committer.close();
      await step('nats-close', transport.close(), Math.max(1_000, drainMs()));
      if (!opts.store) await step('store-close', store.close(), Math.max(500, drainMs()));
      const report: StopReport = {
        clean: timedOut.length === 0, ms: Date.now() - t0, timedOut,
        unackedMessages: hostReport.unackedMessages + (host.stats.releasedUnacked - released0),
        sessionsWithPendingCommits: hostReport.sessionsWithPendingCommits,
        abortedTurns,
      };
      rejections?.stop();
      if (report.clean) logger.info({ ms: report.ms }, 'runtime stopped');
      else logger.error(report, 'runtime stopped at its shutdown deadline with work left (unacked messages are redelivered to the next owner)');
      return report;
    },
  };
  return runtime;
}

/** A partition served with a usable lease and no consumer feed this long is logged (its start is stuck). */
const UNFED_WARN_MS = 30_000;

/**
 * Session commands that change nothing stored (a read of the live session, a message whose
 * answer waits for the session's decision): served while the store refuses writes.
 */
const READ_ONLY_COMMANDS: ReadonlySet<string> = new Set(['getAgent', 'sendRejectable']);
