/**
 * Owns the live session actors of this node: hydrating them from their snapshots on demand,
 * dispatching inbox messages to them in order, committing every durable change (snapshot,
 * `last_seq`, history, transitions, outbox, dead letters) through group commit, acking inbox
 * messages only after their commit, publishing the outbox, and passivating idle sessions.
 *
 * Exactly-once state per message: a message whose sequence is ≤ the session's committed
 * `last_seq` is acked and skipped. A redelivery of a message still in flight replaces the
 * ack handle instead of entering the mailbox twice. Handlers run at least once per message
 * (a crash between a run and its commit re-runs the batch): handlers must tolerate re-runs.
 *
 * Order (the guarantees, and where each lives):
 * - The partition feed (partitionFeed.ts) hands this host an unbroken run of deliveries; any
 *   break restarts the consumer from the oldest unacked message. So a session only ever holds
 *   a gap-free prefix of its messages, and "≤ committed last_seq" means "applied".
 * - This host never lets go of a delivered message without settling it (commit, dead letter,
 *   or ack of a known duplicate), except by dropping a whole session, and a dropped session
 *   that held unacked messages restarts its partition's feed (`restartPartition`) in the same
 *   tick, before any newer message of it can reach a fresh hydration. A fresh hydration of a
 *   dropped session waits for the old one's commits to settle (`retiring`), so it reads them.
 * - Raw dead letters of a live session go through the session's commit chain: a later commit
 *   never acks past a dead letter that is not stored yet.
 * - A commit that Postgres refuses as data (StoreDataError: a poison record) dead-letters the
 *   run's messages with reason `unstorable` and re-hydrates the session; it is never retried.
 */
import type { JsMsg } from '@nats-io/jetstream';
import type { SpanContext } from '@opentelemetry/api';
import { createActor, type Actor, type Snapshot } from 'xstate';
import { AgentryError, InvalidTransitionError, TerminalError, errorInfo } from '../actors/errors.js';
import { assertSessionId, sessionIdProblem } from '../actors/sessionId.js';
import { nextStepOf, type HandlerBudget, type HistoryItem, type ResolvedAgent } from '../actors/defineAgent.js';
import {
  policyOf,
  backoffDelay, runInputOf, sessionMachine, statePath, topState, snapshotContext,
  type CompletedRun, type SessionContext, type SessionEvent,
} from '../actors/sessionMachine.js';
import { priorityRank, type InboxMessage, type Priority, type RunInput, type RunOutput, type TurnPolicy } from '../actors/types.js';
import type { CommitRecord, DeadLetter, HistoryEntry, HistoryLimit, LoadedSession, SessionRecord, Store, TransitionRecord } from '../persistence/types.js';
import { storableText, toStorable } from '../persistence/storable.js';
import { realClock, type Clock } from './clock.js';
import { settleWithin } from './deadline.js';
import type { RuntimeConfig } from './config.js';
import type { GroupCommitter } from './groupCommit.js';
import { Outbox } from './host/outbox.js';
import { RunPacer } from './host/runPacer.js';
import { abortRunHandle, createHandlerContext, type RunHandle } from './host/handlerContext.js';
import { addCompletedRun, batchRange, commitRecordOf, newPendingCommit, type PendingCommit, type PendingOutput } from './host/commitRecord.js';
import { decodeInbox, sessionIdOfSubject } from './inbox.js';
import type { Logger } from './logger.js';
import { FairQueue } from './host/fairQueue.js';
import { partitionOf } from './partition.js';
import { DLQ_SUBJECT, H, OUT_SUBJECT, STATE_SUBJECT, type Transport } from './transport.js';
import { createWaitpoints, type Waitpoints } from './waitpoints.js';
import { endRunTrace, nextStepWithTrace, type DroppedMessage, startRunTrace, traceCommit, traceReceive, tracePublish } from './tracing.js';
import { BlockedSessions } from './host/blockedSessions.js';
import { isExpired, mailboxSize, recordExpired, splitExpired } from './host/mailboxRules.js';
import { migrateSnapshot, stampOf, type MigrationError } from '../actors/agentVersion.js';
import type { BudgetBreach } from '../persistence/budget.js';
import { exceededError, turnKeyOf, type Budgets } from './budgets.js';
import { budgetNotices, heldTurn } from './host/budgetTurn.js';

type SessionActor = Actor<ReturnType<typeof sessionMachine.provide>>;

/**
 * Hydration reads in flight at once, each one batch of sessions (the pg pool has 10
 * connections; group commits need three). While they run, further hydrations gather into the
 * next batch: a burst of 1,000 first messages costs a few queries, not 2,000.
 */
const LOAD_CONCURRENCY = 2;
/** Most sessions read by one hydration query. */
const LOAD_BATCH = 500;

/** Live notifications for subscribers (control plane, inspector). */
export interface HostListener {
  onState?(sessionId: string, from: string, to: string, event: string, at: number): void;
  onCommitted?(record: CommitRecord): void;
}


interface LiveSession {
  readonly id: string;
  readonly type: string;
  readonly partition: number;
  /** The agent version its snapshot is at (migrated on hydration): stamped on every commit. */
  readonly agentVersion: number;
  readonly actor: SessionActor;
  readonly log: Logger;
  /** Unacked inbox messages by stream sequence. */
  readonly acks: Map<number, JsMsg>;
  readonly outputs: Map<number, PendingOutput[]>;
  historyView: HistoryItem[];
  maxEnqueuedSeq: number;
  committedLastSeq: number;
  storeVersion: number;
  submittedVersion: number;
  lastCompletedRunId: number;
  lastPath: string;
  /** The external event being sent right now (snapshots during it are its doing), else null. */
  sending: string | null;
  /** runId at the last snapshot: a change with the same state path is a merge or an interrupt. */
  lastRunId: number;
  transitions: TransitionRecord[];
  /**
   * Changes waiting for the commit in flight (null: none). Every later change merges into it,
   * so a busy session writes one record per round trip instead of one per change.
   */
  open: PendingCommit | null;
  /** The handler run in flight (null: none). */
  run: RunHandle | null;
  chain: Promise<void>;
  inflight: number;
  lastActivity: number;
  /** When the session's last change was committed (the stored row's updated_at when hydrated); null before its first commit. */
  updatedAt: number | null;
  broken: boolean;
  /**
   * Callers that hydrated or looked up this session and have not handed it its messages or
   * command yet. A pinned session is never evicted: freshly hydrated, it is quiescent until
   * then, and a hydration waiting for a slot would otherwise evict it in between (its messages
   * then went to a stopped actor and sat unacked until redelivery, over and over under load).
   */
  pins: number;
  /** Messages held back while maxActiveSessions handlers run (this session was not active). */
  held: number[];
  /** Whether the session has an entry in the admission queue. */
  queued: boolean;
  /** Messages of turns under way dropped because they expired before the turn started: seq → when found (mailboxRules.ts). */
  readonly expired: Map<number, number>;
  /** The state `onAbort` repaired after an aborted turn: the next turns start from it until one completes. */
  repair?: { readonly state: unknown } | undefined;
  /** Span contexts of finished runs not committed yet, by runId (their commit spans are children). */
  runTraces?: Map<number, SpanContext>;
  /** Traced messages of turns a newer message dropped: the next run links them. */
  dropped?: DroppedMessage[];
}

/** Aborts the session's run in flight, if any, and returns it (for its retraction and grace watch). */
function abortRun(s: LiveSession): RunHandle | null {
  const run = s.run;
  if (!run) return null;
  s.run = null;
  abortRunHandle(run);
  return run;
}

/** Why a run was aborted, from the event that left `running` (the `reason` of a `retracted` notice). */
function abortReasonOf(context: SessionContext, event: SessionEvent): string {
  if (event.type === 'MESSAGE') {
    const p = policyOf(context, event.message);
    return p === 'latest' ? 'superseded' : p === 'rollback' ? 'rolled-back' : 'merged';
  }
  return event.type === 'INTERRUPT' ? 'interrupted' : event.type === 'STOP' ? 'stopped' : 'aborted';
}

interface LoadWaiter { readonly resolve: (v: LoadedSession | null) => void; readonly reject: (e: unknown) => void }


export interface HostDeps {
  readonly config: RuntimeConfig;
  readonly store: Store;
  readonly committer: GroupCommitter;
  readonly transport: Pick<Transport, 'publishCore' | 'publishInbox' | 'publishEvent'>;
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
  /** Budgets (runtime/budgets.ts); unset: no limits, no metering. */
  readonly budgets?: Budgets;
}

/** What a bounded shutdown left behind (redelivered to the next owner: nothing is lost). */
export interface ShutdownReport {
  readonly clean: boolean;
  readonly unackedMessages: number;
  readonly sessionsWithPendingCommits: number;
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
}

/** Live view of a session for `getAgent` and the inspector. */
export interface SessionView {
  readonly agentId: string;
  readonly type: string;
  /** The session's tenant (null: none); set at creation, never changed. */
  readonly tenant: string | null;
  readonly state: 'idle' | 'active' | 'sleeping' | 'waiting' | 'stopped';
  readonly stateValue: string;
  /** The session's turn policy (its agent type's, or the one set at creation). */
  readonly policy: TurnPolicy;
  readonly userState: unknown;
  readonly lastSeq: number;
  readonly wake: SessionContext['wake'];
  readonly wait: SessionContext['wait'];
  /** `rejected`: messages refused (turn policy reject) whose refusal is not committed yet. */
  readonly mailbox: { readonly pending: number; readonly deferred: readonly { seq: number; kind: string; priority: Priority; from?: string; at: number }[]; readonly running: number; readonly rejected: number };
  readonly lastError: SessionContext['lastError'];
  readonly live: boolean;
  readonly updatedAt: number | null;
  /** The agent version of its snapshot (stored, or migrated to when live). */
  readonly agentVersion?: number;
  /** Set when the running code cannot take its stored snapshot: it waits, messages held, for a deploy that can. */
  readonly migrationError?: ReturnType<MigrationError['toJSON']>;
}

