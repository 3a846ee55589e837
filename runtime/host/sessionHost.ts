/**
 * Owns the live session actors of this node: it hydrates sessions on demand, names and commits
 * their transitions, applies control commands, delivers due wake-ups and lets go of partitions.
 * Each stage of the pipeline has its own file in runtime/host/:
 * - inbound.ts: a message of an owned partition is dispatched, de-duplicated, admitted (mailbox
 *   bound, tenant rate, active slot) and checked at the door, then sent to its actor;
 * - liveSession.ts: the record kept beside each actor, and the read model (`SessionView`);
 * - liveSlots.ts: maxLiveSessions — LRU, pins, passivation, hydrations waiting for a slot;
 * - activeSlots.ts + fairQueue.ts: maxActiveSessions / maxActivePerTenant, fair across tenants;
 * - tenantPacer.ts: AGENTRY_TENANT_RATE — a tenant's messages over its rate wait (deferred, unacked);
 * - sessionLoader.ts: batched hydration reads;  migrationGate.ts: lazy snapshot migration;
 * - handlerRuns.ts (+ handlerContext.ts, budgetTurn.ts, runPacer.ts): the handler runs;
 * - commitChain.ts (+ commitRecord.ts): commit records, ack after commit, dead letters;
 * - outbox.ts: publishing committed outputs;  hostContract.ts: deps, listeners, stats.
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
 * - A message waiting for an active slot (`held`) or for its tenant's rate (`paced`, tenantPacer.ts)
 *   stays in `acks`, unacked and kept alive, and the session's later messages queue behind it; a
 *   released message can be older than ones still waiting, so `maxEnqueuedSeq` only ever grows.
 * - Raw dead letters of a live session go through the session's commit chain: a later commit
 *   never acks past a dead letter that is not stored yet.
 * - A commit that Postgres refuses as data (StoreDataError: a poison record) dead-letters the
 *   run's messages with reason `unstorable` and re-hydrates the session; it is never retried.
 */
import { randomBytes } from 'node:crypto';
import type { JsMsg } from '@nats-io/jetstream';
import { createActor, type Snapshot } from 'xstate';
import { AgentryError, InvalidTransitionError, errorInfo } from '../../actors/errors.js';
import { assertSessionId } from '../../actors/sessionId.js';
import type { ResolvedAgent } from '../../actors/defineAgent.js';
import { backoffDelay, sessionMachine, statePath, topState, snapshotContext, type SessionContext, type SessionEvent } from '../../actors/sessionMachine.js';
import type { Priority, TurnPolicy } from '../../actors/types.js';
import type { HistoryEntry, HistoryLimit, SessionRecord, TransitionRecord } from '../../persistence/types.js';
import { MigrationError, snapshotShapeProblem, stampOf } from '../../actors/agentVersion.js';
import { realClock, type Clock } from '../clock.js';
import { settleWithin } from '../deadline.js';
import { partitionOf } from '../partition.js';
import { retryWhileStoreDown } from '../retry.js';
import { STATE_SUBJECT } from '../transport.js';
import { frameOf } from '../transitionFrame.js';
import { createWaitpoints, type Waitpoints } from '../waitpoints.js';
import { ActiveSlots } from './activeSlots.js';
import type { BlockedSessions } from './blockedSessions.js';
import { CommitChain } from './commitChain.js';
import { HandlerRuns } from './handlerRuns.js';
import { Inbound, type Loading } from './inbound.js';
import type { PendingCommit, PendingOutput } from './commitRecord.js';
import { newHostStats, type HostDeps, type HostListener, type HostStats, type ShutdownReport } from './hostContract.js';
import {
  abortReasonOf, abortRun, heldEventsOf, historyLimitOf, seenEventsOf, internalEventOf, isTenant, jsonCopy, tagsProblem, viewOf,
  type LiveSession, type SessionActor, type SessionView,
} from './liveSession.js';
import { LiveSlots } from './liveSlots.js';
import { MigrationGate } from './migrationGate.js';
import { Outbox, outboxMaxBytes } from './outbox.js';
import { SessionLoader } from './sessionLoader.js';
import { TenantPacer } from './tenantPacer.js';

export type { HostDeps, HostListener, HostStats, ShutdownReport } from './hostContract.js';

/** A run that sent nothing (shared, never changed). */
const NO_OUTPUTS: readonly PendingOutput[] = Object.freeze([]);

/** `working()` calls per event-loop turn in a keep-alive round (see `keepAlive`). */
const KEEPALIVE_SLICE = 500;
export { isTenant, isTag, tagsProblem, MAX_TAGS, type SessionView } from './liveSession.js';

