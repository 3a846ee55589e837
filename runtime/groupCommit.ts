/**
 * Owns group commit: session commits arriving within a few milliseconds share one
 * transaction, which is what lets throughput approach Postgres' batched write rate.
 *
 * Up to `concurrency` transactions are in flight. Records of one session never share the
 * committer (the host submits a session's v+1 only after v committed), so per-session order
 * holds whichever transaction a record rides in. Records submitted during one event-loop turn
 * (the runs that one socket read of NATS deliveries finished) go together at the end of that
 * turn (`setImmediate`) into a free slot; while every slot is busy they queue, and the first
 * slot to free takes them all (up to `maxBatch`). So batches grow with the load by themselves,
 * and no record waits on a timer while a slot is free. A backlog that finds several slots free
 * (after a stall) is spread over them, in batches of at least 32, instead of going as one long
 * transaction that all of it waits for. `lingerMs` > 0 makes records wait for company while
 * another transaction is in flight, at most that long and never past the end of a transaction
 * in flight (fewer, larger transactions for a little latency). It was 2 ms by default until
 * 2026-11-28, and a free slot sat out the whole timer: at 1,000 msg/s that wait and the timer's
 * lateness sat on nearly every commit.
 *
 * While the store is unavailable the batch is retried with capped backoff and `healthy()`
 * reports false; nothing is dropped and nothing is acked meanwhile. A batch the store says is
 * too large for one statement, or that ran past its deadline (`splitBatch`), is split in halves
 * first: records of sessions with megabytes of state made batches that timed out at every try. A non-retryable failure
 * (stale version, fenced, or data Postgres cannot store: a poison record) is isolated by
 * splitting the batch in halves until the failing record stands alone; it alone is rejected,
 * everything else commits. A data error is never retried.
 *
 * Fencing: a record whose partition lease this node can no longer vouch for (`fence` says
 * false: lost, or not renewed for most of its TTL) is rejected with `FencedError` before it
 * reaches the store; the store's epoch check catches the rest.
 */
import { FencedError } from '../persistence/errors.js';
import type { CommitRecord, Store } from '../persistence/types.js';
import type { Logger } from './logger.js';

export interface GroupCommitter {
  /** Resolves once the record is durably committed; rejects only with a non-retryable error. */
  submit(record: CommitRecord): Promise<void>;
  /** False while commits are failing for want of a store. */
  healthy(): boolean;
  /** Records submitted and not yet committed. */
  backlog(): number;
  /** Resolves when everything submitted so far is committed (or failed). */
  drain(): Promise<void>;
  /** Stops retrying; pending submissions reject. */
  close(): void;
}

/** A backlog is split over free slots only into batches at least this big (smaller ones go as one). */
const MIN_SPLIT = 32;

interface Pending {
  readonly record: CommitRecord;
  readonly resolve: () => void;
  readonly reject: (e: unknown) => void;
}

