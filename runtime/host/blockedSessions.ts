/**
 * Owns the sessions this node cannot take because their stored snapshot does not migrate to the
 * running agent code (actors/agentVersion.ts: no migrate path, a step threw, an invalid state, a
 * snapshot of a newer version). Such a session is never made live and nothing of it is written:
 * its stored snapshot stays as it was, and every inbox message that reaches it is *held here
 * unacked* (kept alive with `working()`, like messages waiting for a handler slot), neither
 * acked nor dead-lettered. So nothing is lost and order is kept: when a deploy that can take the
 * snapshot starts (a restart, or `replaceAgents` in dev, which drops these entries and restarts
 * their partitions' feeds), the consumer delivers the held messages again, oldest first, to a
 * hydration that migrates. The host also reads a blocked session's row again every so often
 * (`due`): one rewritten meanwhile by `agentry migrate` with corrected code is released the same
 * way without a restart. Past the type's `maxMailbox` (when set) a further message is
 * dead-lettered `mailbox-full` by the caller instead of held, so a blocked session cannot pin the
 * partition's `max_ack_pending` without bound.
 *
 * Faults: a partition moving away drops its entries (their messages go to the new owner
 * unacked); a crash loses nothing (the messages are unacked); a redelivery replaces the held
 * handle of the same sequence.
 */
import type { JsMsg } from '@nats-io/jetstream';
import type { MigrationError } from '../../actors/agentVersion.js';

interface Blocked {
  readonly partition: number;
  readonly error: MigrationError;
  readonly held: Map<number, JsMsg>;
  /** When its snapshot was last tried (ms, wall clock): `due` retries it after a while. */
  tried: number;
}

/** The sessions of this node that wait for agent code able to take their snapshot. */
export class BlockedSessions {
  private readonly byId = new Map<string, Blocked>();
  /** Hydrations refused for a failed migration (metric agentry_migration_failures_total). */
  failures = 0;
  /** Snapshots migrated on hydration (metric agentry_migrations_total). */
  migrated = 0;

  /** Records that `sid` cannot be taken (keeps the messages it already holds, if blocked before). */
  block(sid: string, partition: number, error: MigrationError): void {
    this.failures++;
    const was = this.byId.get(sid);
    this.byId.set(sid, { partition, error, held: was?.held ?? new Map<number, JsMsg>(), tried: Date.now() });
  }

  /**
   * Blocked sessions last tried before `before` (marked tried now): the host reads their stored
   * snapshot again, since `agentry migrate` with corrected code may have rewritten it meanwhile.
   */
  due(before: number): { sid: string; agentType: string }[] {
    const out: { sid: string; agentType: string }[] = [];
    for (const [sid, b] of this.byId) {
      if (b.tried >= before) continue;
      b.tried = Date.now();
      out.push({ sid, agentType: b.error.agentType });
    }
    return out;
  }

  /** Forgets one session (it can be taken now); returns its partition when it held messages that must come again. */
  release(sid: string): number | null {
    const b = this.byId.get(sid);
    if (!b) return null;
    this.byId.delete(sid);
    return b.held.size > 0 ? b.partition : null;
  }

  /** The error that blocks `sid`, if it is blocked here. */
  errorOf(sid: string): MigrationError | undefined {
    return this.byId.get(sid)?.error;
  }

  /** Messages held for `sid` (0 when not blocked). */
  heldCount(sid: string): number {
    return this.byId.get(sid)?.held.size ?? 0;
  }

  /** Holds `m` unacked when `sid` is blocked; false when it is not (deliver it normally). */
  hold(sid: string, m: JsMsg): boolean {
    const b = this.byId.get(sid);
    if (!b) return false;
    b.held.set(m.seq, m);
    return true;
  }

  /** Visits every held message (the host keeps them alive with `working()`, so ack-wait does not redeliver them). */
  forEachHeld(fn: (m: JsMsg) => void): void {
    for (const b of this.byId.values()) for (const m of b.held.values()) fn(m);
  }

  /** Forgets the sessions of `partition` (it moved away, or the code changed); true when they held messages. */
  dropPartition(partition: number): boolean {
    let held = false;
    for (const [sid, b] of this.byId) {
      if (b.partition !== partition) continue;
      held ||= b.held.size > 0;
      this.byId.delete(sid);
    }
    return held;
  }

  /** Forgets every blocked session (new agent code); returns the partitions whose feeds must redeliver held messages. */
  dropAll(): number[] {
    const parts = new Set<number>();
    for (const b of this.byId.values()) if (b.held.size > 0) parts.add(b.partition);
    this.byId.clear();
    return [...parts];
  }

  /** Messages held over all blocked sessions (shutdown report). */
  heldTotal(): number {
    let n = 0;
    for (const b of this.byId.values()) n += b.held.size;
    return n;
  }

  /** How many sessions are blocked now (metric agentry_sessions_blocked). */
  get size(): number { return this.byId.size; }
}