/** The runtime's set of live sessions on this node. */
export class SessionHost {
  /** Live-slot admission, LRU and passivation (maxLiveSessions). */
  private readonly slots: LiveSlots;
  /** The slots' map of live sessions by id (LRU order). */
  private readonly live: Map<string, LiveSession>;
  private readonly loading = new Map<string, Loading>();
  /** The inbound path: dispatch, de-duplication, admission, the door's checks (inbound.ts). */
  private readonly inbound: Inbound;
  /** Active-slot admission (maxActiveSessions, maxActivePerTenant), fair across tenants. */
  private readonly active: ActiveSlots;
  /** The tenant rate's deferral of inbox messages (null: no AGENTRY_TENANT_RATE). */
  private readonly pacer: TenantPacer | null;
  private readonly loader: SessionLoader;
  private readonly runs: HandlerRuns;
  private readonly commits: CommitChain;
  private readonly gate: MigrationGate;
  private readonly clock: Clock;
  private readonly random: () => number;
  private readonly machine;
  private readonly listeners = new Set<HostListener>();
  /** Committed outputs on their way out. */
  readonly outbox: Outbox;
  /** Waitpoint settlement (any node may complete one; this host times out its own sessions'). */
  readonly waitpoints: Waitpoints;
  private sweeper: NodeJS.Timeout | undefined;
  private stopping = false;
  /** Sessions stopped and purged by their type's sessionTtl (runtime/sessionTtl.ts; metrics). */
  readonly ttlCounts = { stopped: 0, purged: 0 };
  /** Sessions whose snapshot the running code cannot take (their messages are held unacked). */
  readonly blocked: BlockedSessions;
  /** Rows the agent types' retention removed (runtime/retention.ts; metrics). */
  readonly retentionCounts = { history: 0, transitions: 0 };
  readonly stats: HostStats = newHostStats();
  /** History a hydration loads: each agent type's `maxHistory`. */
  private historyLimit: HistoryLimit;

