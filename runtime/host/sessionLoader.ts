/**
 * Owns the reads that hydrate sessions: every session waiting to load is read by one batched
 * query (`loadSessions(ids)`, an `= ANY($1)` read) with at most LOAD_CONCURRENCY of them in
 * flight, so a burst of 1,000 first messages (or due wakes) costs a few queries, not 2,000, and
 * hydrations never take the pool connections group commit needs. Store outages are retried
 * (runtime/retry.ts); a caller waiting for the same id shares the read.
 *
 * A batch's callers are answered in one go. Answering them 32 per event-loop turn was tried
 * (each answer makes a session live, ~0.1 ms) and made the tail worse on a loaded machine: a
 * turn there takes 50-100 ms, so the last callers of a batch waited a second for their turn.
 * Wakes now load ahead of their due time (`SessionHost.prefetchWake`), which spreads these
 * hydrations over time instead.
 */
import type { HistoryLimit, LoadedSession, Store } from '../../persistence/types.js';
import { retryWhileStoreDown } from '../retry.js';

/**
 * Hydration reads in flight at once, each one batch of sessions (the pg pool has 10
 * connections; group commits need three). While they run, further hydrations gather into the
 * next batch.
 */
const LOAD_CONCURRENCY = 2;
/** Most sessions read by one hydration query. */
const LOAD_BATCH = 500;

interface LoadWaiter { readonly resolve: (v: LoadedSession | null) => void; readonly reject: (e: unknown) => void }

/** Batches hydration reads (see the module comment). */
export class SessionLoader {
  private readonly queue = new Map<string, LoadWaiter[]>();
  private running = 0;

  /** `historyLimit` is read at each batch: the agent definitions may be replaced at run time. */
  constructor(private readonly store: Store, private readonly historyLimit: () => HistoryLimit, private readonly stopping: () => boolean) {}

  /** A session and its recent history (newest first), or null when it does not exist. */
  load(sid: string): Promise<LoadedSession | null> {
    return new Promise((resolve, reject) => {
      const waiting = this.queue.get(sid);
      if (waiting) waiting.push({ resolve, reject });
      else this.queue.set(sid, [{ resolve, reject }]);
      this.pump();
    });
  }

  private pump(): void {
    while (this.queue.size > 0 && this.running < LOAD_CONCURRENCY) {
      const batch: [string, LoadWaiter[]][] = [];
      for (const entry of this.queue) {
        batch.push(entry);
        if (batch.length >= LOAD_BATCH) break;
      }
      for (const [id] of batch) this.queue.delete(id);
      this.running++;
      const ids = batch.map(([id]) => id);
      void retryWhileStoreDown(() => this.store.loadSessions(ids, this.historyLimit()), this.stopping).then((found) => {
        this.running--;
        this.pump(); // the next read goes out before this one's answers are handed over
        for (const [id, waiters] of batch) for (const w of waiters) w.resolve(found.get(id) ?? null);
      }, (err: unknown) => {
        this.running--;
        this.pump();
        for (const [, waiters] of batch) for (const w of waiters) w.reject(err);
      });
    }
  }
}
