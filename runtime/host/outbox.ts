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
 *
 * A core row (a reply, a stream chunk's notice) has no acknowledgement: it is deleted only after a
 * flush of the data connection confirms the server has it (`confirmCore`, one flush for the rows
 * of many commits), and it is not published while the connection is down. nats.js clears a
 * connection's outbound buffer at every reconnect attempt, so before 2026-11-29 a reply committed
 * while NATS was away was dropped by the client and its row deleted: lost for good
 * (test/durability/replyDuringCut.test.ts). A flush that fails leaves the rows to the retry sweep.
 *
 * A row NATS can never carry (larger than the streams' largest message, headers included; or
 * refused by the client as an invalid argument: over the server's max_payload) is dead-lettered
 * (`output-too-large` / `output-unpublishable`) and removed: before 2026-11-28 every publish and
 * sweep stopped at it, so it stayed forever and every row stored after it was never swept.
 */
import { createHash } from 'node:crypto';
import type { DeadLetter, OutboxRecord, PendingOutboxQuery, Store } from '../../persistence/types.js';
import { storableText } from '../../persistence/storable.js';
import type { Logger } from '../logger.js';
import { H, type Transport } from '../transport.js';

const INBOX_PREFIX = 'agentry.in.';
const EVENTS_PREFIX = 'agentry.events.';

/** The periodic sweep: how often, and how old a stored row must be to be published again. */
export const OUTBOX_SWEEP_EVERY_MS = 5_000;
export const OUTBOX_SWEEP_AGE_MS = 15_000;
/** A partition just taken: its previous owner's rows older than this are published again. */
export const OUTBOX_TAKEOVER_AGE_MS = 5_000;
/** How long a flush confirming core rows may take before they count as not delivered. */
const CORE_CONFIRM_MS = 5_000;
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
  /** Core rows published and not yet confirmed by a flush (their deletes wait for it). */
  private unconfirmed: string[] = [];
  private confirming = false;

  constructor(private readonly deps: {
    readonly store: Pick<Store, 'pendingOutbox' | 'deleteOutbox' | 'addDeadLetter'>;
    readonly transport: Pick<Transport, 'publishCore' | 'publishInbox' | 'publishEvent' | 'flushCore' | 'isConnected'>;
    readonly logger: Logger;
    /** The partitions this node owns now; null: every row is this node's (a node without leases). */
    readonly owned: () => readonly number[] | null;
    /** The largest message (headers included) a subject takes, as far as known up front (`outboxMaxBytes`). */
    readonly maxBytes?: (subject: string) => number;
    /**
     * Whether this node may still publish a row of `sessionId` (it holds the partition's lease,
     * renewed recently). A node that wakes from a long pause (SIGSTOP, a VM freeze) must not go on
     * publishing rows its successor's takeover sweep published already: past the streams' 2-minute
     * duplicate window, each would be delivered twice. Unset: always.
     */
    readonly mayPublish?: (sessionId: string) => boolean;
    /**
     * The clock rows' `createdAt` come from (the runtime's: on Postgres, the store's time). A
     * sweep's age cutoff must be on it: on this node's wall clock, a node 20 s ahead of the store
     * swept every row at once and one 20 s behind only rows 35 s old. Default `Date.now()`.
     */
    readonly now?: () => number;
  }) {}

  /**
   * Publishes rows in order; stops at the first failure (the rest stay stored and go out with a
   * later sweep). JetStream subjects wait for their PubAck; core subjects do not.
   */
  async publish(rows: readonly OutboxRecord[]): Promise<boolean> {
    for (const o of rows) {
      if (this.deps.mayPublish && !this.deps.mayPublish(o.sessionId)) {
        // The lease is in doubt (a pause, a lapse): the row stays stored. A renewal lets the retry
        // sweep publish it; a lost lease leaves it to the next owner's takeover sweep.
        this.failedAt = Date.now();
        return false;
      }
      const size = encodedSize(o);
      const max = this.deps.maxBytes?.(o.subject) ?? Infinity;
      if (size > max) {
        if (!(await this.deadLetter(o, 'output-too-large', `${size} bytes with headers > ${max}, the largest message NATS takes on ${o.subject}`))) return false;
        continue;
      }
      try {
        if (o.subject.startsWith(INBOX_PREFIX)) {
          await this.deps.transport.publishInbox(o.subject.slice(INBOX_PREFIX.length), o.body, { ...o.headers, [H.deliveryId]: deliveryIdOf(o) }, o.id);
        } else if (o.subject.startsWith(EVENTS_PREFIX)) {
          await this.deps.transport.publishEvent(o.subject.slice(EVENTS_PREFIX.length), o.body, { ...o.headers }, o.id);
        } else {
          // Sent while the connection is down, the client would drop it (see the module comment).
          if (!this.deps.transport.isConnected()) throw new Error('the NATS connection is down');
          this.deps.transport.publishCore(o.subject, o.body, { ...o.headers, [H.msgId]: o.id });
          this.published.add(o.id);
          this.unconfirmed.push(o.id);
          this.confirmCore();
          continue;
        }
        this.deletes.push(o.id);
        this.published.add(o.id);
      } catch (err) {
        // The client refuses what it can never send (a bad subject, a payload over max_payload it knows of).
        if ((err as { name?: string }).name === 'InvalidArgumentError') {
          if (!(await this.deadLetter(o, 'output-unpublishable', `NATS refused it: ${(err as Error).message}`))) return false;
          continue;
        }
        this.deps.logger.warn({ err, id: o.id }, 'outbox publish failed; it stays in the outbox and is retried');
        this.failedAt = Date.now();
        return false;
      }
    }
    return true;
  }

  /**
   * Confirms the core rows published so far with one flush (and again for those published
   * meanwhile): confirmed, their deletes are queued; not (the connection dropped, or no answer
   * within 5 s), they are forgotten as published, so the retry sweep publishes them again.
   */
  private confirmCore(): void {
    if (this.confirming) return;
    this.confirming = true;
    void (async () => {
      while (this.unconfirmed.length > 0) {
        const ids = this.unconfirmed;
        this.unconfirmed = [];
        try {
          await this.deps.transport.flushCore(CORE_CONFIRM_MS);
          this.deletes.push(...ids);
        } catch (err) {
          for (const id of ids) this.published.delete(id);
          this.failedAt = Date.now();
          this.deps.logger.warn({ err: (err as Error).message, rows: ids.length }, 'core outputs not confirmed by the NATS server (the connection dropped?): kept in the outbox and published again');
        }
      }
    })().finally(() => { this.confirming = false; if (this.unconfirmed.length > 0) this.confirmCore(); });
  }

  /**
   * Stores a row that can never be published as a dead letter (its head and size; the whole
   * body would be as unwieldy there) and queues its delete. False when the store failed: the
   * row stays and a later sweep tries again.
   */
  private async deadLetter(o: OutboxRecord, reason: string, detail: string): Promise<boolean> {
    const dl: DeadLetter = {
      id: `outbox:${o.id}`, sessionId: o.sessionId, reason, error: storableText(detail), attempts: 0,
      payload: { subject: o.subject, headers: o.headers, bytes: Buffer.byteLength(o.body), head: storableText(o.body.slice(0, 1024)) },
      createdAt: Date.now(), replayedAt: null,
    };
    try {
      await this.deps.store.addDeadLetter(dl);
    } catch (err) {
      this.deps.logger.warn({ err, id: o.id }, 'an unpublishable outbox row could not be dead-lettered; retried');
      this.failedAt = Date.now();
      return false;
    }
    this.deps.logger.error({ id: o.id, sessionId: o.sessionId, subject: o.subject, reason, detail }, 'output dead-lettered: NATS can never carry it');
    this.deletes.push(o.id);
    this.published.add(o.id);
    return true;
  }

  /**
   * Publishes stored rows again (of `partitions`, or all for null; older than `olderThanMs`),
   * oldest first, page by page until none is left. Resolves with how many were published, or
   * null when a publish failed (the rest stay stored).
   */
  async sweep(partitions: readonly number[] | null, olderThanMs: number, limit = 1000): Promise<number | null> {
    if (partitions !== null && partitions.length === 0) return 0;
    const q: PendingOutboxQuery = { ...(partitions ? { partitions } : {}), createdBefore: (this.deps.now?.() ?? Date.now()) - olderThanMs };
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

/**
 * The id a recipient remembers a row by (`Agentry-Delivery-Id`): `r<64 bits of the row id's
 * SHA-1, base 36>.<creation time, base 36>`, the same on every send of the row. JetStream drops a
 * row sent again only while it remembers the row's `Nats-Msg-Id`: a nats-server restart forgets
 * the ids of messages a work queue already removed, and a row whose PubAck was lost in it is
 * sent again by a sweep, then stored a second time. Its recipient skips it by this id (the event
 * memory, `rememberEvents`, which keeps ids by this time).
 */
export function deliveryIdOf(o: Pick<OutboxRecord, 'id' | 'createdAt'>): string {
  const hash = createHash('sha1').update(o.id).digest().readBigUInt64BE(0).toString(36);
  return `r${hash}.${Math.max(0, Math.floor(o.createdAt)).toString(36)}`;
}

/** Bytes `Agentry-Delivery-Id` adds to a row to an inbox, at most (name, `r`, 13 + 12 base-36 digits, separators). */
const DELIVERY_ID_BYTES = `${H.deliveryId}: r${'x'.repeat(13)}.${'x'.repeat(12)}\r\n`.length;

/** A row's size on the wire as NATS counts it against max_payload: body plus encoded headers (and its Nats-Msg-Id). */
function encodedSize(o: OutboxRecord): number {
  let h = 'NATS/1.0\r\n\r\n'.length + `${H.msgId}: ${o.id}\r\n`.length + (o.subject.startsWith(INBOX_PREFIX) ? DELIVERY_ID_BYTES : 0);
  for (const [k, v] of Object.entries(o.headers)) h += Buffer.byteLength(`${k}: ${v}\r\n`);
  return Buffer.byteLength(o.body) + h;
}

/**
 * The largest message `subject` takes that the outbox can know of up front: the streams'
 * max_msg_size (`maxPayloadBytes`) for the JetStream subjects (inbox mail, events); no limit for
 * core subjects (the client refuses one over the server's max_payload: `output-unpublishable`).
 */
export function outboxMaxBytes(subject: string, streamMax: number): number {
  return subject.startsWith(INBOX_PREFIX) || subject.startsWith(EVENTS_PREFIX) ? streamMax : Infinity;
}
