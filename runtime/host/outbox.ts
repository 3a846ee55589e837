/**
 * Owns the publishing of committed outbox rows: replies, mail, events and cron firings are
 * written in the same transaction as the change that produced them, and published only after
 * it committed. Each row carries its id as `Nats-Msg-Id`, so a row published twice is dropped by
 * JetStream's de-duplication (inbox, events) or can be recognised by its receiver (core replies).
 * Published rows are deleted in batches, off the hot path.
 *
 * Rows the normal path never publishes are found by sweeping the stored rows: a node crashed
 * between its commit and the publish; NATS was away (the publish failed); or a commit was
 * ambiguous (the client gave up waiting while Postgres committed it, the retry was refused, the
 * session was dropped and its redelivered messages skipped as applied: nothing would ever
 * publish those outputs again). A node sweeps only the partitions it owns, and only rows older
 * than a few seconds (younger ones are still on their way out): every 5 s, rows older than 15 s;
 * when it takes a partition, that partition's rows older than 5 s; after a failed publish, its
 * partitions' rows of any age, every 2 s until a sweep gets them all out.
 */
import type { OutboxRecord, PendingOutboxQuery, Store } from '../../persistence/types.js';
import type { Logger } from '../logger.js';
import { H, type Transport } from '../transport.js';

const INBOX_PREFIX = 'agentry.in.';
const EVENTS_PREFIX = 'agentry.events.';

/** The periodic sweep: how often, and how old a stored row must be to be published again. */
export const OUTBOX_SWEEP_EVERY_MS = 5_000;
export const OUTBOX_SWEEP_AGE_MS = 15_000;
/** A partition just taken: its previous owner's rows older than this are published again. */
export const OUTBOX_TAKEOVER_AGE_MS = 5_000;
/** After a failed publish, sweeps of rows of any age come this often until one publishes all. */
const RETRY_EVERY_MS = 2_000;

/** Publishes committed outbox rows and forgets them once published. */
export class Outbox {
  private deletes: string[] = [];
  /**
   * Rows this node published whose delete has not succeeded yet (queued or failing): a sweep must
   * not publish them again. After a Postgres outage longer than JetStream's 2-minute duplicate
   * window, such a copy of a mail would not be dropped and its recipient would apply it twice.
   */
  private readonly published = new Set<string>();
  /** When a publish last failed (0: never, or a later sweep got everything out). */
  private failedAt = 0;
  private lastRetry = 0;
  private lastSweep = Date.now();
  private sweeping = false;
  /** Rows published by sweeps (metrics, tests). */
  swept = 0;

  constructor(private readonly deps: {
    readonly store: Pick<Store, 'pendingOutbox' | 'deleteOutbox'>;
    readonly transport: Pick<Transport, 'publishCore' | 'publishInbox' | 'publishEvent'>;
    readonly logger: Logger;
    /** The partitions this node owns now; null: every row is this node's (a node without leases). */
    readonly owned: () => readonly number[] | null;
  }) {}

  /**
   * Publishes rows in order; stops at the first failure (the rest stay stored and go out with a
   * later sweep). JetStream subjects wait for their PubAck; core subjects do not.
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
        this.published.add(o.id);
      } catch (err) {
        this.deps.logger.warn({ err, id: o.id }, 'outbox publish failed; it stays in the outbox and is retried');
        this.failedAt = Date.now();
        return false;
      }
    }
    return true;
  }

  /**
   * Publishes stored rows again (of `partitions`, or all for null; older than `olderThanMs`),
   * oldest first, page by page until none is left. Resolves with how many were published, or
   * null when a publish failed (the rest stay stored).
   */
  async sweep(partitions: readonly number[] | null, olderThanMs: number, limit = 1000): Promise<number | null> {
    if (partitions !== null && partitions.length === 0) return 0;
    const q: PendingOutboxQuery = { ...(partitions ? { partitions } : {}), createdBefore: Date.now() - olderThanMs };
    let published = 0;
    for (;;) {
      const rows = await this.deps.store.pendingOutbox(limit, q);
      const fresh = rows.filter((r) => !this.published.has(r.id));
      const all = await this.publish(fresh);
      await this.deleteNow(); // before the next page, which would otherwise hold these rows again
      if (!all) return null;
      published += fresh.length;
      this.swept += fresh.length;
      // A full page of rows whose deletes keep failing would come back forever: stop there.
      if (rows.length < limit || fresh.length === 0) {
        if (published > 0) this.deps.logger.warn({ rows: published, partitions: partitions?.length ?? 'all' }, 'outbox rows published by a sweep (left by a crash, a NATS outage or an ambiguous commit)');
        return published;
      }
    }
  }

  /**
   * The host's periodic call: a sweep of the owned partitions' rows older than
   * `OUTBOX_SWEEP_AGE_MS` every `OUTBOX_SWEEP_EVERY_MS`; after a failed publish, of rows of any
   * age every 2 s until a sweep gets them all out.
   */
  tick(): void {
    if (this.sweeping) return;
    const now = Date.now();
    const retry = this.failedAt > 0 && now - this.lastRetry >= RETRY_EVERY_MS;
    if (!retry && now - this.lastSweep < OUTBOX_SWEEP_EVERY_MS) return;
    if (retry) this.lastRetry = now; else this.lastSweep = now;
    this.sweeping = true;
    this.sweep(this.deps.owned(), retry ? 0 : OUTBOX_SWEEP_AGE_MS).then((n) => {
      // Everything out, and nothing failed since this sweep began: the retries can stop.
      if (retry && n !== null && this.failedAt <= now) this.failedAt = 0;
    }, (err: unknown) => {
      this.deps.logger.warn({ err }, 'outbox sweep failed; retrying');
    }).finally(() => { this.sweeping = false; });
  }

  /** Deletes published rows (called periodically); a failed delete is retried next time. */
  flushDeletes(): void {
    this.deleteNow().catch((err: unknown) => { this.deps.logger.warn({ err }, 'outbox clean-up failed; will retry'); });
  }

  /** Deletes the rows published so far; on failure they stay queued (and are not swept again). */
  private async deleteNow(): Promise<void> {
    if (this.deletes.length === 0) return;
    const ids = this.deletes;
    this.deletes = [];
    try {
      await this.deps.store.deleteOutbox(ids);
      for (const id of ids) this.published.delete(id);
    } catch (err) {
      this.deletes.push(...ids);
      throw err;
    }
  }
}
