/**
 * Owns the inbound path of a node's inbox messages, from the partition consumer's callback to the
 * session's actor: `dispatch` checks the subject (session id, partition, tenant) and finds the
 * live session or starts its hydration, buffering what arrives meanwhile; `deliver` skips known
 * duplicates (≤ the committed `last_seq`; a redelivery of one in flight only replaces its ack
 * handle), enforces `maxMailbox` and defers a tenant over its rate (tenantPacer.ts); a message
 * then waits for an active slot (`held`, unacked and kept alive) or goes to the actor
 * (`deliverNow`), after the door's checks: decodable and storable (inbox.ts), the session not
 * stopped, not expired, the right tenant, not an event or outbox row it already has. Every refusal
 * is one dead letter through the session's commit chain (a later commit never acks past it).
 * The session host (sessionHost.ts) owns the live sessions and lends this stage what it needs
 * (`InboundPort`).
 */
import type { JsMsg } from '@nats-io/jetstream';
import type { ResolvedAgent } from '../../actors/defineAgent.js';
import { sessionIdProblem } from '../../actors/sessionId.js';
import { topState, type SessionEvent } from '../../actors/sessionMachine.js';
import type { Priority } from '../../actors/types.js';
import type { Clock } from '../clock.js';
import { decodeInbox, sessionIdOfSubject } from '../inbox.js';
import { partitionOf } from '../partition.js';
import { traceReceive } from '../tracing.js';
import { H } from '../transport.js';
import type { ActiveSlots } from './activeSlots.js';
import type { CommitChain } from './commitChain.js';
import type { HostDeps, HostStats } from './hostContract.js';
import { decodePayloadLoose, hasEvent, isTenant, prioOf, type LiveSession } from './liveSession.js';
import type { LiveSlots } from './liveSlots.js';
import { isExpired, mailboxSize } from './mailboxRules.js';
import type { MigrationGate } from './migrationGate.js';
import type { TenantPacer } from './tenantPacer.js';

/** A hydration under way: the messages that arrived for the session meanwhile, in order. */
export interface Loading { readonly buffer: JsMsg[]; promise: Promise<LiveSession | null> }

/** What the inbound stage uses of the session host. */
export interface InboundPort {
  readonly deps: HostDeps;
  readonly clock: Clock;
  readonly stats: HostStats;
  readonly live: Map<string, LiveSession>;
  readonly loading: Map<string, Loading>;
  readonly slots: LiveSlots;
  readonly active: ActiveSlots;
  readonly pacer: TenantPacer | null;
  readonly commits: CommitChain;
  readonly gate: MigrationGate;
  /** Loads (or, with `mayCreate`, creates) a session, pinned; null when it does not exist or is blocked. */
  hydrate(sid: string, partition: number, mayCreate: boolean, tenant?: string): Promise<LiveSession | null>;
  /** Sends an event to a session's actor (the host names the transition it makes). */
  send(s: LiveSession, event: SessionEvent): void;
  /** Queues work that needs an active slot. */
  enqueueReady(priority: Priority, at: number, run: () => void, tenant?: string): void;
  agentOf(type: string): ResolvedAgent | undefined;
}

/** The inbound stage of one session host. */
export class Inbound {
  constructor(private readonly port: InboundPort) {}

  /** Entry point for every inbox message of an owned partition (the consumer callback). */
  dispatch(partition: number, m: JsMsg): void {
    const sid = sessionIdOfSubject(m.subject);
    if (sid.startsWith('_agentry-probe-')) { m.ack(); return; }
    const live = this.port.live.get(sid);
    // A live session's id was checked when it loaded, and its partition is fixed: the common case.
    if (live && live.partition === partition) { this.deliver(live, m); return; }
    const problem = sessionIdProblem(sid);
    if (problem !== null) {
      this.port.commits.deadLetterRaw(m, sid, 'invalid-session-id', problem);
      return;
    }
    if (partitionOf(sid, this.port.deps.config.partitions) !== partition) {
      // Published straight to a partition subject, around nats.conf's mapping: delivering it
      // here would put the session on two partitions (two owners). Keep it as a dead letter.
      this.port.commits.deadLetterRaw(m, sid, 'wrong-partition', `published to partition ${partition}; session ${sid} belongs to ${partitionOf(sid, this.port.deps.config.partitions)} (publish to agentry.in.<id>)`);
      return;
    }
    if (live) { this.deliver(live, m); return; }
    // A live session checks a message's tenant on delivery (deliverNow); a message that would create one is checked here.
    const tenant = m.headers?.get(H.tenant) || undefined;
    if (tenant !== undefined && !isTenant(tenant)) {
      this.port.commits.deadLetterRaw(m, sid, 'invalid-tenant', `header ${H.tenant} must be 1-64 characters of [A-Za-z0-9_-]`);
      return;
    }
    const loading = this.port.loading.get(sid);
    if (loading) { loading.buffer.push(m); return; }
    if (this.port.gate.hold(sid, m)) return;
    const entry = { buffer: [m], promise: Promise.resolve<LiveSession | null>(null) };
    this.port.loading.set(sid, entry);
    entry.promise = this.port.hydrate(sid, partition, true, tenant);
    entry.promise.then((s) => {
      this.port.loading.delete(sid);
      if (s && this.port.deps.ownerEpoch && this.port.deps.ownerEpoch(partition) === 0) {
        // The partition moved away while this session loaded: its messages are the new owner's.
        this.port.slots.unpin(s);
        if (this.port.live.get(sid) === s && this.port.slots.quiescent(s)) this.port.slots.evict(s);
        return;
      }
      for (const msg of entry.buffer) {
        if (s) this.deliver(s, msg);
        else if (this.port.gate.hold(sid, msg)) continue;
        else this.port.commits.deadLetterRaw(msg, sid, 'unknown-session', 'no session with this id exists and no default agent type is configured');
      }
      if (s) this.port.slots.unpin(s);
    }, (err: unknown) => {
      // Only reached at shutdown (hydration retries store outages itself); leave the messages unacked.
      this.port.loading.delete(sid);
      this.port.deps.logger.warn({ err, sessionId: sid }, 'hydration abandoned');
    });
  }