/** The runtime's set of live sessions on this node. */
export class SessionHost {
  private readonly live = new Map<string, LiveSession>();
  private readonly loading = new Map<string, { buffer: JsMsg[]; promise: Promise<LiveSession | null> }>();
  private readonly admissionWaiters: (() => void)[] = [];
  private readonly clock: Clock;
  private readonly random: () => number;
  private readonly machine;
  private readonly listeners = new Set<HostListener>();
  /** Committed outputs on their way out. */
  readonly outbox: Outbox;
  /** Waitpoint settlement (any node may complete one; this host times out its own sessions'). */
  readonly waitpoints: Waitpoints;
  private sweeper: NodeJS.Timeout | undefined;
  /** Spreads handler starts over event-loop turns (handlers that never await must not starve I/O). */
  private readonly pacer = new RunPacer();
  private stopping = false;
  /** Live sessions whose top state is `active` (handlers running or retrying). */
  private activeSessions = 0;
  /** Work waiting for an active slot, served fairly across tenants (host/fairQueue.ts). */
  private readonly ready = new FairQueue();
  /** Active sessions per tenant ('' none), for maxActivePerTenant. */
  private readonly activeByTenant = new Map<string, number>();
  private readySeq = 0;
  /** Sessions stopped and purged by their type's sessionTtl (runtime/sessionTtl.ts; metrics). */
  readonly ttlCounts = { stopped: 0, purged: 0 };
  /** Sessions whose snapshot the running code cannot take (their messages are held unacked). */
  readonly blocked = new BlockedSessions();
  /** Rows the agent types' retention removed (runtime/retention.ts; metrics). */
  readonly retentionCounts = { history: 0, transitions: 0 };
  readonly stats: HostStats = { heldForCapacity: 0, hydrations: 0, passivations: 0, merges: 0, runs: 0, retries: 0, deadLetters: 0, duplicatesSkipped: 0, commits: 0, coalesced: 0, abortIgnored: 0 };

  constructor(private readonly deps: HostDeps) {
    this.clock = deps.clock ?? realClock;
    this.random = deps.random ?? Math.random;
    this.outbox = new Outbox({ store: deps.store, transport: deps.transport, logger: deps.logger, owned: () => deps.ownedPartitions?.() ?? null });
    this.waitpoints = createWaitpoints({ store: deps.store, publish: (rows) => this.outbox.publish(rows), now: () => this.clock.now() });
    this.historyLimit = historyLimitOf(deps.agents);
    this.machine = sessionMachine.provide({
      actions: {
        startRun: ({ context, self }) => { this.startRun(context, self); },
        cancelRun: ({ context, event, self }) => { this.cancelRun(context.sessionId, self, abortReasonOf(context, event)); },
      },
      delays: {
        // Exponential backoff with up to +25% jitter: never shorter than the configured spacing.
        backoff: ({ context }) => {
          const d = backoffDelay(context.limits, context.attempt);
          return Math.round(d + d * 0.25 * this.random());
        },
      },
    });
  }

  /** Starts periodic work: ack keep-alives (`working()`), passivation, outbox clean-up. */
  start(): void {
    const every = Math.max(200, Math.min(1000, Math.floor(this.deps.config.ackWaitMs / 3)));
    let lastWorking = 0;
    this.sweeper = setInterval(() => {
      const now = Date.now();
      if (now - lastWorking >= this.deps.config.ackWaitMs / 3) { lastWorking = now; this.keepAlive(); }
      this.passivateIdle();
      this.retryBlocked();
      this.outbox.flushDeletes();
      this.outbox.tick();
    }, every);
    this.sweeper.unref();
  }

  /** Registers a listener for live notifications; returns the function that removes it. */
  listen(l: HostListener): () => void {
    this.listeners.add(l);
    return () => { this.listeners.delete(l); };
  }

  /** Number of live actors (bounded by maxLiveSessions). */
  liveCount(): number { return this.live.size; }

  /** Inbox messages this node holds unacked (delivered, not yet committed or settled), by partition. */
  unackedByPartition(): Map<number, number> {
    const out = new Map<number, number>();
    for (const s of this.live.values()) if (s.acks.size > 0) out.set(s.partition, (out.get(s.partition) ?? 0) + s.acks.size);
    for (const [sid, l] of this.loading) {
      const p = partitionOf(sid, this.deps.config.partitions);
      out.set(p, (out.get(p) ?? 0) + l.buffer.length);
    }
    return out;
  }

  /** Number of sessions whose handler is running now. */
  activeCount(): number {
    return this.activeSessions;
  }

  /** Sessions waiting for an active slot. */
  waitingForSlot(): number {
    return this.ready.size;
  }

  private hasCapacity(tenant?: string): boolean {
    return this.activeSessions + this.reservedWakes < this.deps.config.maxActiveSessions && (tenant === undefined || this.tenantHasCapacity(tenant));
  }

  /** Whether a tenant is under maxActivePerTenant ('': no tenant, never bounded). */
  private tenantHasCapacity(tenant: string): boolean {
    const max = this.deps.config.maxActivePerTenant;
    return max <= 0 || tenant === '' || (this.activeByTenant.get(tenant) ?? 0) < max;
  }

  /** Counts a session entering (+1) or leaving (-1) `active`, overall and for its tenant. */
  private activeDelta(s: LiveSession, d: 1 | -1): void {
    this.activeSessions += d;
    const t = s.actor.getSnapshot().context.tenant;
    if (t === undefined) return;
    const n = (this.activeByTenant.get(t) ?? 0) + d;
    if (n <= 0) this.activeByTenant.delete(t); else this.activeByTenant.set(t, n);
  }

  /** Sessions running handlers and waiting for a slot, per tenant (metrics). */
  tenantLoad(): { active: ReadonlyMap<string, number>; queued: ReadonlyMap<string, number> } {
    return { active: this.activeByTenant, queued: this.ready.depths() };
  }

  /** Due wakes loading their session: they hold a handler slot before they are active. */
  private reservedWakes = 0;

  /** Queues work that would make a session active until a slot is free (urgent first, then oldest). */
  private enqueueReady(priority: Priority, at: number, run: () => void, tenant = ''): void {
    this.stats.heldForCapacity++;
    this.ready.push(tenant, { rank: priorityRank(priority), at, n: this.readySeq++, run });
  }

  /** Starts queued work while slots are free, taking tenants in turn. */
  private pump(): void {
    while (this.hasCapacity() && this.ready.size > 0) {
      const e = this.ready.pop((t) => this.tenantHasCapacity(t));
      if (!e) break;
      e.run();
    }
  }

  // ---- inbound -------------------------------------------------------------------------

  /** Entry point for every inbox message of an owned partition (the consumer callback). */
  dispatch(partition: number, m: JsMsg): void {
    const sid = sessionIdOfSubject(m.subject);
    if (sid.startsWith('_agentry-probe-')) { m.ack(); return; }
    const live = this.live.get(sid);
    // A live session's id was checked when it loaded, and its partition is fixed: the common case.
    if (live && live.partition === partition) { this.deliver(live, m); return; }
    const problem = sessionIdProblem(sid);
    if (problem !== null) {
      this.deadLetterRaw(m, sid, 'invalid-session-id', problem);
      return;
    }
    if (partitionOf(sid, this.deps.config.partitions) !== partition) {
      // Published straight to a partition subject, around nats.conf's mapping: delivering it
      // here would put the session on two partitions (two owners). Keep it as a dead letter.
      this.deadLetterRaw(m, sid, 'wrong-partition', `published to partition ${partition}; session ${sid} belongs to ${partitionOf(sid, this.deps.config.partitions)} (publish to agentry.in.<id>)`);
      return;
    }
    if (live) { this.deliver(live, m); return; }
    // A live session checks a message's tenant on delivery (deliverNow); a message that would create one is checked here.
    const tenant = m.headers?.get(H.tenant) || undefined;
    if (tenant !== undefined && !isTenant(tenant)) {
      this.deadLetterRaw(m, sid, 'invalid-tenant', `header ${H.tenant} must be 1-64 characters of [A-Za-z0-9_-]`);
      return;
    }
    const loading = this.loading.get(sid);
    if (loading) { loading.buffer.push(m); return; }
    if (this.holdBlocked(sid, m)) return;
    const entry = { buffer: [m], promise: Promise.resolve<LiveSession | null>(null) };
    this.loading.set(sid, entry);
    entry.promise = this.hydrate(sid, partition, true, tenant);
    entry.promise.then((s) => {
      this.loading.delete(sid);
      if (s && this.deps.ownerEpoch && this.deps.ownerEpoch(partition) === 0) {
        // The partition moved away while this session loaded: its messages are the new owner's.
        this.unpin(s);
        if (this.live.get(sid) === s && this.quiescent(s)) this.evict(s);
        return;
      }
      for (const msg of entry.buffer) {
        if (s) this.deliver(s, msg);
        else if (this.holdBlocked(sid, msg)) continue;
        else this.deadLetterRaw(msg, sid, 'unknown-session', 'no session with this id exists and no default agent type is configured');
      }
      if (s) this.unpin(s);
    }, (err: unknown) => {
      // Only reached at shutdown (hydration retries store outages itself); leave the messages unacked.
      this.loading.delete(sid);
      this.deps.logger.warn({ err, sessionId: sid }, 'hydration abandoned');
    });
  }

  private deliver(s: LiveSession, m: JsMsg): void {
    const seq = m.seq;
    if (seq <= s.committedLastSeq) { this.stats.duplicatesSkipped++; m.ack(); return; }
    if (seq <= s.maxEnqueuedSeq) {
      this.stats.duplicatesSkipped++;
      // Still in flight: the newest handle is the one that acks. Not held any more: it was
      // settled (dead-lettered and stored, or committed), so this copy is a known duplicate.
      if (s.acks.has(seq)) s.acks.set(seq, m); else m.ack();
      return;
    }
    // A dropped session (its drop restarted the partition feed): left unacked, it comes again.
    if (s.broken) return;
    const max = this.agentOf(s.type)?.maxMailbox;
    if (max !== undefined && mailboxSize(s.actor.getSnapshot().context, s.held.length) >= max) {
      this.deadLetterInSession(s, m, 'mailbox-full', `session ${s.id} holds ${max} messages not yet handled (maxMailbox)`, decodePayloadLoose(m));
      return;
    }
    const tenant = s.actor.getSnapshot().context.tenant;
    if (s.held.length > 0 || (!this.hasCapacity(tenant) && topState(s.actor.getSnapshot().value) !== 'active')) {
      // All handler slots are taken: hold it (unacked, kept alive) behind this session's other held messages.
      s.acks.set(seq, m);
      s.maxEnqueuedSeq = seq;
      s.held.push(seq);
      if (!s.queued) {
        s.queued = true;
        this.enqueueReady(prioOf(m), this.clock.now(), () => { this.releaseHeld(s); }, tenant ?? '');
      }
      return;
    }
    this.deliverNow(s, m);
  }

