/**
 * Owns the deferral of inbox messages whose tenant is over its rate (AGENTRY_TENANT_RATE, the
 * node's shared bucket in runtime/tenantRate.ts). The host asks `admit` before it applies a
 * message of a tenant's session; a message without a token is *deferred*: held here unacked,
 * never dropped nor dead-lettered, until its tenant's bucket has a token, then handed back to the
 * host (`release`), which goes on as for any message (an active slot, then the session).
 *
 * - Order: a session's deferred messages are in `s.paced`, oldest first, and every later message
 *   of that session is deferred behind them (even one the API already charged), so the session
 *   sees them in stream order. While a tenant has deferred messages, its new ones queue behind
 *   them (they would otherwise take each token first and starve the queue). Sessions of one
 *   tenant are served in turn, one message each, so one flooded session does not hold back the
 *   tenant's other sessions longer than one message per round. Other tenants are not touched.
 * - Exactly once: a deferred message sits in `s.acks` with `s.maxEnqueuedSeq` past it, like a
 *   message waiting for an active slot: the host's keep-alive sends `working()` for it, so
 *   JetStream does not redeliver it while it waits; a redelivery anyway (a feed restart, an
 *   ack_wait missed by a paused process) only replaces its ack handle; it is acked only by the
 *   commit that applies it.
 * - Faults: the node dies, is paused past its lease or loses NATS — the deferred messages were
 *   never acked, so the consumer (restarted from its ack floor, or the next owner's) delivers them
 *   again, oldest first, and they are deferred again by that node's bucket. A session dropped
 *   while it held deferred messages (a lost partition, a failed commit) has restarted its feed
 *   (host rule); its stale entry here is skipped without taking a token.
 *
 * Head-of-line: deferred messages are unacked, so they count against their partition consumer's
 * `max_ack_pending` (AGENTRY_MAX_ACK_PENDING, 512). Another tenant's message in the same partition
 * is delivered at once while fewer deferred messages are ahead of it than that bound; behind a
 * larger flood it waits until enough of the flood is applied (docs/budgets.md).
 */
import type { JsMsg } from '@nats-io/jetstream';
import type { Clock } from '../clock.js';
import { RATE_CHARGED_HEADER, type TenantRate } from '../tenantRate.js';
import type { LiveSession } from './liveSession.js';

/** What the pacer needs of its host. */
export interface PacerPort {
  readonly rate: TenantRate;
  readonly clock: Clock;
  /** Whether `s` is still the live session of its id (not dropped, not replaced). */
  alive(s: LiveSession): boolean;
  /** Goes on with a message its tenant's rate let through (an active slot, then the session). */
  release(s: LiveSession, m: JsMsg): void;
  /** A release threw (a bug): the host drops the session (its feed restarts); the tenant's other messages go on. */
  failed(err: unknown, s: LiveSession): void;
}

/** A tenant's sessions with deferred messages, served in turn, and the timer of its next token. */
interface Lane {
  sessions: LiveSession[];
  head: number;
  timer: unknown;
}

/** The per-tenant deferral queue of one host (see the module comment). */
export class TenantPacer {
  private readonly lanes = new Map<string, Lane>();
  private stopped = false;

  constructor(private readonly port: PacerPort) {}

  /**
   * Whether the message may go on now (its token taken, or charged by this node's API already).
   * False: it is deferred — in `s.acks` and `s.paced` — and will be released in order.
   */
  admit(s: LiveSession, tenant: string, m: JsMsg): boolean {
    const paced = s.paced;
    if (paced === undefined || paced.length === 0) {
      if (this.charged(m)) return true;
      if (!this.lanes.has(tenant)) {
        const wait = this.port.rate.tryTake(tenant);
        if (wait === 0) return true;
        this.defer(s, tenant, m, wait);
        return false;
      }
    }
    this.defer(s, tenant, m, 0);
    return false;
  }

  /** Messages deferred now, per tenant (metrics). */
  depths(): Map<string, number> {
    const out = new Map<string, number>();
    for (const [t, lane] of this.lanes) {
      let n = 0;
      for (let i = lane.head; i < lane.sessions.length; i++) {
        const s = lane.sessions[i]!;
        if (this.port.alive(s)) n += s.paced?.length ?? 0;
      }
      if (n > 0) out.set(t, n);
    }
    return out;
  }

  /** Stops the timers (shutdown): what is deferred stays unacked, for the next owner. */
  stop(): void {
    this.stopped = true;
    for (const lane of this.lanes.values()) if (lane.timer !== null) this.port.clock.clearTimeout(lane.timer);
    this.lanes.clear();
  }

  private charged(m: JsMsg): boolean {
    return m.headers?.get(RATE_CHARGED_HEADER) === this.port.rate.chargedMark;
  }

  /** Holds `m` behind the session's deferred messages; a new lane arms its timer `wait` ms out. */
  private defer(s: LiveSession, tenant: string, m: JsMsg, wait: number): void {
    s.acks.set(m.seq, m);
    s.maxEnqueuedSeq = Math.max(s.maxEnqueuedSeq, m.seq);
    const paced = s.paced ??= [];
    paced.push(m.seq);
    const counts = this.port.rate.deferred;
    counts.set(tenant, (counts.get(tenant) ?? 0) + 1);
    let lane = this.lanes.get(tenant);
    if (!lane) {
      lane = { sessions: [], head: 0, timer: null };
      this.lanes.set(tenant, lane);
      this.arm(tenant, lane, wait);
    }
    if (paced.length === 1) lane.sessions.push(s);
  }

  private arm(tenant: string, lane: Lane, wait: number): void {
    if (this.stopped) return;
    lane.timer = this.port.clock.setTimeout(() => { lane.timer = null; this.pump(tenant, lane); }, Math.max(1, wait));
  }

  /** Releases the tenant's deferred messages while it has tokens, one per session in turn. */
  private pump(tenant: string, lane: Lane): void {
    if (this.stopped || this.lanes.get(tenant) !== lane) return;
    while (lane.head < lane.sessions.length) {
      const s = lane.sessions[lane.head]!;
      const seq = s.paced?.[0];
      if (seq === undefined || !this.port.alive(s)) {
        // Dropped: its feed restarted, its messages come again to a fresh hydration.
        if (!this.port.alive(s)) s.paced = [];
        this.next(lane);
        continue;
      }
      const m = s.acks.get(seq);
      if (m === undefined) { s.paced!.shift(); if (s.paced!.length === 0) this.next(lane); continue; }
      if (!this.charged(m)) {
        const wait = this.port.rate.tryTake(tenant);
        if (wait > 0) { this.arm(tenant, lane, wait); return; }
      }
      s.paced!.shift();
      this.next(lane);
      if (s.paced!.length > 0) lane.sessions.push(s);
      // A throw here must not strand the lane (its timer is spent); the host drops the session,
      // so its unacked messages come again in order.
      try { this.port.release(s, m); } catch (err) { this.port.failed(err, s); }
    }
    this.lanes.delete(tenant);
  }

  /** Moves past the lane's head (compacting the array now and then). */
  private next(lane: Lane): void {
    lane.head++;
    if (lane.head > 1024 && lane.head * 2 > lane.sessions.length) {
      lane.sessions = lane.sessions.slice(lane.head);
      lane.head = 0;
    }
  }
}