  /** A message of a live session: de-duplicated, bounded by its mailbox and tenant rate, then delivered or held. */
  deliver(s: LiveSession, m: JsMsg): void {
    const seq = m.seq;
    if (seq <= s.committedLastSeq) { this.port.stats.duplicatesSkipped++; m.ack(); return; }
    if (seq <= s.maxEnqueuedSeq) {
      this.port.stats.duplicatesSkipped++;
      // Still in flight: the newest handle is the one that acks. Not held any more: it was
      // settled (dead-lettered and stored, or committed), so this copy is a known duplicate.
      if (s.acks.has(seq)) s.acks.set(seq, m); else m.ack();
      return;
    }
    // A dropped session (its drop restarted the partition feed): left unacked, it comes again.
    if (s.broken) return;
    const max = this.port.agentOf(s.type)?.maxMailbox;
    if (max !== undefined && mailboxSize(s.actor.getSnapshot().context, s.held.length + (s.paced?.length ?? 0)) >= max) {
      this.port.commits.deadLetterInSession(s, m, 'mailbox-full', `session ${s.id} holds ${max} messages not yet handled (maxMailbox)`, decodePayloadLoose(m));
      return;
    }
    const tenant = s.actor.getSnapshot().context.tenant;
    // Over its tenant's rate: deferred (unacked, kept alive) until a token; released in order.
    if (tenant !== undefined && this.port.pacer && !this.port.pacer.admit(s, tenant, m)) return;
    this.deliverPaced(s, m, tenant);
  }

  /** The rest of `deliver` once the tenant's rate let `m` through: an active slot, then the session. */
  deliverPaced(s: LiveSession, m: JsMsg, tenant: string | undefined): void {
    const seq = m.seq;
    if (s.held.length > 0 || (!this.port.active.hasCapacity(tenant) && topState(s.actor.getSnapshot().value) !== 'active')) {
      // All handler slots are taken: hold it (unacked, kept alive) behind this session's other held messages.
      s.acks.set(seq, m);
      s.maxEnqueuedSeq = Math.max(s.maxEnqueuedSeq, seq);
      s.held.push(seq);
      if (!s.queued) {
        s.queued = true;
        this.port.enqueueReady(prioOf(m), this.port.clock.now(), () => { this.releaseHeld(s); }, tenant ?? '');
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
      if (m && this.port.live.get(s.id) === s) this.deliverNow(s, m);
    }
  }

  /** Decodes and checks a message with a slot, and sends it to the session's actor (or dead-letters it). */
  private deliverNow(s: LiveSession, m: JsMsg): void {
    const seq = m.seq;
    const now = this.port.clock.now();
    const decoded = decodeInbox(m, now, this.port.deps.config.maxPayloadBytes, this.port.deps.config.maxJsonDepth);
    if (!decoded.ok) {
      this.port.commits.deadLetterInSession(s, m, decoded.reason, decoded.detail, decoded.payload);
      return;
    }
    if (s.actor.getSnapshot().status === 'done') {
      this.port.commits.deadLetterInSession(s, m, 'stopped', `session ${s.id} is stopped`, decoded.message.body);
      return;
    }
    if (isExpired(decoded.message, now)) {
      this.port.commits.deadLetterInSession(s, m, 'expired', `expired at ${new Date(decoded.message.expiresAt!).toISOString()} before it was delivered`, [decoded.message]);
      return;
    }
    const tenant = m.headers?.get(H.tenant) || undefined;
    if (tenant !== undefined && tenant !== s.actor.getSnapshot().context.tenant) {
      // A session's tenant is set once, at creation: a message of another tenant is refused, never a switch.
      const own = s.actor.getSnapshot().context.tenant;
      this.port.commits.deadLetterInSession(s, m, 'tenant-mismatch', `message of tenant ${tenant} for session ${s.id}, which ${own === undefined ? 'has no tenant' : `belongs to tenant ${own}`}`, decoded.message.body);
      return;
    }
    const eventId = decoded.message.eventId;
    if (eventId !== undefined) {
      // A copy of an event the session already has, routed again after the duplicate window (a
      // route broken off by a crash or a pause): known applied or in hand, so acked and skipped.
      if (hasEvent(s, eventId)) { this.port.stats.duplicatesSkipped++; m.ack(); return; }
      (s.liveEvents ??= new Set()).add(eventId);
    }
    s.acks.set(seq, m);
    s.maxEnqueuedSeq = Math.max(s.maxEnqueuedSeq, seq); // released by the tenant rate, it may be older than messages deferred behind it
    this.port.slots.touch(s);
    traceReceive(s.id, s.type, decoded.message, s.lastPath);
    this.port.send(s, { type: 'MESSAGE', message: decoded.message, at: now });
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
}