  /** Hands a session its held messages, in order, once it has a slot. */
  private releaseHeld(s: LiveSession): void {
    s.queued = false;
    const seqs = s.held.splice(0);
    for (const seq of seqs) {
      const m = s.acks.get(seq);
      if (m && this.live.get(s.id) === s) this.deliverNow(s, m);
    }
  }

  private deliverNow(s: LiveSession, m: JsMsg): void {
    const seq = m.seq;
    const now = this.clock.now();
    const decoded = decodeInbox(m, now, this.deps.config.maxPayloadBytes, this.deps.config.maxJsonDepth);
    if (!decoded.ok) {
      this.deadLetterInSession(s, m, decoded.reason, decoded.detail, decoded.payload);
      return;
    }
    if (s.actor.getSnapshot().status === 'done') {
      this.deadLetterInSession(s, m, 'stopped', `session ${s.id} is stopped`, decoded.message.body);
      return;
    }
    if (isExpired(decoded.message, now)) {
      this.deadLetterInSession(s, m, 'expired', `expired at ${new Date(decoded.message.expiresAt!).toISOString()} before it was delivered`, [decoded.message]);
      return;
    }
    const tenant = m.headers?.get(H.tenant) || undefined;
    if (tenant !== undefined && tenant !== s.actor.getSnapshot().context.tenant) {
      // A session's tenant is set once, at creation: a message of another tenant is refused, never a switch.
      const own = s.actor.getSnapshot().context.tenant;
      this.deadLetterInSession(s, m, 'tenant-mismatch', `message of tenant ${tenant} for session ${s.id}, which ${own === undefined ? 'has no tenant' : `belongs to tenant ${own}`}`, decoded.message.body);
      return;
    }
    s.acks.set(seq, m);
    s.maxEnqueuedSeq = seq;
    this.touch(s);
    traceReceive(s.id, s.type, decoded.message, s.lastPath);
    this.send(s, { type: 'MESSAGE', message: decoded.message, at: now });
    if (this.decisionWaiters.size > 0 && decoded.message.msgId !== undefined) {
      const waiter = this.decisionWaiters.get(decoded.message.msgId);
      if (waiter) {
        this.decisionWaiters.delete(decoded.message.msgId);
        waiter((s.actor.getSnapshot().context.rejected ?? []).some((r) => r.seq === seq) ? 'rejected' : 'accepted');
      }
    }
  }

  /** Senders waiting to hear whether their message was taken or refused (turn policy `reject`), by msgId. */
  private readonly decisionWaiters = new Map<string, (d: 'accepted' | 'rejected') => void>();

  /**
   * Waits until the message published with `msgId` reaches its session here and is taken or
   * refused (turn policy `reject`); resolves `unknown` after `timeoutMs` (it may not have been
   * delivered yet, or went to a dead letter for another reason). Register before publishing.
   * An API sender learns this way, synchronously, that it got SESSION_BUSY.
   */
  awaitDecision(msgId: string, timeoutMs: number): { readonly decision: Promise<'accepted' | 'rejected' | 'unknown'>; cancel(): void } {
    let settle: (d: 'accepted' | 'rejected' | 'unknown') => void = () => undefined;
    const decision = new Promise<'accepted' | 'rejected' | 'unknown'>((resolve) => { settle = resolve; });
    const done = (d: 'accepted' | 'rejected' | 'unknown'): void => {
      clearTimeout(timer);
      if (this.decisionWaiters.get(msgId) === waiter) this.decisionWaiters.delete(msgId);
      settle(d);
    };
    const waiter = (d: 'accepted' | 'rejected'): void => { done(d); };
    this.decisionWaiters.set(msgId, waiter);
    const timer = setTimeout(() => { done('unknown'); }, timeoutMs);
    return { decision, cancel: () => { done('unknown'); } };
  }

  private send(s: LiveSession, event: SessionEvent): void {
    s.sending = event.type;
    const before = s.actor.getSnapshot();
    try { s.actor.send(event); } finally { s.sending = null; }
    // A merge is a message that re-started the running batch (cancel-and-merge), not one queued behind it.
    if (event.type === 'MESSAGE' && topState(before.value) === 'active' && s.actor.getSnapshot().context.runId !== before.context.runId) this.stats.merges++;
  }

  /**
   * Dead-letters a message of a live session that its machine will never see (undecodable,
   * session stopped). Ordered on the session's commit chain, and the message stays in `acks`
   * until the dead letter is stored: a later commit (whose last_seq passes it) must not ack it
   * before that, or a crash in between would lose it.
   */
  private deadLetterInSession(s: LiveSession, m: JsMsg, reason: string, detail: string, payload: unknown): void {
    const seq = m.seq;
    s.acks.set(seq, m);
    s.maxEnqueuedSeq = seq;
    const dl: DeadLetter = { id: `${s.id}:${seq}`, sessionId: s.id, reason, error: detail, attempts: 0, payload, createdAt: this.clock.now(), replayedAt: null };
    this.deps.logger.warn({ sessionId: s.id, seq, reason, detail }, 'message dead-lettered');
    s.open = null; // later changes must not ride on a record that commits (and acks) before this dead letter is stored
    s.inflight++;
    s.chain = s.chain.then(async () => {
      await this.retryStore(() => this.deps.store.addDeadLetter(dl));
      this.stats.deadLetters++;
      s.acks.get(seq)?.ack();
      s.acks.delete(seq);
      this.deps.transport.publishCore(DLQ_SUBJECT(s.id), JSON.stringify(dl));
    }).catch((err: unknown) => {
      this.commitFailed(s, err);
    }).finally(() => {
      s.inflight--;
      if (this.admissionWaiters.length > 0) this.admitNext();
    });
  }

  /** Dead-letters a message that never reached a session, then acks it (the dead letter keeps it). */
  private deadLetterRaw(m: JsMsg, sessionId: string, reason: string, detail: string, payload?: unknown): void {
    // The id may be anything a producer put in a subject: store it in a form Postgres accepts.
    const sid = storableText(sessionId.slice(0, 200));
    const dl: DeadLetter = {
      id: `${sid}:${m.seq}`, sessionId: sid, reason, error: storableText(detail), attempts: 0,
      payload: toStorable(payload ?? decodePayloadLoose(m)), createdAt: this.clock.now(), replayedAt: null,
    };
    this.deps.logger.warn({ sessionId: dl.sessionId, seq: m.seq, reason, detail }, 'message dead-lettered');
    this.stats.deadLetters++;
    void this.retryStore(() => this.deps.store.addDeadLetter(dl)).then(() => {
      m.ack();
      this.deps.transport.publishCore(DLQ_SUBJECT(sessionIdProblem(sessionId) === null ? sessionId : '_invalid'), JSON.stringify(dl));
    }, () => undefined);
  }

  // ---- hydration, creation, passivation --------------------------------------------------

  /**
   * Loads a session (or, when `mayCreate`, creates it with the default agent type) and makes it
   * live. Waits for a free slot under maxLiveSessions; retries while the store is unavailable.
   * The session comes back pinned: the caller unpins it once it has handed it its work.
   */
  private async hydrate(sid: string, partition: number, mayCreate: boolean, tenant?: string): Promise<LiveSession | null> {
    // A dropped predecessor's commits land (or fail) first: the store must show them.
    const predecessor = this.retiring.get(sid);
    if (predecessor) await predecessor;
    await this.admit();
    try {
      const loaded = await this.load(sid);
      if (this.live.has(sid)) return this.pin(this.live.get(sid)!);
      if (loaded) {
        const rec = this.migrated(sid, partition, loaded.record);
        if (!rec) return null; // blocked: its messages are held (holdBlocked)
        return this.pin(this.makeLive(sid, loaded.record.type, partition, rec, loaded.history.reverse().map(toHistoryItem)));
      }
      if (!mayCreate) return null;
      const type = this.deps.config.defaultAgentType;
      if (type === undefined) return null;
      const agent = this.agentOf(type);
      if (!agent) {
        this.deps.logger.error({ sessionId: sid, type }, 'default agent type is not registered');
        return null;
      }
      return this.pin(this.makeLive(sid, type, partition, null, [], tenant));
    } finally {
      this.release();
    }
  }

  /**
   * Reads a session and its recent history for hydration, batched with every other hydration
   * waiting meanwhile (one query for all of them). Retries while the store is unavailable.
   */
  private load(sid: string): Promise<LoadedSession | null> {
    return new Promise((resolve, reject) => {
      const waiting = this.loadQueue.get(sid);
      if (waiting) waiting.push({ resolve, reject });
      else this.loadQueue.set(sid, [{ resolve, reject }]);
      this.pumpLoads();
    });
  }

  private pumpLoads(): void {
    while (this.loadQueue.size > 0 && this.loadsRunning < LOAD_CONCURRENCY) {
      const batch: [string, LoadWaiter[]][] = [];
      for (const entry of this.loadQueue) {
        batch.push(entry);
        if (batch.length >= LOAD_BATCH) break;
      }
      for (const [id] of batch) this.loadQueue.delete(id);
      this.loadsRunning++;
      const ids = batch.map(([id]) => id);
      void this.retryStore(() => this.deps.store.loadSessions(ids, this.historyLimit)).then((found) => {
        for (const [id, waiters] of batch) for (const w of waiters) w.resolve(found.get(id) ?? null);
      }, (err: unknown) => {
        for (const [, waiters] of batch) for (const w of waiters) w.reject(err);
      }).finally(() => {
        this.loadsRunning--;
        this.pumpLoads();
      });
    }
  }

  private readonly loadQueue = new Map<string, LoadWaiter[]>();
  /** History a hydration loads: each agent type's `maxHistory`. */
  private historyLimit: HistoryLimit;