/** Creates a group committer over `store`. */
export function createGroupCommitter(opts: {
  store: Store;
  logger: Logger;
  maxBatch: number;
  /** Extra wait for company while another transaction is in flight (default 0: none; see the module comment). */
  lingerMs?: number;
  /**
   * Transactions in flight at once. A session never has two records in the committer (its
   * chain submits v+1 after v committed), so concurrent transactions never share a session.
   */
  concurrency?: number;
  /** Whether this node may commit for `partition` under `epoch` now, must wait (lease suspended), or never (lost). */
  fence?: (partition: number, epoch: number) => 'ok' | 'wait' | 'lost';
  onCommitted?: (records: number, ms: number) => void;
}): GroupCommitter {
  const { store, logger } = opts;
  let queue: Pending[] = [];
  let inFlight = 0;
  let lingering = false;
  let lingerTimer: ReturnType<typeof setTimeout> | undefined;
  /** A pump is queued for the end of this event-loop turn. */
  let scheduled = false;
  const concurrency = Math.max(1, opts.concurrency ?? 1);
  const lingerMs = opts.lingerMs ?? 0;
  let closed = false;
  let isHealthy = true;
  let drainWaiters: (() => void)[] = [];

  const isRetryable = (e: unknown): boolean => (e as { retryable?: boolean }).retryable !== false;
  let splitWarnedAt = -Infinity;

  async function commitWithRetry(all: Pending[]): Promise<void> {
    let delay = 50;
    let batch = all;
    for (;;) {
      if (closed) { for (const p of batch) p.reject(new Error('runtime is shutting down')); return; }
      if (opts.fence) {
        const fence = opts.fence;
        const states = batch.map((p) => fence(p.record.partition, p.record.ownerEpoch));
        if (states.includes('lost')) {
          for (let i = 0; i < batch.length; i++) if (states[i] === 'lost') batch[i]!.reject(new FencedError(batch[i]!.record.sessionId, batch[i]!.record.ownerEpoch));
          batch = batch.filter((_, i) => states[i] !== 'lost');
          if (batch.length === 0) return;
          continue;
        }
        if (states.includes('wait')) {
          // A suspended lease: its renewal decides within a TTL whether these commit or are fenced.
          await new Promise((r) => setTimeout(r, 50));
          continue;
        }
      }
      const t0 = performance.now();
      try {
        await store.commit(batch.map((p) => p.record));
        if (!isHealthy) logger.info('store commits succeed again');
        isHealthy = true;
        opts.onCommitted?.(batch.length, performance.now() - t0);
        for (const p of batch) p.resolve();
        return;
      } catch (e) {
        if (!isRetryable(e)) {
          if (batch.length === 1) { batch[0]!.reject(e); return; }
          // Halves, in order: a session's v+1 never commits before its v.
          const mid = Math.ceil(batch.length / 2);
          await commitWithRetry(batch.slice(0, mid));
          await commitWithRetry(batch.slice(mid));
          return;
        }
        if ((e as { splitBatch?: boolean }).splitBatch === true && batch.length > 1) {
          // Too large for one statement, or past the query deadline (a batch of heavy records
          // would time out the same way at every try): halves, in order, each retried alone.
          if (Date.now() - splitWarnedAt >= 60_000) { splitWarnedAt = Date.now(); logger.warn({ records: batch.length, err: (e as Error).message }, 'store commit too large or too slow as one batch; splitting it'); }
          const mid = Math.ceil(batch.length / 2);
          await commitWithRetry(batch.slice(0, mid));
          await commitWithRetry(batch.slice(mid));
          return;
        }
        if (isHealthy) logger.error({ err: e }, 'store commit failed; retrying until the store is back (messages stay unacked)');
        isHealthy = false;
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, 2000);
      }
    }
  }

  /** Starts batches while fewer than `concurrency` transactions are in flight. */
  function pump(lingered = false): void {
    while (queue.length > 0 && inFlight < concurrency && !lingering) {
      if (!lingered && lingerMs > 0 && queue.length < opts.maxBatch && inFlight > 0) {
        // Others are committing: gather a little longer so this batch is worth a transaction.
        lingering = true;
        lingerTimer = setTimeout(() => { lingering = false; lingerTimer = undefined; pump(true); }, lingerMs);
        return;
      }
      lingered = false;
      // A backlog (records queued behind a slow or stalled round) is spread over the free slots,
      // so it lands in parallel instead of as one long transaction that every record waits for.
      const size = Math.min(opts.maxBatch, Math.max(MIN_SPLIT, Math.ceil(queue.length / (concurrency - inFlight))));
      const batch = queue.length <= size ? queue : queue.slice(0, size);
      queue = queue.length <= size ? [] : queue.slice(batch.length);
      inFlight++;
      void commitWithRetry(batch).finally(() => {
        inFlight--;
        if (lingering) {
          // A transaction ended: the records gathering for company go now (the linger is an
          // upper bound, not a wait that a free slot sits out).
          clearTimeout(lingerTimer);
          lingerTimer = undefined;
          lingering = false;
          pump(true);
        } else pump();
        if (inFlight === 0 && queue.length === 0) {
          const waiters = drainWaiters;
          drainWaiters = [];
          for (const w of waiters) w();
        }
      });
    }
  }

  /** Pumps once at the end of this event-loop turn: what this turn submits goes as one batch. */
  function schedule(): void {
    if (scheduled || lingering) return;
    scheduled = true;
    setImmediate(() => { scheduled = false; pump(); });
  }

  return {
    submit(record) {
      return new Promise<void>((resolve, reject) => {
        if (closed) { reject(new Error('runtime is shutting down')); return; }
        queue.push({ record, resolve, reject });
        schedule();
      });
    },
    healthy: () => isHealthy,
    backlog: () => queue.length,
    drain() {
      if (inFlight === 0 && queue.length === 0) return Promise.resolve();
      return new Promise((r) => drainWaiters.push(r));
    },
    close() {
      closed = true;
      const q = queue;
      queue = [];
      for (const p of q) p.reject(new Error('runtime is shutting down'));
    },
  };
}
