/**
 * Owns the publishing of committed outbox rows: replies, mail, events and cron firings are
 * written in the same transaction as the change that produced them, and published only after
 * it committed. Each row carries its id as `Nats-Msg-Id`, so a row published again after a
 * crash or a NATS outage (the stale flush at start) is dropped by JetStream's de-duplication.
 * Published rows are deleted in batches, off the hot path.
 */
import type { OutboxRecord, Store } from '../../persistence/types.js';
import type { Logger } from '../logger.js';
import { H, type Transport } from '../transport.js';

const INBOX_PREFIX = 'agentry.in.';
const EVENTS_PREFIX = 'agentry.events.';

/** Publishes committed outbox rows and forgets them once published. */
export class Outbox {
  private deletes: string[] = [];
  /** A publish failed (NATS away): stored rows are flushed again until one flush publishes all. */
  private failed = false;
  private retrying = false;
  private lastRetry = 0;

  constructor(private readonly deps: {
    readonly store: Pick<Store, 'pendingOutbox' | 'deleteOutbox'>;
    readonly transport: Pick<Transport, 'publishCore' | 'publishInbox' | 'publishEvent'>;
    readonly logger: Logger;
  }) {}

  /**
   * Publishes rows in order; stops at the first failure (the rest stay stored and go out with
   * the next stale flush). JetStream subjects wait for their PubAck; core subjects do not.
   */
  async publish(rows: readonly OutboxRecord[]): Promise<boolean> {
    for (const o of rows) {
      try {
        if (o.subject.startsWith(INBOX_PREFIX)) {
          await this.deps.transport.publishInbox(o.subject.slice(INBOX_PREFIX.length), o.body, { ...o.headers }, o.id);
        } else if (o.subject.startsWith(EVENTS_PREFIX)) {
          await this.deps.transport.publishEvent(o.subject.slice(EVENTS_PREFIX.length), o.body, { ...o.headers }, o.id);
        } else {
          this.deps.transport.publishCore(o.subject, o.body, { ...o.headers, [H.msgId]: o.id });
        }
        this.deletes.push(o.id);
      } catch (err) {
        this.deps.logger.warn({ err, id: o.id }, 'outbox publish failed; it stays in the outbox and is retried');
        this.failed = true;
        return false;
      }
    }
    return true;
  }

  /** Re-publishes rows left by a crash or a NATS outage; returns how many were found. */
  async flushStale(limit = 1000): Promise<number> {
    const rows = await this.deps.store.pendingOutbox(limit);
    const all = await this.publish(rows);
    this.flushDeletes();
    if (all && rows.length < limit) this.failed = false;
    return rows.length;
  }

  /**
   * After a failed publish, flushes the stored rows again (at most every `everyMs`) until a
   * flush gets them all out: a NATS outage delays outputs, it does not strand them until the
   * next start. Called from the host's periodic sweep.
   */
  retryFailed(everyMs = 2_000): void {
    if (!this.failed || this.retrying || Date.now() - this.lastRetry < everyMs) return;
    this.retrying = true;
    this.lastRetry = Date.now();
    this.flushStale().catch((err: unknown) => {
      this.deps.logger.warn({ err }, 'outbox re-flush failed; retrying');
    }).finally(() => { this.retrying = false; });
  }

  /** Deletes published rows (called periodically); a failed delete is retried next time. */
  flushDeletes(): void {
    if (this.deletes.length === 0) return;
    const ids = this.deletes;
    this.deletes = [];
    this.deps.store.deleteOutbox(ids).catch((err: unknown) => {
      this.deletes.push(...ids);
      this.deps.logger.warn({ err }, 'outbox clean-up failed; will retry');
    });
  }
}