  /**
   * The agent definitions in `deps.agents` were replaced with new code (`Runtime.replaceAgents`):
   * later runs and hydrations use it; what is derived from the definitions is derived again.
   */
  agentsReplaced(): void {
    this.historyLimit = historyLimitOf(this.deps.agents);
    // Blocked sessions get another chance with the new code: their held messages come again.
    for (const p of this.blocked.dropAll()) this.deps.restartPartition?.(p, 'agent code replaced: sessions blocked by a failed migration hydrate again');
    // Live sessions of another version must not meet the new code with their old state: they
    // re-hydrate (and migrate); one with work under way is dropped, its messages come again.
    for (const s of [...this.live.values()]) {
      const v = this.agentOf(s.type)?.version;
      if (v === undefined || v === s.agentVersion) continue;
      if (this.quiescent(s)) this.evict(s);
      else this.dropSession(s, `agent ${s.type} changed from version ${s.agentVersion} to ${v}`);
    }
  }
  private loadsRunning = 0;

  /** The agent type's `maxMailbox` (undefined: no bound): the control plane refuses sends past it (MAILBOX_FULL). */
  maxMailboxOf(type: string): number | undefined {
    return this.agentOf(type)?.maxMailbox;
  }

  private agentOf(type: string): ResolvedAgent | undefined {
    return this.deps.agents.get(type);
  }

  /**
   * The stored record with its snapshot migrated to the agent's current version (lazy migration,
   * in memory: it is written by the session's next commit). Null when the code cannot take it:
   * the session is blocked (held messages, typed error) and its stored row is left as it is.
   */
  private migrated(sid: string, partition: number, rec: SessionRecord): SessionRecord | null {
    const agent = this.agentOf(rec.type);
    if (!agent) return rec; // a type this node does not run: its turns fail as before
    const out = migrateSnapshot(sid, agent, rec.snapshot);
    if (!out.ok) {
      this.blocked.block(sid, partition, out.error);
      this.deps.logger.error({ sessionId: sid, agentType: rec.type, code: out.error.code, reason: out.error.reason, fromVersion: out.error.fromVersion, toVersion: out.error.toVersion, err: out.error.message },
        'session snapshot cannot be migrated: the session keeps its stored snapshot and its messages stay unacked until a deploy can take it');
      this.deps.transport.publishCore(STATE_SUBJECT(sid), JSON.stringify({ agentId: sid, error: out.error.toJSON(), at: this.clock.now() }));
      return null;
    }
    if (out.changed) {
      this.blocked.migrated++;
      this.deps.logger.info({ sessionId: sid, agentType: rec.type, fromVersion: out.from, toVersion: out.to }, 'session snapshot migrated');
    }
    return out.changed ? { ...rec, snapshot: out.snapshot } : rec;
  }

  /**
   * Reads blocked sessions' rows again (at most every max(5 s, ackWaitMs) each): a row rewritten
   * meanwhile (`agentry migrate` with corrected code) that now migrates releases the session, and
   * its held messages come again, in order (the partition's feed restarts from its ack floor).
   */
  private retryBlocked(): void {
    if (this.blocked.size === 0 || this.stopping) return;
    for (const { sid, agentType } of this.blocked.due(Date.now() - Math.max(5_000, this.deps.config.ackWaitMs))) {
      const agent = this.agentOf(agentType);
      void this.deps.store.loadSession(sid).then((rec) => {
        if (!rec || !agent || !migrateSnapshot(sid, agent, rec.snapshot).ok) return;
        const p = this.blocked.release(sid);
        this.deps.logger.info({ sessionId: sid, agentType }, 'a blocked session\'s snapshot can be taken now (rewritten meanwhile): it hydrates again');
        if (p !== null) this.deps.restartPartition?.(p, `session ${sid} unblocked: its held messages come again`);
      }, (err: unknown) => { this.deps.logger.warn({ err, sessionId: sid }, 'could not re-read a blocked session; retried later'); });
    }
  }

  /**
   * Holds a message of a session blocked by a failed migration, unacked (see BlockedSessions);
   * past the type's maxMailbox it is dead-lettered `mailbox-full` instead. False: not blocked.
   */
  private holdBlocked(sid: string, m: JsMsg): boolean {
    const err = this.blocked.errorOf(sid);
    if (!err) return false;
    const max = this.agentOf(err.agentType)?.maxMailbox;
    if (max !== undefined && this.blocked.heldCount(sid) >= max) {
      this.deadLetterRaw(m, sid, 'mailbox-full', `session ${sid} holds ${max} messages (maxMailbox) while it waits for a deploy that can migrate it (${err.reason})`);
      return true;
    }
    return this.blocked.hold(sid, m);
  }

  private makeLive(sid: string, type: string, partition: number, rec: SessionRecord | null, history: HistoryItem[], tenant?: string): LiveSession {
    this.stats.hydrations++;
    const agent = this.agentOf(type);
    const now = this.clock.now();
    // No `inspect` option: it makes XState build an inspection event for every microstep of every
    // actor (measured ~10% of the per-message CPU); onSnapshot names internal events from context.
    const actor: SessionActor = rec
      ? createActor(this.machine, { snapshot: rec.snapshot as Snapshot<unknown>, clock: this.clock } as never)
      : createActor(this.machine, {
        clock: this.clock,
        input: {
          sessionId: sid, agentType: type, userState: agent ? jsonCopy(agent.initialState()) : {}, at: now, ...(tenant !== undefined ? { tenant } : {}),
          limits: agent?.limits ?? { policy: 'queue', maxMerge: 1, maxMergeDelayMs: 0, maxAttempts: 1, retryBaseMs: 0, retryCapMs: 0 },
        },
      } as never);
    const ctx = rec ? snapshotContext(rec.snapshot) : null;
    const session: LiveSession = {
      id: sid, type, partition, actor, agentVersion: agent?.version ?? (rec ? stampOf(rec.snapshot).version : 1),
      log: this.deps.logger.child({ sessionId: sid, agentType: type }),
      acks: new Map(), outputs: new Map(), historyView: history, held: [], queued: false, expired: new Map(),
      maxEnqueuedSeq: rec?.lastSeq ?? 0, committedLastSeq: rec?.lastSeq ?? 0,
      storeVersion: rec?.version ?? 0, submittedVersion: ctx?.version ?? 0,
      lastCompletedRunId: ctx?.runId ?? 0,
      lastPath: rec ? statePath((rec.snapshot as { value: unknown }).value) : 'idle',
      sending: null, lastRunId: ctx?.runId ?? 0, transitions: [], open: null, run: null, chain: Promise.resolve(), inflight: 0, lastActivity: Date.now(), updatedAt: rec?.updatedAt ?? null, broken: false, pins: 0,
    };
    const s = session;
    actor.subscribe({
      next: (snap) => { this.onSnapshot(s, snap); },
      error: (err) => { s.log.error({ err }, 'session actor failed'); },
    });
    this.live.set(sid, s);
    actor.start();
    return s;
  }

  /**
   * Creates a session explicitly (createAgent); fails if it exists. Resolves after its first
   * commit. `policy` overrides the agent type's turn policy for this session (kept in its snapshot).
   */
  async create(sid: string, type: string, userState?: unknown, policy?: TurnPolicy, tenant?: string): Promise<SessionView> {
    assertSessionId(sid);
    if (tenant !== undefined && !isTenant(tenant)) throw new AgentryError('INVALID_ARGUMENT', 'tenant must be 1-64 characters of [A-Za-z0-9_-]');
    const agent = this.agentOf(type);
    if (!agent) throw new AgentryError('UNKNOWN_AGENT_TYPE', `no agent type ${JSON.stringify(type)} is registered (known: ${[...this.deps.agents.keys()].join(', ')})`);
    let s = await this.makeNew(sid, type, null, [], tenant);
    if (userState !== undefined || policy !== undefined) {
      // Seed user state and policy by restoring from an adjusted snapshot: the machine has no "set state" event on purpose.
      const snap = s.actor.getPersistedSnapshot() as unknown as { context: SessionContext };
      snap.context = {
        ...snap.context, ...(userState !== undefined ? { userState } : {}),
        ...(policy !== undefined ? { limits: { ...snap.context.limits, policy } } : {}),
      };
      s.actor.stop();
      this.live.delete(sid);
      s = this.makeLive(sid, type, s.partition, { snapshot: snap, lastSeq: 0, version: 0 } as unknown as SessionRecord, []);
    }
    s.transitions.push({ sessionId: sid, at: this.clock.now(), event: 'create', from: '', to: 'idle' });
    this.commit(s, true);
    await s.chain;
    return this.view(s);
  }

  /**
   * Creates session `sid` from another session's recorded snapshot (forkSession: runtime/fork.ts
   * plans it) with its history rows, in one commit, as `create` does; SESSION_EXISTS when it exists.
   */
  async createFrom(sid: string, type: string, snapshot: unknown, history: readonly HistoryEntry[], lastSeq: number): Promise<SessionView> {
    assertSessionId(sid);
    if (!this.agentOf(type)) throw new AgentryError('UNKNOWN_AGENT_TYPE', `no agent type ${JSON.stringify(type)} is registered on this node`);
    const s = await this.makeNew(sid, type, { snapshot, lastSeq, version: 0 } as unknown as SessionRecord, history.map(toHistoryItem));
    s.transitions.push({ sessionId: sid, at: this.clock.now(), event: 'fork', from: '', to: s.lastPath });
    this.commit(s, true);
    s.open?.history.push(...history); // the record submits on the session's chain, after this turn
    await s.chain;
    return this.view(s);
  }

  /**
   * A new live session under an id nothing holds (live, loading or stored; else SESSION_EXISTS),
   * made inside an admission slot (`create`, `createFrom`); the caller commits it.
   */
  private async makeNew(sid: string, type: string, rec: SessionRecord | null, history: HistoryItem[], tenant?: string): Promise<LiveSession> {
    if (this.live.has(sid) || this.loading.has(sid) || (await this.retryStore(() => this.deps.store.loadSession(sid)))) {
      throw new AgentryError('SESSION_EXISTS', `session ${sid} already exists`);
    }
    await this.admit();
    try {
      if (this.live.has(sid)) throw new AgentryError('SESSION_EXISTS', `session ${sid} already exists`);
      return this.makeLive(sid, type, partitionOf(sid, this.deps.config.partitions), rec, history, tenant);
    } finally { this.release(); }
  }

  /** Live session, pinned (the caller unpins it), hydrating it if needed; throws UNKNOWN_SESSION when it does not exist. */
  private async ensureLive(sid: string): Promise<LiveSession> {
    assertSessionId(sid);
    for (;;) {
      const s = this.live.get(sid);
      if (s) return this.pin(s);
      const loading = this.loading.get(sid);
      if (!loading) {
        const got = await this.hydrateForCommand(sid);
        if (!got) throw this.blocked.errorOf(sid) ?? new AgentryError('UNKNOWN_SESSION', `no session ${sid}`);
        return got;
      }
      // Another caller's hydration: it unpins when done, so look again (it may be evicted by now).
      if (!(await loading.promise)) throw this.blocked.errorOf(sid) ?? new AgentryError('UNKNOWN_SESSION', `no session ${sid}`);
    }
  }