  constructor(private readonly deps: HostDeps) {
    this.clock = deps.clock ?? realClock;
    this.random = deps.random ?? Math.random;
    this.historyLimit = historyLimitOf(deps.agents);
    const stopping = (): boolean => this.stopping;
    this.slots = new LiveSlots({
      maxLiveSessions: () => deps.config.maxLiveSessions, idleTimeoutMs: () => deps.config.idleTimeoutMs,
      stop: (s) => { this.stopActor(s); }, evicted: () => { this.stats.passivations++; },
    });
    this.live = this.slots.live;
    this.active = new ActiveSlots(() => deps.config);
    this.pacer = deps.tenantRate ? new TenantPacer({
      rate: deps.tenantRate, clock: this.clock,
      alive: (s) => !s.broken && this.live.get(s.id) === s,
      release: (s, m) => { this.inbound.deliverPaced(s, m, s.actor.getSnapshot().context.tenant); },
      failed: (err, s) => {
        s.log.error({ err }, 'delivering a message the tenant rate deferred failed');
        this.dropSession(s, 'delivering a message the tenant rate deferred failed');
      },
    }) : null;
    this.loader = new SessionLoader(deps.store, () => this.historyLimit, stopping);
    this.outbox = new Outbox({
      store: deps.store, transport: deps.transport, logger: deps.logger, owned: () => deps.ownedPartitions?.() ?? null,
      now: () => this.clock.now(),
      maxBytes: (subject) => outboxMaxBytes(subject, deps.config.maxPayloadBytes),
      ...(deps.partitionUsable ? { mayPublish: (sid: string) => deps.partitionUsable!(partitionOf(sid, deps.config.partitions)) } : {}),
    });
    this.waitpoints = createWaitpoints({ store: deps.store, publish: (rows) => this.outbox.publish(rows), now: () => this.clock.now() });
    this.runs = new HandlerRuns(deps, {
      clock: this.clock, stats: this.stats, sessionOf: (sid) => this.live.get(sid),
      stop: (sid, reason) => this.command(sid, { type: 'STOP', at: this.clock.now(), reason }),
    });
    this.commits = new CommitChain(deps, {
      clock: this.clock, stats: this.stats, listeners: this.listeners, outbox: this.outbox, stopping,
      failed: (s, err) => { this.commitFailed(s, err); }, admitNext: (s) => { this.slots.admitNext(s); },
    });
    this.gate = new MigrationGate(deps, { clock: this.clock, stopping, deadLetterRaw: (m, sid, reason, detail) => { this.commits.deadLetterRaw(m, sid, reason, detail); } });
    this.blocked = this.gate.blocked;
    this.inbound = new Inbound({
      deps, clock: this.clock, stats: this.stats, live: this.live, loading: this.loading, slots: this.slots, active: this.active,
      pacer: this.pacer, commits: this.commits, gate: this.gate,
      hydrate: (sid, partition, mayCreate, tenant) => this.hydrate(sid, partition, mayCreate, tenant),
      send: (s, event) => { this.send(s, event); },
      enqueueReady: (priority, at, run, tenant) => { this.enqueueReady(priority, at, run, tenant); },
      agentOf: (type) => this.agentOf(type),
    });
    this.machine = sessionMachine.provide({
      actions: {
        startRun: ({ context, self }) => { this.runs.startRun(context, self); },
        cancelRun: ({ context, event, self }) => { this.runs.cancelRun(context.sessionId, self, abortReasonOf(context, event)); },
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
      this.slots.passivateIdle();
      this.runs.expireTurns();
      this.gate.retry();
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
    return this.active.activeCount;
  }

  /** Sessions waiting for an active slot. */
  waitingForSlot(): number {
    return this.active.waiting;
  }

  /** Sessions running handlers and waiting for a slot, per tenant (metrics). */
  tenantLoad(): { active: ReadonlyMap<string, number>; queued: ReadonlyMap<string, number> } {
    return this.active.tenantLoad();
  }

  /** Inbox messages deferred now by their tenant's rate, per tenant (metrics). */
  tenantDeferred(): ReadonlyMap<string, number> {
    return this.pacer?.depths() ?? new Map();
  }

  /** Queues work that would make a session active until a slot is free (counted: heldForCapacity). */
  private enqueueReady(priority: Priority, at: number, run: () => void, tenant = ''): void {
    this.stats.heldForCapacity++;
    this.active.enqueue(priority, at, run, tenant);
  }

  /** Counts a session entering (+1) or leaving (-1) `active`. */
  private activeDelta(s: LiveSession, d: 1 | -1): void {
    this.active.delta(s.actor.getSnapshot().context.tenant, d);
  }

  // ---- inbound (inbound.ts) --------------------------------------------------------------

  /** Entry point for every inbox message of an owned partition (the consumer callback). */
  dispatch(partition: number, m: JsMsg): void {
    this.inbound.dispatch(partition, m);
  }

  /**
   * Waits until the message published with `msgId` reaches its session here and is taken or
   * refused (turn policy `reject`); see `Inbound.awaitDecision`.
   */
  awaitDecision(msgId: string, timeoutMs: number): { readonly decision: Promise<'accepted' | 'rejected' | 'unknown'>; cancel(): void } {
    return this.inbound.awaitDecision(msgId, timeoutMs);
  }

  private send(s: LiveSession, event: SessionEvent): void {
    s.sending = event.type;
    s.sendingEvent = event;
    const before = s.actor.getSnapshot();
    try { s.actor.send(event); } finally { s.sending = null; s.sendingEvent = null; }
    // A merge is a message that re-started the running batch (cancel-and-merge), not one queued behind it.
    if (event.type === 'MESSAGE' && topState(before.value) === 'active' && s.actor.getSnapshot().context.runId !== before.context.runId) this.stats.merges++;
  }

  /**
   * Sends a due wake (the scheduler's, `wakeDue`): the record the wake opens waits for the run it
   * starts (see `CommitChain.commit`), so a wake whose handler finishes soon commits once, not
   * twice (the wake, then the run).
   */
  private sendWake(s: LiveSession, event: SessionEvent): void {
    s.wakeHold = true;
    try { this.send(s, event); } finally { s.wakeHold = false; }
  }

  // ---- hydration, creation, passivation --------------------------------------------------

  /**
   * Loads a session (or, when `mayCreate`, creates it with the default agent type) and makes it
   * live. Waits for a free slot under maxLiveSessions; retries while the store is unavailable.
   * The session comes back pinned: the caller unpins it once it has handed it its work.
   */
  private async hydrate(sid: string, partition: number, mayCreate: boolean, tenant?: string, admitted = false): Promise<LiveSession | null> {
    // A dropped predecessor's commits land (or fail) first: the store must show them.
    const predecessor = this.retiring.get(sid);
    if (predecessor) await predecessor;
    if (!admitted) await this.slots.admit(); // else the caller reserved the slot (`prefetchWake`)
    try {
      const loaded = await this.loader.load(sid);
      if (this.live.has(sid)) return this.slots.pin(this.live.get(sid)!);
      if (loaded) {
        const rec = this.gate.migrated(sid, partition, loaded.record);
        if (!rec) return null; // blocked: its messages are held (holdBlocked)
        let s: LiveSession;
        try {
          s = this.makeLive(sid, loaded.record.type, partition, rec, loaded.history.reverse());
        } catch (err) {
          if (!(err instanceof MigrationError)) throw err;
          this.gate.refuse(sid, partition, err); // a snapshot XState cannot restore: blocked, like a failed migration
          return null;
        }
        return this.slots.pin(s);
      }
      if (!mayCreate) return null;
      const type = this.deps.config.defaultAgentType;
      if (type === undefined) return null;
      const agent = this.agentOf(type);
      if (!agent) {
        this.deps.logger.error({ sessionId: sid, type }, 'default agent type is not registered');
        return null;
      }
      return this.slots.pin(this.makeLive(sid, type, partition, null, [], tenant));
    } finally {
      this.slots.release();
    }
  }

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
      if (this.slots.quiescent(s)) this.slots.evict(s);
      else this.dropSession(s, `agent ${s.type} changed from version ${s.agentVersion} to ${v}`);
    }
  }
  /** The agent type's `maxMailbox` (undefined: no bound): the control plane refuses sends past it (MAILBOX_FULL). */
  maxMailboxOf(type: string): number | undefined {
    return this.agentOf(type)?.maxMailbox;
  }

  private agentOf(type: string): ResolvedAgent | undefined {
    return this.deps.agents.get(type);
  }

  private makeLive(sid: string, type: string, partition: number, rec: SessionRecord | null, history: HistoryEntry[], tenant?: string): LiveSession {
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
          incarnation: newIncarnation(),
          limits: agent?.limits ?? { policy: 'queue', maxMerge: 1, maxMergeDelayMs: 0, maxAttempts: 1, retryBaseMs: 0, retryCapMs: 0 },
        },
      } as never);
    if (rec) {
      // XState keeps a restore's error in the snapshot instead of throwing: an actor started from
      // it would take every message and never commit one (a stored state the statechart lacks,
      // the stamp not telling: a row edited by hand).
      const restored = actor.getSnapshot() as { status: string; error?: unknown };
      if (restored.status === 'error') {
        throw new MigrationError(sid, type, 'invalid-state', stampOf(rec.snapshot).version, agent?.version ?? stampOf(rec.snapshot).version,
          `the stored snapshot cannot be restored: ${restored.error instanceof Error ? restored.error.message : String(restored.error)}`);
      }
    }
    const ctx = rec ? snapshotContext(rec.snapshot) : null;
    const session: LiveSession = {
      id: sid, type, partition, actor, agentVersion: agent?.version ?? (rec ? stampOf(rec.snapshot).version : 1),
      log: this.deps.logger.child({ sessionId: sid, agentType: type }),
      acks: new Map(), outputs: new Map(), historyView: history, seenEvents: rec ? seenEventsOf(rec.snapshot) : [], ...(ctx ? { liveEvents: heldEventsOf(ctx) } : {}), held: [], queued: false, expired: new Map(),
      maxEnqueuedSeq: rec?.lastSeq ?? 0, committedLastSeq: rec?.lastSeq ?? 0,
      storeVersion: rec?.version ?? 0, submittedVersion: ctx?.version ?? 0,
      lastCompletedRunId: ctx?.runId ?? 0,
      lastPath: rec ? statePath((rec.snapshot as { value: unknown }).value) : 'idle',
      sending: null, sendingEvent: null, frameUserState: NO_FRAME_YET, lastRunId: ctx?.runId ?? 0, transitions: [], open: null, wakeHold: false, run: null, chain: Promise.resolve(), inflight: 0, lastActivity: Date.now(), updatedAt: rec?.updatedAt ?? null, broken: false, pins: 0,
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
   * commit. `policy` overrides the agent type's turn policy for this session (kept in its snapshot);
   * `tags` label it for listAgents (kept in its snapshot, copied to `sessions.tags` by the first commit).
   */
  async create(sid: string, type: string, userState?: unknown, policy?: TurnPolicy, tenant?: string, tags?: readonly string[]): Promise<SessionView> {
    assertSessionId(sid);
    if (tenant !== undefined && !isTenant(tenant)) throw new AgentryError('INVALID_ARGUMENT', 'tenant must be 1-64 characters of [A-Za-z0-9_-]');
    const tagProblem = tags === undefined ? null : tagsProblem(tags);
    if (tagProblem !== null) throw new AgentryError('INVALID_ARGUMENT', tagProblem);
    const tagSet = tags && tags.length > 0 ? [...new Set(tags)] : undefined;
    const agent = this.agentOf(type);
    if (!agent) throw new AgentryError('UNKNOWN_AGENT_TYPE', `no agent type ${JSON.stringify(type)} is registered (known: ${[...this.deps.agents.keys()].join(', ')})`);
    let s = await this.makeNew(sid, type, null, [], tenant);
    if (userState !== undefined || policy !== undefined || tagSet !== undefined) {
      // Seed user state, policy and tags by restoring from an adjusted snapshot: the machine has no "set state" event on purpose.
      const snap = s.actor.getPersistedSnapshot() as unknown as { context: SessionContext };
      snap.context = {
        ...snap.context, ...(userState !== undefined ? { userState } : {}),
        ...(policy !== undefined ? { limits: { ...snap.context.limits, policy } } : {}),
        ...(tagSet !== undefined ? { tags: tagSet } : {}),
      };
      s.actor.stop();
      this.live.delete(sid);
      s = this.makeLive(sid, type, s.partition, { snapshot: snap, lastSeq: 0, version: 0 } as unknown as SessionRecord, []);
    }
    s.transitions.push(this.framed(s, this.clock.now(), 'create', '', 'idle', s.actor.getSnapshot().context));
    this.commits.commit(s, true);
    await this.stored(s, s.open, 'createAgent');
    return this.view(s);
  }

  /**
   * Creates session `sid` from another session's recorded snapshot (forkSession: runtime/fork.ts
   * plans it) with its history rows, in one commit, as `create` does; SESSION_EXISTS when it exists.
   */
  async createFrom(sid: string, type: string, snapshot: unknown, history: readonly HistoryEntry[], lastSeq: number): Promise<SessionView> {
    assertSessionId(sid);
    if (!this.agentOf(type)) throw new AgentryError('UNKNOWN_AGENT_TYPE', `no agent type ${JSON.stringify(type)} is registered on this node`);
    // A new session: its own incarnation, not the source's (outbox ids must not repeat a former session of this id).
    const own = { ...(snapshot as { context: SessionContext }), context: { ...snapshotContext(snapshot), incarnation: newIncarnation() } };
    const s = await this.makeNew(sid, type, { snapshot: own, lastSeq, version: 0 } as unknown as SessionRecord, [...history]);
    s.transitions.push(this.framed(s, this.clock.now(), 'fork', '', s.lastPath, s.actor.getSnapshot().context));
    this.commits.commit(s, true);
    s.open?.history.push(...history); // the record submits on the session's chain, after this turn
    await this.stored(s, s.open, 'forkSession');
    return this.view(s);
  }

  /**
   * A new live session under an id nothing holds (live, loading or stored; else SESSION_EXISTS),
   * made inside an admission slot (`create`, `createFrom`); the caller commits it.
   */
  private async makeNew(sid: string, type: string, rec: SessionRecord | null, history: HistoryEntry[], tenant?: string): Promise<LiveSession> {
    if (this.live.has(sid) || this.loading.has(sid) || (await this.retry(() => this.deps.store.loadSession(sid)))) {
      throw new AgentryError('SESSION_EXISTS', `session ${sid} already exists`);
    }
    await this.slots.admit();
    try {
      if (this.live.has(sid)) throw new AgentryError('SESSION_EXISTS', `session ${sid} already exists`);
      return this.makeLive(sid, type, partitionOf(sid, this.deps.config.partitions), rec, history, tenant);
    } finally { this.slots.release(); }
  }

  /** Live session, pinned (the caller unpins it), hydrating it if needed; throws UNKNOWN_SESSION when it does not exist. */
  private async ensureLive(sid: string): Promise<LiveSession> {
    assertSessionId(sid);
    for (;;) {
      const s = this.live.get(sid);
      if (s) return this.slots.pin(s);
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

  /** Loads a stored session (never creates one); `admitted`: the caller reserved its live slot. */
  private async hydrateForCommand(sid: string, admitted = false): Promise<LiveSession | null> {
    const entry = { buffer: [] as JsMsg[], promise: this.hydrate(sid, partitionOf(sid, this.deps.config.partitions), false, undefined, admitted) };
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
      for (const m of entry.buffer) if (s) this.inbound.deliver(s, m); else this.inbound.dispatch(p, m);
    }
  }

  /** Stops a live actor (aborting a running handler), keeping the active count right. */
  private stopActor(s: LiveSession): void {
    this.runs.afterAbort(s, abortRun(s), 'stopped'); // stopping an actor runs no exit actions
    if (s.lastPath === 'active' || s.lastPath.startsWith('active.')) {
      this.stats.turnsAborted++;
      this.activeDelta(s, -1);
      s.lastPath = 'stopped-live';
    }
    s.actor.stop();
    // A wake's record held for its run (CommitChain.commit): the run will not end now, submit it.
    s.open?.release?.();
  }

  // ---- commit pipeline ------------------------------------------------------------------

  /**
   * A transition with its frame (runtime/transitionFrame.ts) and, when it changed since the
   * session's previous frame (compared by reference: a run's result replaces the object), the
   * user state: what getSessionAt shows for this step. A transition that ends a run also keeps
   * what the run sent (the sequence view's outputs).
   */
  private framed(s: LiveSession, at: number, event: string, from: string, to: string, ctx: SessionContext): TransitionRecord {
    const changed = this.deps.config.timelineUserState && ctx.userState !== s.frameUserState;
    if (changed) s.frameUserState = ctx.userState;
    const c = ctx.completed;
    const ended = c && c.runId !== s.lastCompletedRunId ? { runId: c.runId, outputs: s.outputs.get(c.runId) ?? NO_OUTPUTS } : undefined;
    const frame = frameOf(s.sendingEvent ?? null, event, ctx, ended);
    return changed ? { sessionId: s.id, at, event, from, to, frame, userState: ctx.userState } : { sessionId: s.id, at, event, from, to, frame };
  }

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
        if (wasActive && !isActive) { this.activeDelta(s, -1); queueMicrotask(() => { this.active.pump(); }); }
        const at = this.clock.now();
        const event = s.sending ?? internalEventOf(s, snap);
        s.transitions.push(this.framed(s, at, event, s.lastPath, path, snap.context));
        for (const l of this.listeners) l.onState?.(s.id, s.lastPath, path, event, at);
        if (this.deps.config.stateNotices) this.deps.transport.publishCore(STATE_SUBJECT(s.id), JSON.stringify({ agentId: s.id, from: s.lastPath, to: path, state: topState(snap.value), event, at }));
        s.lastPath = path;
      }
      if (snap.context.version > s.submittedVersion) this.commits.commit(s, false);
    } catch (err) {
      s.log.error({ err }, 'failed to record a session change');
    }
  }

  /**
   * Waits for the session's commit chain, then throws when `record` (the one carrying a
   * command's change) was never committed: a link failed (stale version, fenced, the store
   * refused it) or the session was let go before it was submitted (its partition moved, a
   * shutdown). Before 2026-11-28 createAgent, forkSession and the control commands answered
   * success then, for a change the store never got. `NOT_READY` (retryable: the session reloads
   * from the store, possibly on its partition's new owner), or the store's own error when it
   * refused the data.
   */
  private async stored(s: LiveSession, record: PendingCommit | null, what: string): Promise<void> {
    await s.chain;
    if (record === null || record.committed) return;
    const cause = s.failure;
    if ((cause as { code?: string } | undefined)?.code === 'STORE_DATA') throw cause;
    const why = cause === undefined ? 'the session was let go (its partition moved or the node is stopping)' : errorInfo(cause).message;
    throw new AgentryError('NOT_READY', `${what} on session ${s.id} was not stored: ${why}; retry`, { retryable: true, ...(cause === undefined ? {} : { cause }) });
  }

  /**
   * A link of a session's commit chain failed (stale version, fenced, unstorable, shutdown):
   * the live copy can no longer be trusted. Drop it; it re-hydrates from the store.
   */
  private commitFailed(s: LiveSession, err: unknown): void {
    s.failure ??= err;
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
    // Its wake may have fired into the dropped copy (the scheduler marked it fired): once its last
    // commits have landed or failed, the wake-ups read its stored row and arm what is still due.
    if (first && !this.stopping) {
      const told = (): void => { for (const l of this.listeners) l.onDropped?.(s.id, s.partition); };
      void s.chain.then(told, told);
    }
  }

  /** Commit chains of dropped sessions: a new hydration of the same id waits for its predecessor's. */
  private readonly retiring = new Map<string, Promise<void>>();

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

  /** Retries a store call while the store is down (readiness fails meanwhile), until shutdown. */
  private retry<T>(fn: () => Promise<T>): Promise<T> {
    return retryWhileStoreDown(fn, () => this.stopping);
  }

  /**
   * Tells JetStream that every unacked message this node holds is still being worked on, so none
   * is redelivered while it waits for a slot, a hydration or a commit. In slices of KEEPALIVE_SLICE
   * per event-loop turn: one `working()` is a publish (~20 µs), and a node holding 20,000 unacked
   * messages blocked its loop for ~400 ms at a time (every message's latency, and lease renewals,
   * waited). A message acked meanwhile ignores it (the client sends nothing after an ack).
   */
  private keepAlive(): void {
    if (this.keepingAlive) return;
    const msgs: JsMsg[] = [];
    for (const s of this.live.values()) for (const m of s.acks.values()) msgs.push(m);
    for (const l of this.loading.values()) for (const m of l.buffer) msgs.push(m);
    this.blocked.forEachHeld((m) => { msgs.push(m); });
    let i = 0;
    const slice = (): void => {
      const end = Math.min(msgs.length, i + KEEPALIVE_SLICE);
      for (; i < end; i++) msgs[i]!.working();
      if (i < msgs.length && !this.stopping) setImmediate(slice);
      else this.keepingAlive = false;
    };
    this.keepingAlive = true;
    slice();
  }

  /** A keep-alive round is under way (slices left). */
  private keepingAlive = false;

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
    if (!this.active.hasCapacity()) {
      this.enqueueReady('normal', dueAt, () => { void this.wakeDue(sid, dueAt, onRetry).then((ok) => { if (!ok) onRetry?.(); }); });
      return true;
    }
    this.active.reserveWake();
    let s: LiveSession;
    try { s = await this.ensureLive(sid); } catch (err) {
      // Unknown, or blocked by a failed migration: its stored wake is found again after a deploy.
      if ((err as { code?: string }).code === 'UNKNOWN_SESSION' || (err as { code?: string }).code === 'MIGRATION_FAILED') return true;
      if (!this.stopping) this.deps.logger.warn({ err, sessionId: sid }, 'could not load a session to wake it; retrying');
      return false;
    } finally {
      this.active.unreserveWake();
      queueMicrotask(() => { this.active.pump(); });
    }
    const fire = (): boolean => {
      if (this.live.get(sid) !== s || s.broken) return false;
      const ctx = s.actor.getSnapshot().context;
      const state = topState(s.actor.getSnapshot().value);
      const now = this.clock.now();
      if (state === 'idle' && ctx.pending.length > 0) {
        // Restored with work a run did not finish (carriedOver: a wake, deferred mail): take it up.
        this.slots.touch(s);
        this.sendWake(s, { type: 'RESUME', at: now });
      } else if (state === 'sleeping' && ctx.wake?.until !== null && ctx.wake?.until !== undefined && ctx.wake.until <= now) {
        this.slots.touch(s);
        // A budget pause's re-check: the turn checks the limits again; its handler never sees this wake.
        this.sendWake(s, { type: 'WAKE', reason: 'time', at: now, ...(ctx.wake.budget ? { detail: { budget: 'recheck' } } : {}) });
      } else if (state === 'waiting' && ctx.wait?.timeoutAt !== null && ctx.wait?.timeoutAt !== undefined && ctx.wait.timeoutAt <= now) {
        const wp = ctx.wait.waitpoint;
        if (wp) {
          // A waitpoint times out through the store (one CAS with its message), so a completion
          // racing the timeout cannot also land; its message ends the wait. Only a missing row
          // (cannot happen: the wait's commit stored it) falls back to a plain timeout.
          void this.waitpoints.expire({ id: wp.id, sessionId: sid, hasDefault: wp.hasDefault, defaultValue: wp.default }).then((r) => {
            if (r !== 'missing' || this.live.get(sid) !== s || s.broken) return;
            this.deps.logger.warn({ sessionId: sid, waitpoint: wp.id }, 'waitpoint row missing at its timeout; the session times out without it');
            this.slots.touch(s);
            this.send(s, { type: 'WAKE', reason: 'timeout', at: this.clock.now() });
          }, (err: unknown) => { this.deps.logger.warn({ err, sessionId: sid }, 'could not time out a waitpoint; the scheduler fires it again'); });
          return true;
        }
        this.slots.touch(s);
        this.sendWake(s, { type: 'WAKE', reason: 'timeout', at: now });
      }
      return true; // woken, or no longer due (its commit tells the scheduler either way)
    };
    try {
      return fire(); // the slot this wake reserved is now its own (or it was stale and frees it)
    } finally {
      this.slots.unpin(s);
    }
  }

  /**
   * A sleep deadline or wait timeout falls due soon (the scheduler's look-ahead): loads the
   * session now, so that `wakeDue` at the due time finds it live and starts its handler without
   * a store round trip. A hint that changes nothing: the session is sent nothing (the wake itself
   * comes only at its due time, so it cannot be early) and is left unpinned. It never waits: with
   * every live slot busy, hydrations queued for one, or the session live, loading, retiring or
   * blocked, it does nothing and the wake loads its session at the due time, as without it.
   */
  prefetchWake(sid: string): void {
    if (this.stopping || this.live.has(sid) || this.loading.has(sid) || this.retiring.has(sid) || this.blocked.errorOf(sid)) return;
    const partition = partitionOf(sid, this.deps.config.partitions);
    const epoch = this.deps.ownerEpoch?.(partition);
    if (!this.slots.tryAdmit()) return;
    this.stats.wakesLoadedAhead++;
    void this.hydrateForCommand(sid, true).then((s) => {
      if (!s) return;
      this.slots.unpin(s);
      // The partition changed hands while it loaded: this copy may predate the new owner's commits.
      if (this.deps.ownerEpoch && this.deps.ownerEpoch(partition) !== epoch && this.live.get(sid) === s && this.slots.quiescent(s)) this.slots.evict(s);
    }, (err: unknown) => {
      if (!this.stopping) this.deps.logger.debug({ err, sessionId: sid }, 'loading a session ahead of its wake failed; it loads at its due time');
    });
  }

  // ---- commands -------------------------------------------------------------------------

  /** Current view of a session, live or stored; null when it does not exist. */
  async get(sid: string): Promise<SessionView | null> {
    assertSessionId(sid);
    const s = this.live.get(sid);
    if (s) return this.view(s);
    const rec = await this.deps.store.loadSession(sid);
    if (!rec) return null;
    const blocked = this.blocked.errorOf(sid);
    const unreadable = snapshotShapeProblem(rec.snapshot);
    if (unreadable !== null) {
      const v = stampOf(rec.snapshot).version;
      throw blocked ?? new MigrationError(sid, rec.type, 'invalid-state', v, this.agentOf(rec.type)?.version ?? v, unreadable);
    }
    const ctx = snapshotContext(rec.snapshot);
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
    let record: PendingCommit | null = null;
    try {
      const state = topState(s.actor.getSnapshot().value);
      const verb = event.type.toLowerCase();
      const accepts: Record<SessionEvent['type'], readonly string[]> = {
        SLEEP: ['idle', 'active', 'sleeping'], WAIT: ['idle'], WAKE: ['sleeping', 'waiting', 'idle', 'active'],
        STOP: ['idle', 'active', 'sleeping', 'waiting'], INTERRUPT: ['active', 'idle', 'sleeping', 'waiting'], MESSAGE: [], RUN_DONE: [], RUN_FAILED: [], RESUME: [],
      };
      if (state === 'stopped' || !accepts[event.type].includes(state)) throw new InvalidTransitionError(sid, state, verb);
      const before = s.actor.getSnapshot().context.version;
      this.slots.touch(s);
      this.send(s, event);
      changed = s.actor.getSnapshot().context.version !== before;
      if (changed) record = s.open; // the record carrying the change (onSnapshot opened or joined it)
    } finally {
      this.slots.unpin(s); // the change it made (if any) is committing now: that keeps it live until done
    }
    await this.stored(s, record, event.type.toLowerCase());
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
      } finally { this.slots.unpin(s); }
      await s.chain;
      if (s.broken || topState(s.actor.getSnapshot().value) !== 'stopped') return 'kept';
      this.ttlCounts.stopped++;
      stopped = true;
      if (!purge) return 'stopped';
    } else if (!purge) return 'kept';
    const live = this.live.get(sid);
    if (live && !this.slots.quiescent(live)) return stopped ? 'stopped' : 'kept';
    if (live) this.slots.evict(live);
    if (this.loading.has(sid) || this.retiring.has(sid)) return stopped ? 'stopped' : 'kept';
    // From here until the purge settles, a hydration of this id waits (it must not read the old row).
    const purging = (async () => {
      const current = await this.deps.store.loadSession(sid);
      return !!current && current.status === 'stopped' && await this.retry(() => this.deps.store.purgeSession(sid, current.version));
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
      this.stats.releasedUnacked += s.acks.size;
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
    this.slots.admitNext();
    this.active.pump();
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
    this.slots.stopping = true;
    this.slots.wakeAll();
    if (this.sweeper) clearInterval(this.sweeper);
    this.pacer?.stop(); // deferred messages stay unacked: the next owner gets them
    const sessions = [...this.live.values()];
    const aborted0 = this.stats.turnsAborted;
    for (const s of sessions) this.stopActor(s); // aborts what still runs: its messages stay unacked
    const abortedTurns = this.stats.turnsAborted - aborted0;
    const committed = await settleWithin(Promise.all(sessions.map((s) => s.chain)), Math.max(0, deadline - Date.now()));
    this.outbox.flushDeletes();
    this.live.clear();
    return {
      committed,
      abortedTurns,
      unackedMessages: sessions.reduce((n, s) => n + s.acks.size, 0) + [...this.loading.values()].reduce((n, l) => n + l.buffer.length, 0) + this.blocked.heldTotal(),
      sessionsWithPendingCommits: sessions.filter((s) => s.inflight > 0).length,
    };
  }
}

/** A session's `frameUserState` before its first frame (set in the record's literal: one object shape for every session). */
const NO_FRAME_YET: unique symbol = Symbol('no frame yet');

/** A new session's incarnation (48 random bits, 8 characters): see `SessionContext.incarnation`. */
function newIncarnation(): string {
  return randomBytes(6).toString('base64url');
}