  private async hydrateForCommand(sid: string): Promise<LiveSession | null> {
    const entry = { buffer: [] as JsMsg[], promise: this.hydrate(sid, partitionOf(sid, this.deps.config.partitions), false) };
    this.loading.set(sid, entry);
    let s: LiveSession | null = null;
    try {
      s = await entry.promise;
      return s;
    } finally {
      this.loading.delete(sid);
      // Messages that arrived meanwhile: to the session, or (it does not exist) through the
      // normal path, which creates it with the default type or dead-letters them.
      const p = partitionOf(sid, this.deps.config.partitions);
      for (const m of entry.buffer) if (s) this.deliver(s, m); else this.dispatch(p, m);
    }
  }

  private pin(s: LiveSession): LiveSession {
    s.pins++;
    return s;
  }

  private unpin(s: LiveSession): void {
    s.pins--;
    if (this.admissionWaiters.length > 0) this.admitNext(); // it may be evictable now
  }

  private touch(s: LiveSession): void {
    s.lastActivity = Date.now();
    // Map order is the LRU order: re-insert on use.
    this.live.delete(s.id);
    this.live.set(s.id, s);
  }

  private quiescent(s: LiveSession): boolean {
    const snap = s.actor.getSnapshot();
    return s.pins === 0 && s.inflight === 0 && s.acks.size === 0 && topState(snap.value) !== 'active' && snap.context.pending.length === 0 && s.submittedVersion === snap.context.version;
  }

  /** Stops a live actor (aborting a running handler), keeping the active count right. */
  private stopActor(s: LiveSession): void {
    this.afterAbort(s, abortRun(s), 'stopped'); // stopping an actor runs no exit actions
    if (s.lastPath === 'active' || s.lastPath.startsWith('active.')) {
      this.activeDelta(s, -1);
      s.lastPath = 'stopped-live';
    }
    s.actor.stop();
  }

  private evict(s: LiveSession): void {
    this.stopActor(s);
    this.live.delete(s.id);
    this.stats.passivations++;
  }

  private passivateIdle(): void {
    const cutoff = Date.now() - this.deps.config.idleTimeoutMs;
    for (const s of this.live.values()) {
      if (s.lastActivity > cutoff) break; // LRU order: the rest are newer
      if (this.quiescent(s)) this.evict(s);
    }
    this.admitNext();
  }

  /** Waits until a live slot is free, evicting the least recently used quiescent sessions; reserves it. */
  private async admit(): Promise<void> {
    let waited = false;
    for (;;) {
      if (this.live.size + this.reserved < this.deps.config.maxLiveSessions) { this.reserved++; break; }
      for (const s of this.live.values()) {
        if (this.quiescent(s)) { this.evict(s); break; }
      }
      if (this.live.size + this.reserved < this.deps.config.maxLiveSessions) { this.reserved++; break; }
      if (this.stopping) throw new Error('runtime is shutting down');
      // Back in line, at the front if it was already waiting: FIFO among hydrations.
      await new Promise<void>((r) => { if (waited) this.admissionWaiters.unshift(r); else this.admissionWaiters.push(r); });
      waited = true;
    }
    if (waited) this.admitNext(); // pass the baton: there may be room for the next one too
  }

  /** Slots reserved by hydrations in progress. */
  private reserved = 0;

  private release(): void {
    this.reserved--;
    this.admitNext();
  }

  /**
   * Lets the first waiting hydration re-check for a slot (after a release, an eviction or a
   * commit); if it gets one, it wakes the next. Waking all of them made every commit cost
   * waiters × live-sessions quiescence checks: with thousands of hydrations queued that
   * quadratic scan took most of the CPU and starved the event loop (pool connect timeouts).
   */
  private admitNext(): void {
    this.admissionWaiters.shift()?.();
  }

  // ---- handler runs ---------------------------------------------------------------------

  /**
   * Entry of `running`: runs the handler on the batch and tells the actor how it ended. The
   * run's abort signal is made only if the handler reads it; a run that is cancelled meanwhile
   * reports nothing (its batch runs again, merged, or is settled by an interrupt or a stop).
   */
  private startRun(context: SessionContext, self: unknown): void {
    const s = this.live.get(context.sessionId);
    if (!s || s.actor !== self) return;
    const run: RunHandle = { runId: context.runId, ctl: null, aborted: false };
    s.run = run;
    const settle = (event: SessionEvent): void => {
      if (run.aborted || s.run !== run || s.broken) return;
      s.run = null;
      if (event.type === 'RUN_FAILED') this.retract(s, run, 'failed'); // a retry or a dead letter: its chunks are void
      else s.repair = undefined; // the turn that started from the repair completed: its state holds it
      s.actor.send(event);
    };
    let input = runInputOf(context);
    // Messages that expired before this turn started are dropped from it (recorded with its commit).
    const { live, expired } = input.batch.some((m) => m.expiresAt !== undefined) ? splitExpired(input.batch, this.clock.now()) : { live: [], expired: [] };
    if (expired.length > 0) {
      for (const m of expired) if (!s.expired.has(m.seq)) s.expired.set(m.seq, this.clock.now());
      input = { ...input, batch: live };
    }
    // The handler starts after the transition that started it, never inside XState's step, and
    // in a later event-loop turn once this turn has run handlers for long enough (runPacer.ts).
    this.pacer.start(() => {
      if (run.aborted || s.run !== run || s.broken) return; // cancelled while waiting for its turn
      if (input.batch.length === 0) { // everything expired: no handler run, the turn commits the expiries
        run.settled = true;
        settle({ type: 'RUN_DONE', runId: run.runId, output: { userState: s.repair ? s.repair.state : input.userState, next: { type: 'idle' }, finishedAt: this.clock.now() } });
        return;
      }
      this.runHandler(s, input, run).then(
        (output) => { settle({ type: 'RUN_DONE', runId: run.runId, output }); },
        (error: unknown) => { settle({ type: 'RUN_FAILED', runId: run.runId, error }); },
      );
    });
  }

  /** Exit of `running` (a merge, an interrupt, a stop): the run in flight is aborted. */
  private cancelRun(sid: string, self: unknown, reason: string): void {
    const s = this.live.get(sid);
    if (s && s.actor === self) this.afterAbort(s, abortRun(s), reason);
  }

  /**
   * After a run was aborted: its streamed chunks are retracted, and a handler still running
   * `abortGraceMs` later is counted (`abortIgnored`, metric agentry_handler_abort_ignored_total)
   * and logged: it ignores `ctx.signal`. Its result is discarded whenever it comes (the run is
   * marked aborted: no RUN_DONE, no outputs).
   */
  private afterAbort(s: LiveSession, run: RunHandle | null, reason: string): void {
    if (!run) return;
    endRunTrace(run.trace, 'aborted', reason);
    run.trace = undefined;
    // A turn dropped by a newer message: the run that replaces it links its messages.
    if ((reason === 'superseded' || reason === 'rolled-back') && run.started) {
      (s.dropped ??= []).push(...run.started.batch.filter((m) => m.traceparent !== undefined).map((message) => ({ message, fate: reason })));
    }
    const streamed = run.streamed ?? 0;
    this.retract(s, run, reason);
    this.repairAfterAbort(s, run, reason, streamed);
    if (run.settled) return;
    const grace = this.deps.config.abortGraceMs;
    const t = setTimeout(() => {
      if (run.settled) return;
      this.stats.abortIgnored++;
      s.log.warn({ runId: run.runId, graceMs: grace, reason }, 'an aborted handler is still running past the grace: it ignores ctx.signal; its result will be discarded');
    }, grace);
    t.unref();
  }

  /**
   * Runs the agent's `onAbort` hook for a turn whose handler had started: it gets a draft of the
   * state the turn started from and may repair it; the next turn starts from the repair (and
   * commits it). Synchronous, so the repair is there before the next turn's handler starts.
   */
  private repairAfterAbort(s: LiveSession, run: RunHandle, reason: string, streamed: number): void {
    const hook = this.agentOf(s.type)?.onAbort;
    const started = run.started;
    if (!hook || !started) return;
    try {
      const actx = {
        sessionId: s.id, agentType: s.type, state: structuredClone<unknown>(started.state), now: () => this.clock.now(),
        log: {
          debug: (msg: string, f?: Record<string, unknown>) => { s.log.debug(f ?? {}, msg); },
          info: (msg: string, f?: Record<string, unknown>) => { s.log.info(f ?? {}, msg); },
          warn: (msg: string, f?: Record<string, unknown>) => { s.log.warn(f ?? {}, msg); },
          error: (msg: string, f?: Record<string, unknown>) => { s.log.error(f ?? {}, msg); },
        },
      };
      const r = (hook as (...a: unknown[]) => unknown)(actx, { runId: run.runId, reason, batch: started.batch, state: started.draft(), streamed });
      if (r instanceof Promise) s.log.warn({ runId: run.runId }, 'onAbort returned a promise: it must be synchronous; only what it changed before its first await counts');
      s.repair = { state: JSON.parse(JSON.stringify(actx.state ?? null)) as unknown };
    } catch (err) {
      s.log.warn({ err, runId: run.runId }, 'onAbort failed; the repair is dropped');
    }
  }

  /**
   * Publishes a `retracted` notice after the chunks a run streamed, when that run will not be
   * committed (aborted, rolled back, failed): `agentry.out.<id>` with `Agentry-Kind: retracted`,
   * `Agentry-Run: <runId>` and body `{ run, chunks, reason }`, so clients drop those chunks.
   */
  private retract(s: LiveSession, run: RunHandle, reason: string): void {
    const chunks = run.streamed ?? 0;
    if (chunks === 0) return;
    run.streamed = 0;
    this.deps.transport.publishCore(OUT_SUBJECT(s.id), JSON.stringify({ run: run.runId, chunks, reason }), { [H.kind]: 'retracted', [H.run]: String(run.runId) });
  }

  private async runHandler(s: LiveSession, input: RunInput, run: RunHandle): Promise<RunOutput> {
    const budgets = this.deps.budgets;
    if (!budgets) return this.runAgent(s, input, run, null);
    // Budgets (runtime/budgets.ts, host/budgetTurn.ts): the runtime's own budget messages are
    // taken out, a person's answer applied, the limits checked before the turn, and a breach of
    // a pause or ask limit holds the turn's messages instead of running or failing them.
    const subject = { sessionId: s.id, type: s.type, tenant: s.actor.getSnapshot().context.tenant ?? null };
    const metered = budgets.applies(subject);
    const { rest, decision } = budgetNotices(input.batch);
    const started = this.clock.now();
    const hold = (b: BudgetBreach, policy: string): RunOutput | null => {
      if (policy === 'abort') throw exceededError(b);
      return policy === 'pause' || policy === 'ask' ? heldTurn(input, rest, b, policy, this.clock.now(), this.deps.config.budgetAskTimeoutMs) : null;
    };
    try {
      if (decision === 'stop') {
        setTimeout(() => {
          void this.command(s.id, { type: 'STOP', at: this.clock.now(), reason: 'budget: stopped by a person' }).catch((err: unknown) => { s.log.warn({ err }, 'could not stop the session after a budget answer'); });
        }, 0);
        return { userState: input.userState, next: { type: 'sleep', wake: { until: null, events: [], mailPriority: null } }, finishedAt: this.clock.now(), requeue: rest };
      }
      if (rest.length === 0) return { userState: input.userState, next: { type: 'idle' }, finishedAt: this.clock.now() };
      const pre = metered ? await budgets.beforeTurn(subject, String(input.runId)) : null;
      if (pre) {
        const held = hold(pre, decision === 'pause' && pre.limit.policy === 'ask' ? 'pause' : pre.limit.policy);
        if (held) return held;
      }
      const batch = rest.length === input.batch.length ? input.batch : rest.map((i) => input.batch[i]!);
      let breach: BudgetBreach | null = null;
      const turnKey = turnKeyOf(input.batch, input.runId);
      const ctxBudget = () => budgets.handlerBudget(subject, turnKey, (b) => { breach = b; run.budgetBreach = { policy: b.limit.policy }; });
      let out: RunOutput;
      try {
        out = await this.runAgent(s, { ...input, batch }, run, ctxBudget);
      } catch (err) {
        const b = breach as BudgetBreach | null;
        const held = b ? hold(b, b.limit.policy) : null;
        if (held) return held;
        throw err;
      }
      const b = breach as BudgetBreach | null;
      const held = b ? hold(b, b.limit.policy) : null; // the handler caught the breach: its policy still applies
      if (held) { s.outputs.delete(input.runId); return held; }
      return out;
    } finally {
      if (metered) budgets.meterTurn(subject, String(input.runId), this.clock.now() - started);
    }
  }

  private async runAgent(s: LiveSession, input: RunInput, run: RunHandle, budget: (() => HandlerBudget) | null): Promise<RunOutput> {
    const agent = this.agentOf(input.agentType);
    if (!agent) throw new TerminalError(`agent type ${input.agentType} is not registered on this node`);
    this.stats.runs++;
    if (input.attempt > 1) this.stats.retries++;
    const outputs: PendingOutput[] = [];
    // The run's logger is made on first use: most runs never log (a child logger per run cost ~2% of CPU).
    let runLog: Logger | undefined;
    const log = (): Logger => (runLog ??= s.log.child({ runId: input.runId, attempt: input.attempt }));
    const now = (): number => this.clock.now();
    // After an aborted turn the agent's onAbort may have repaired the state: start from that.
    const startInput = s.repair ? { ...input, userState: s.repair.state } : input;
    run.trace = startRunTrace(s.id, s.type, input.runId, input.attempt, input.batch, s.dropped?.splice(0));
    const { ctx, finalState } = createHandlerContext({
      input: startInput, run, outputs, now, log, history: () => s.historyView,
      tenant: s.actor.getSnapshot().context.tenant ?? null,
      budget: budget ?? (() => { throw new AgentryError('INVALID_ARGUMENT', 'budgets are not enabled on this runtime'); }),
      publishChunk: (subject, body, headers) => { this.deps.transport.publishCore(subject, body, headers); },
    });
    run.started = { state: startInput.userState, batch: input.batch, draft: () => ctx.state };
    let result: Awaited<ReturnType<typeof agent.handle>>;
    try {
      result = await agent.handle(input.batch, ctx);
    } catch (err) {
      // Each failed attempt, with its stack (a dead letter keeps only the message); not a superseded run.
      if (!run.aborted && !run.budgetBreach) log().warn({ err, seqs: input.batch.map((m) => m.seq), maxAttempts: agent.limits.maxAttempts }, 'handler failed');
      this.endTrace(s, run, input.runId, 'failed', err);
      throw err;
    } finally {
      run.settled = true;
    }
    const runTrace = run.trace;
    this.endTrace(s, run, input.runId, 'ok');
    const userState = finalState();
    if (!run.aborted) s.outputs.set(input.runId, outputs);
    return { userState, next: runTrace ? nextStepWithTrace(nextStepOf(result), runTrace.headers) : nextStepOf(result), finishedAt: now() };
  }

  /** Ends a run's span (once) and keeps its context for the span of the run's commit. */
  private endTrace(s: LiveSession, run: RunHandle, runId: number, outcome: 'ok' | 'failed', err?: unknown): void {
    const t = run.trace;
    if (!t) return;
    endRunTrace(t, outcome, err);
    run.trace = undefined;
    if (!run.aborted && t.span) (s.runTraces ??= new Map()).set(runId, t.span.spanContext());
  }

  // ---- commit pipeline ------------------------------------------------------------------

  private onSnapshot(s: LiveSession, snap: ReturnType<SessionActor['getSnapshot']>): void {
    try {
      const path = statePath(snap.value);
      // A merge or an interrupt that starts the next batch leaves the path unchanged: record it anyway.
      const restarted = path === s.lastPath && path.startsWith('active') && snap.context.runId !== s.lastRunId;
      s.lastRunId = snap.context.runId;
      if (path !== s.lastPath || restarted) {
        const wasActive = s.lastPath === 'active' || s.lastPath.startsWith('active.');
        const isActive = topState(snap.value) === 'active';
        if (isActive && !wasActive) this.activeDelta(s, 1);
        if (wasActive && !isActive) { this.activeDelta(s, -1); queueMicrotask(() => { this.pump(); }); }
        const at = this.clock.now();
        const event = s.sending ?? internalEventOf(s, snap);
        s.transitions.push({ sessionId: s.id, at, event, from: s.lastPath, to: path });
        for (const l of this.listeners) l.onState?.(s.id, s.lastPath, path, event, at);
        if (this.deps.config.stateNotices) this.deps.transport.publishCore(STATE_SUBJECT(s.id), JSON.stringify({ agentId: s.id, from: s.lastPath, to: path, state: topState(snap.value), event, at }));
        s.lastPath = path;
      }
      if (snap.context.version > s.submittedVersion) this.commit(s, false);
    } catch (err) {
      s.log.error({ err }, 'failed to record a session change');
    }
  }

  /**
   * Records a session's durable change. With no record of the session waiting, it opens one
   * and queues its submission on the session's chain (after the record in flight, so v+1
   * never reaches the store before v); otherwise the change merges into the waiting record.
   */
  private commit(s: LiveSession, force: boolean): void {
    const snap = s.actor.getSnapshot();
    const ctx = snap.context;
    if (!force && ctx.version <= s.submittedVersion) return;
    s.submittedVersion = ctx.version;
    const completed = ctx.completed && ctx.completed.runId !== s.lastCompletedRunId ? ctx.completed : null;
    if (completed) s.lastCompletedRunId = completed.runId;
    const epoch = this.deps.ownerEpoch?.(s.partition) ?? 0;
    let p = s.open;
    if (p && (p.epoch !== epoch || this.soloCommits.has(s.id))) p = null;
    const fresh = p === null;
    if (!p) s.open = p = newPendingCommit(snap, epoch);
    p.snap = snap;
    if (s.transitions.length > 0) p.transitions.push(...s.transitions.splice(0));
    if (completed) {
      addCompletedRun(p, s.id, completed, s.outputs.get(completed.runId) ?? [], this.clock.now());
      recordExpired(p, s.id, completed, s.expired);
      for (const k of s.outputs.keys()) if (k <= completed.runId) s.outputs.delete(k);
    }
    if (!fresh) { this.stats.coalesced++; return; }
    const record = p;
    s.inflight++;
    s.chain = s.chain.then(() => this.submitPending(s, record)).catch((err: unknown) => {
      this.commitFailed(s, err);
    }).finally(() => {
      s.inflight--;
      if (this.admissionWaiters.length > 0) this.admitNext();
    });
  }

  /** Submits a session's waiting record (closing it to further changes) and settles what it covers. */
  private async submitPending(s: LiveSession, p: PendingCommit): Promise<void> {
    if (s.open === p) s.open = null;
    if (s.broken) return; // an earlier link failed: this version can never land
    const version = ++s.storeVersion;
    const record = commitRecordOf(p, s, version, this.agentOf(s.type)?.subscribe ?? []);
    for (const dl of p.deadLetters) await this.retryStore(() => this.deps.store.addDeadLetter(dl));
    const runs = p.completed.map((c) => ({ runId: c.runId, run: s.runTraces?.get(c.runId), batch: c.batch, settled: c.settled ?? [], outcome: c.outcome }));
    for (const c of p.completed) s.runTraces?.delete(c.runId);
    try {
      await traceCommit(s.id, runs, () => this.deps.committer.submit(record));
    } catch (err) {
      if ((err as { code?: string }).code === 'STORE_DATA') {
        if (p.completed.length === 1) await this.deadLetterUnstorable(s, p.completed[0]!, err);
        // Several runs in one record: which one is poison is unknown. Its messages come again
        // (the drop restarts the feed) and commit one run per record, so the poison one stands alone.
        else if (p.completed.length > 1) this.markSolo(s.id);
      }
      throw err;
    }
    this.stats.commits++;
    this.afterCommit(s, record, p.deadLetters);
    await tracePublish(s.id, runs.map((r) => r.run), record.outbox.length, () => this.outbox.publish(record.outbox));
  }

  /** Sessions whose records must not merge changes (a merged record was refused as data). */
  private readonly soloCommits = new Set<string>();

  private markSolo(sid: string): void {
    if (this.soloCommits.size >= 10_000) this.soloCommits.delete(this.soloCommits.values().next().value as string);
    this.soloCommits.add(sid);
  }

  /**
   * A link of a session's commit chain failed (stale version, fenced, unstorable, shutdown):
   * the live copy can no longer be trusted. Drop it; it re-hydrates from the store.
   */
  private commitFailed(s: LiveSession, err: unknown): void {
    if (!s.broken) {
      if (this.stopping) s.log.warn({ err: errorInfo(err).message }, 'commit abandoned at shutdown (its messages are redelivered)');
      // The partition moved (a release, a lost lease): expected, and nothing is lost.
      else if ((err as { code?: string }).code === 'FENCED') s.log.warn({ err: errorInfo(err).message }, 'commit refused: the partition has a newer owner (its messages and wakes go there)');
      else s.log.error({ err }, 'commit failed; dropping the live session so it re-hydrates from the store');
    }
    this.dropSession(s, `commit failed: ${errorInfo(err).message}`);
  }

  /**
   * Stops a live session and forgets it. When it held unacked messages, its partition's feed
   * restarts in this same tick, so none of its newer messages can reach a fresh hydration
   * before the older ones come back (that order break lost messages for good).
   */
  private dropSession(s: LiveSession, why: string): void {
    const first = !s.broken;
    s.broken = true;
    if (this.live.get(s.id) === s) {
      this.stopActor(s);
      this.live.delete(s.id);
      this.retiring.set(s.id, s.chain);
      void s.chain.then(() => { if (this.retiring.get(s.id) === s.chain) this.retiring.delete(s.id); });
    }
    if (first && !this.stopping && (s.acks.size > 0 || s.held.length > 0) && (this.deps.ownerEpoch?.(s.partition) ?? 1) > 0) {
      this.deps.restartPartition?.(s.partition, `session ${s.id} dropped with unacked messages (${why})`);
    }
  }

  /** Commit chains of dropped sessions: a new hydration of the same id waits for its predecessor's. */
  private readonly retiring = new Map<string, Promise<void>>();

  /**
   * The run's commit holds data Postgres cannot store (handler state or output with a NUL, a
   * lone surrogate, …). Retrying cannot help: its messages become one dead letter (stored in a
   * form Postgres accepts) and are acked; the session re-hydrates from its last good snapshot.
   */
  private async deadLetterUnstorable(s: LiveSession, c: CompletedRun, err: unknown): Promise<void> {
    const seqs = c.batch.map((m) => m.seq).filter((q) => q > 0);
    const dl: DeadLetter = {
      id: `${s.id}:${batchRange(c)}`, sessionId: s.id, reason: 'unstorable',
      error: `the store refused the run's result: ${errorInfo(err).message}`, attempts: c.attempts,
      payload: toStorable(c.batch), createdAt: this.clock.now(), replayedAt: null,
    };
    await this.retryStore(() => this.deps.store.addDeadLetter(dl));
    this.soloCommits.delete(s.id); // the poison run is found: this session's records may merge again
    this.stats.deadLetters++;
    s.log.error({ deadLetterId: dl.id, reason: dl.reason, attempts: dl.attempts, error: dl.error }, 'batch dead-lettered');
    for (const q of seqs) { s.acks.get(q)?.ack(); s.acks.delete(q); }
    this.deps.transport.publishCore(DLQ_SUBJECT(s.id), JSON.stringify(dl));
  }

  private afterCommit(s: LiveSession, record: CommitRecord, deadLetters: readonly DeadLetter[]): void {
    s.committedLastSeq = Math.max(s.committedLastSeq, record.lastSeq);
    s.updatedAt = this.clock.now();
    for (const [seq, m] of s.acks) {
      if (seq <= record.lastSeq) { m.ack(); s.acks.delete(seq); }
    }
    if (record.history.length > 0) {
      const agent = this.agentOf(s.type);
      const max = agent?.maxHistory ?? 50;
      s.historyView.push(...record.history.map(toHistoryItem));
      if (s.historyView.length > max) s.historyView.splice(0, s.historyView.length - max);
    }
    for (const dl of deadLetters) {
      this.stats.deadLetters++;
      s.log[dl.reason === 'handler-failed' ? 'error' : 'warn']({ deadLetterId: dl.id, reason: dl.reason, attempts: dl.attempts, error: dl.error }, 'batch dead-lettered');
      this.deps.transport.publishCore(DLQ_SUBJECT(s.id), JSON.stringify(dl));
    }
    for (const l of this.listeners) l.onCommitted?.(record);
  }

  /**
   * Publishes again the stored outbox rows of `partitions` older than `olderThanMs` (a partition
   * just taken: what its previous owner left unpublished). Resolves with how many went out, null
   * when a publish failed (the periodic sweep retries).
   */
  sweepOutbox(partitions: readonly number[], olderThanMs: number): Promise<number | null> {
    return this.outbox.sweep(partitions, olderThanMs);
  }

  /** Rows published by outbox sweeps (tests, metrics). */
  outboxSwept(): number {
    return this.outbox.swept;
  }

  private keepAlive(): void {
    for (const s of this.live.values()) for (const m of s.acks.values()) m.working();
    for (const l of this.loading.values()) for (const m of l.buffer) m.working();
    this.blocked.keepAlive();
  }

  /** Retries a store call while the store is unavailable (it fails readiness meanwhile). */
  private async retryStore<T>(fn: () => Promise<T>): Promise<T> {
    let delay = 50;
    for (;;) {
      try { return await fn(); } catch (e) {
        if ((e as { retryable?: boolean }).retryable === false || !(e as { code?: string }).code?.startsWith('STORE')) throw e;
        if (this.stopping) throw e;
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, 2000);
      }
    }
  }

  // ---- wake-ups -------------------------------------------------------------------------

  /**
   * A sleep deadline or wait timeout fell due (from the scheduler). Wakes the session if it
   * still sleeps/waits on that deadline; queues the wake while all handler slots are taken.
   * Resolves false when the wake could not be delivered (the session could not be loaded, or
   * was dropped meanwhile: a lost partition, a failed commit): the caller fires it again.
   * `onRetry` is for a wake queued behind busy slots, which settles only later.
   */
  async wakeDue(sid: string, dueAt: number, onRetry?: () => void): Promise<boolean> {
    // Take a slot before loading: with 100,000 wakes due at once, loading first filled the pool
    // with reads and starved commits. A wake waits in the queue without touching the store.
    if (!this.hasCapacity()) {
      this.enqueueReady('normal', dueAt, () => { void this.wakeDue(sid, dueAt, onRetry).then((ok) => { if (!ok) onRetry?.(); }); });
      return true;
    }
    this.reservedWakes++;
    let s: LiveSession;
    try { s = await this.ensureLive(sid); } catch (err) {
      // Unknown, or blocked by a failed migration: its stored wake is found again after a deploy.
      if ((err as { code?: string }).code === 'UNKNOWN_SESSION' || (err as { code?: string }).code === 'MIGRATION_FAILED') return true;
      if (!this.stopping) this.deps.logger.warn({ err, sessionId: sid }, 'could not load a session to wake it; retrying');
      return false;
    } finally {
      this.reservedWakes--;
      queueMicrotask(() => { this.pump(); });
    }
    const fire = (): boolean => {
      if (this.live.get(sid) !== s || s.broken) return false;
      const ctx = s.actor.getSnapshot().context;
      const state = topState(s.actor.getSnapshot().value);
      const now = this.clock.now();
      if (state === 'sleeping' && ctx.wake?.until !== null && ctx.wake?.until !== undefined && ctx.wake.until <= now) {
        this.touch(s);
        this.send(s, { type: 'WAKE', reason: 'time', at: now });
      } else if (state === 'waiting' && ctx.wait?.timeoutAt !== null && ctx.wait?.timeoutAt !== undefined && ctx.wait.timeoutAt <= now) {
        const wp = ctx.wait.waitpoint;
        if (wp) {
          // A waitpoint times out through the store (one CAS with its message), so a completion
          // racing the timeout cannot also land; its message ends the wait. Only a missing row
          // (cannot happen: the wait's commit stored it) falls back to a plain timeout.
          void this.waitpoints.expire({ id: wp.id, sessionId: sid, hasDefault: wp.hasDefault, defaultValue: wp.default }).then((r) => {
            if (r !== 'missing' || this.live.get(sid) !== s || s.broken) return;
            this.deps.logger.warn({ sessionId: sid, waitpoint: wp.id }, 'waitpoint row missing at its timeout; the session times out without it');
            this.touch(s);
            this.send(s, { type: 'WAKE', reason: 'timeout', at: this.clock.now() });
          }, (err: unknown) => { this.deps.logger.warn({ err, sessionId: sid }, 'could not time out a waitpoint; the scheduler fires it again'); });
          return true;
        }
        this.touch(s);
        this.send(s, { type: 'WAKE', reason: 'timeout', at: now });
      }
      return true; // woken, or no longer due (its commit tells the scheduler either way)
    };
    try {
      return fire(); // the slot this wake reserved is now its own (or it was stale and frees it)
    } finally {
      this.unpin(s);
    }
  }

  // ---- commands -------------------------------------------------------------------------

  /** Current view of a session, live or stored; null when it does not exist. */
  async get(sid: string): Promise<SessionView | null> {
    assertSessionId(sid);
    const s = this.live.get(sid);
    if (s) return this.view(s);
    const rec = await this.deps.store.loadSession(sid);
    if (!rec) return null;
    const ctx = snapshotContext(rec.snapshot);
    const blocked = this.blocked.errorOf(sid);
    return {
      ...viewOf(sid, rec.type, (rec.snapshot as { value: unknown }).value, ctx, false, rec.updatedAt),
      agentVersion: stampOf(rec.snapshot).version, ...(blocked ? { migrationError: blocked.toJSON() } : {}),
    };
  }

  private view(s: LiveSession): SessionView {
    const snap = s.actor.getSnapshot();
    return { ...viewOf(s.id, s.type, snap.value, snap.context, true, s.updatedAt), agentVersion: s.agentVersion };
  }

  /**
   * Applies a control command and resolves once its effect is committed. Commands a state
   * cannot accept fail with INVALID_TRANSITION naming the state.
   */
  async command(sid: string, event: SessionEvent): Promise<SessionView & { changed: boolean }> {
    const s = await this.ensureLive(sid);
    let changed: boolean;
    try {
      const state = topState(s.actor.getSnapshot().value);
      const verb = event.type.toLowerCase();
      const accepts: Record<SessionEvent['type'], readonly string[]> = {
        SLEEP: ['idle', 'active', 'sleeping'], WAIT: ['idle'], WAKE: ['sleeping', 'waiting', 'idle', 'active'],
        STOP: ['idle', 'active', 'sleeping', 'waiting'], INTERRUPT: ['active', 'idle', 'sleeping', 'waiting'], MESSAGE: [], RUN_DONE: [], RUN_FAILED: [],
      };
      if (state === 'stopped' || !accepts[event.type].includes(state)) throw new InvalidTransitionError(sid, state, verb);
      const before = s.actor.getSnapshot().context.version;
      this.touch(s);
      this.send(s, event);
      changed = s.actor.getSnapshot().context.version !== before;
    } finally {
      this.unpin(s); // the change it made (if any) is committing now: that keeps it live until done
    }
    await s.chain;
    return { ...this.view(s), changed };
  }

  /**
   * The session TTL (runtime/sessionTtl.ts) for one session of an owned partition: stops it if it
   * committed nothing since `cutoff`, holds no message, runs nothing and has no wake-up time
   * pending — through the normal path (a STOP event, committed under the partition's epoch like
   * any change) — and with `purge` then deletes it (also one stopped before). Every check and the
   * STOP happen in one synchronous step after hydration, so no message can slip in between; a
   * session that got one is kept for a later round.
   *
   * A purge deletes the row only if it is still the stopped version this node saw (compare-and-
   * set) and no outbox row is left. While it runs, the id is `retiring`: a message arriving meanwhile
   * hydrates only after the purge, finds no session, and is handled as for any unknown id (a new
   * session of the default agent type, else a dead letter `unknown-session`) — never applied to
   * the deleted one, never lost.
   */
  async expireIdle(sid: string, cutoff: number, purge: boolean): Promise<'stopped' | 'purged' | 'kept'> {
    const rec = await this.deps.store.loadSession(sid);
    if (!rec || rec.updatedAt >= cutoff || this.blocked.errorOf(sid)) return 'kept';
    let stopped = false;
    if (rec.status !== 'stopped') {
      if (rec.wakeAt !== null) return 'kept'; // a sleep or wait with a deadline: the deadline decides
      let s: LiveSession;
      try { s = await this.ensureLive(sid); } catch { return 'kept'; }
      try {
        const snap = s.actor.getSnapshot();
        const state = topState(snap.value);
        const busy = state === 'active' || state === 'stopped' || s.acks.size > 0 || s.held.length > 0 || s.inflight > 0 || snap.context.pending.length > 0;
        const wakeAt = snap.context.wake?.until ?? snap.context.wait?.timeoutAt ?? null;
        if (busy || wakeAt !== null || (s.updatedAt !== null && s.updatedAt >= cutoff)) return 'kept';
        this.send(s, { type: 'STOP', at: this.clock.now(), reason: 'idle longer than the agent type\'s sessionTtl' });
      } finally { this.unpin(s); }
      await s.chain;
      if (s.broken || topState(s.actor.getSnapshot().value) !== 'stopped') return 'kept';
      this.ttlCounts.stopped++;
      stopped = true;
      if (!purge) return 'stopped';
    } else if (!purge) return 'kept';
    const live = this.live.get(sid);
    if (live && !this.quiescent(live)) return stopped ? 'stopped' : 'kept';
    if (live) this.evict(live);
    if (this.loading.has(sid) || this.retiring.has(sid)) return stopped ? 'stopped' : 'kept';
    // From here until the purge settles, a hydration of this id waits (it must not read the old row).
    const purging = (async () => {
      const current = await this.deps.store.loadSession(sid);
      return !!current && current.status === 'stopped' && await this.retryStore(() => this.deps.store.purgeSession(sid, current.version));
    })();
    const gate = purging.then(() => undefined, () => undefined);
    this.retiring.set(sid, gate);
    void gate.then(() => { if (this.retiring.get(sid) === gate) this.retiring.delete(sid); });
    if (!(await purging)) return stopped ? 'stopped' : 'kept';
    this.ttlCounts.purged++;
    return 'purged';
  }

  /**
   * Lets go of partition p's sessions when its lease moves. Graceful (rebalancing): running
   * handlers get up to `graceMs` and commits drain first. Not graceful (the lease was lost):
   * actors stop at once; their unacked messages go to the new owner, and any commit still in
   * flight is refused by the store's epoch check.
   *
   * If this node owns p again by the time its sessions are dropped (the runtime orders a
   * partition's release before its next acquisition, so this is a guard), the messages they
   * held are unacked in the *current* consumer, which would hand newer ones to a fresh
   * hydration and later redeliver the held ones as "duplicates" of what that committed (they
   * were acked and lost, found in the scale-out bench): the feed restarts from its oldest
   * unacked message instead.
   */
  async releasePartition(p: number, graceful: boolean, graceMs: number): Promise<void> {
    const mine = (): LiveSession[] => [...this.live.values()].filter((s) => s.partition === p);
    if (graceful) {
      const deadline = Date.now() + graceMs;
      while (mine().some((s) => topState(s.actor.getSnapshot().value) === 'active' || s.inflight > 0) && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 20));
      }
    }
    const leaving = mine();
    const blockedHeld = this.blocked.dropPartition(p);
    const heldMessages = blockedHeld || leaving.some((s) => s.acks.size > 0 || s.held.length > 0);
    for (const s of leaving) {
      s.broken = true; // nothing more goes to it
      this.stopActor(s);
      this.live.delete(s.id);
      this.retiring.set(s.id, s.chain);
      void s.chain.then(() => { if (this.retiring.get(s.id) === s.chain) this.retiring.delete(s.id); });
    }
    if (heldMessages && !this.stopping && (this.deps.ownerEpoch?.(p) ?? 0) > 0) {
      this.deps.restartPartition?.(p, 'sessions dropped by a release held unacked messages, and the partition is owned again');
    }
    // Commits still in flight carry the old epoch: they land or are fenced; bounded either way.
    if (graceful) await settleWithin(Promise.all(leaving.map((s) => s.chain)), graceMs);
    this.outbox.flushDeletes(); // rows published for them: the next owner's takeover sweep must not find them
    this.admitNext();
    this.pump();
  }

  /**
   * Stops taking work, lets running handlers finish for up to `graceMs`, then aborts them and
   * waits for commits until the same deadline. What is left (a store that does not answer)
   * is reported, not waited for: those messages are unacked and go to the next owner.
   */
  async shutdown(graceMs: number): Promise<ShutdownReport> {
    const deadline = Date.now() + graceMs;
    while (this.activeCount() > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    this.stopping = true;
    for (const w of this.admissionWaiters.splice(0)) w();
    if (this.sweeper) clearInterval(this.sweeper);
    const sessions = [...this.live.values()];
    for (const s of sessions) this.stopActor(s); // aborts what still runs: its messages stay unacked
    const clean = await settleWithin(Promise.all(sessions.map((s) => s.chain)), Math.max(0, deadline - Date.now()));
    this.outbox.flushDeletes();
    this.live.clear();
    return {
      clean,
      unackedMessages: sessions.reduce((n, s) => n + s.acks.size, 0) + [...this.loading.values()].reduce((n, l) => n + l.buffer.length, 0) + this.blocked.heldTotal(),
      sessionsWithPendingCommits: sessions.filter((s) => s.inflight > 0).length,
    };
  }
}

/**
 * Names the internal event behind a snapshot no external event caused, for the timeline: a run
 * that finished (`run.done`), failed (`run.failed`, then retried or dead-lettered) or a retry.
 */
function internalEventOf(s: LiveSession, snap: { value: unknown; context: SessionContext }): string {
  if (s.lastPath === 'active.retrying' && statePath(snap.value) === 'active.running') return 'retry';
  const c = snap.context.completed;
  if (c && c.runId !== s.lastCompletedRunId) return c.outcome === 'ok' ? 'run.done' : 'run.failed';
  if (statePath(snap.value) === 'active.retrying') return 'run.failed';
  return 'run.done';
}

/**
 * A fresh session's initial state as the store will hold it (a run that never touches `ctx.state`
 * hands it on as is); a value JSON cannot carry is left for the first run to refuse.
 */
function jsonCopy(v: unknown): unknown {
  try { return JSON.parse(JSON.stringify(v ?? null)) as unknown; } catch { return v; }
}

function prioOf(m: JsMsg): Priority {
  const p = m.headers?.get(H.priority);
  return p === 'low' || p === 'high' || p === 'urgent' ? p : 'normal';
}

function toHistoryItem(h: HistoryEntry): HistoryItem {
  return { seq: h.seq, kind: h.kind, body: h.body, from: h.from, batchId: h.batchId, outcome: h.outcome, at: h.at };
}

function decodePayloadLoose(m: JsMsg): unknown {
  try { return new TextDecoder().decode(m.data.subarray(0, 64 * 1024)); } catch { return null; }
}

function viewOf(sid: string, type: string, value: unknown, ctx: SessionContext, live: boolean, updatedAt: number | null): SessionView {
  return {
    agentId: sid, type, tenant: ctx.tenant ?? null, state: topState(value), stateValue: statePath(value), policy: ctx.limits.policy, userState: ctx.userState, lastSeq: ctx.lastSeq,
    wake: ctx.wake, wait: ctx.wait,
    mailbox: {
      pending: ctx.pending.length, running: ctx.batch.length, rejected: ctx.rejected?.length ?? 0,
      deferred: ctx.deferred.map((m: InboxMessage) => ({ seq: m.seq, kind: m.kind, priority: m.priority, at: m.at, ...(m.from ? { from: m.from } : {}) })),
    },
    lastError: ctx.lastError, live, updatedAt,
  };
}

/** A tenant name: 1-64 characters of [A-Za-z0-9_-] (it becomes a metrics label and a lock key). */
export function isTenant(t: unknown): t is string {
  return typeof t === 'string' && /^[A-Za-z0-9_-]{1,64}$/.test(t);
}

/** History a hydration loads per agent type (its `maxHistory`), 50 for a type no longer registered. */
function historyLimitOf(agents: ReadonlyMap<string, ResolvedAgent>): HistoryLimit {
  return { byType: Object.fromEntries([...agents].map(([t, a]) => [t, a.maxHistory])), fallback: 50 };
}
