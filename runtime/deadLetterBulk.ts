/**
 * Owns bulk actions on dead letters across sessions (the inspector's Dead letters page,
 * `replayDeadLetters` / `discardDeadLetters`): a bounded batch of ids, one outcome per id in the
 * order given, and an error on one id never stops the others.
 *
 * Safe to retry: a replay publishes with the dead letter's deterministic message ids (JetStream
 * drops a repeat within its duplicate window), and a dead letter already marked replayed is
 * skipped unless `force` says to send it again — so a client that lost the answer and sends the
 * same batch again delivers nothing twice. Discarding an id that is gone reports
 * `discarded: false`, not an error.
 */
import { AgentryError, codes } from '../actors/errors.js';
import type { Store } from '../persistence/types.js';

/** Most ids one bulk call takes. */
export const MAX_BULK_DEAD_LETTERS = 100;

/** What became of one id of a bulk action: done, or its typed error. */
export type BulkOutcome<T> =
  | ({ readonly id: string; readonly ok: true } & T)
  | { readonly id: string; readonly ok: false; readonly error: { readonly type: string; readonly message: string; readonly retryable: boolean } };

/** A replay's outcome: messages stored now, dropped as duplicates, or skipped (replayed before). */
export interface ReplayDone {
  readonly published: number;
  readonly duplicates: number;
  /** True when it had been replayed before and `force` was not set: nothing was sent. */
  readonly skipped: boolean;
}

/** A discard's outcome: `discarded` false when no such dead letter was there (gone already). */
export interface DiscardOutcome {
  readonly id: string;
  readonly ok: true;
  readonly discarded: boolean;
}

/** Refuses an empty or oversized batch; returns the ids once each, in their first order. */
export function bulkIds(ids: readonly string[]): string[] {
  const unique = [...new Set(ids)];
  if (unique.length === 0) throw new AgentryError('INVALID_ARGUMENT', 'ids must name at least one dead letter');
  if (unique.length > MAX_BULK_DEAD_LETTERS) {
    throw new AgentryError('INVALID_ARGUMENT', `at most ${MAX_BULK_DEAD_LETTERS} dead letters per call (got ${unique.length}): send them in batches`, { details: { max: MAX_BULK_DEAD_LETTERS } });
  }
  return unique;
}

/**
 * One id's error as the API would answer it alone: a typed error keeps its code; anything else
 * (a publish that failed on a NATS fault) is INTERNAL, retryable, its cause left to the log.
 */
function failure(id: string, e: unknown, onInternal: (id: string, err: unknown) => void): BulkOutcome<never> {
  const err = e as { code?: unknown; message?: unknown; retryable?: unknown } | null;
  if (err && typeof err.code === 'string' && Object.prototype.hasOwnProperty.call(codes, err.code)) {
    return { id, ok: false, error: { type: err.code, message: typeof err.message === 'string' ? err.message.slice(0, 1000) : err.code, retryable: err.retryable === true } };
  }
  onInternal(id, e);
  return { id, ok: false, error: { type: 'INTERNAL', message: 'the replay failed (the server log has the cause); retry', retryable: true } };
}

/**
 * Replays each dead letter through `replayOne` (the single-item replay), one after the other
 * (each is a few publishes; a batch of 100 stays well within a request's deadline).
 */
export async function replayDeadLetters(
  store: Store, replayOne: (id: string) => Promise<{ published: number; duplicates: number }>, ids: readonly string[],
  opts: { force?: boolean; onInternal?: (id: string, err: unknown) => void } = {},
): Promise<BulkOutcome<ReplayDone>[]> {
  const out: BulkOutcome<ReplayDone>[] = [];
  for (const id of bulkIds(ids)) {
    try {
      const dl = await store.getDeadLetter(id);
      if (!dl) throw new AgentryError('INVALID_ARGUMENT', `no dead letter ${id} (discarded, or never there)`);
      if (dl.replayedAt !== null && opts.force !== true) {
        out.push({ id, ok: true, published: 0, duplicates: 0, skipped: true });
        continue;
      }
      out.push({ id, ok: true, ...(await replayOne(id)), skipped: false });
    } catch (e) {
      out.push(failure(id, e, opts.onInternal ?? (() => undefined)));
    }
  }
  return out;
}

/** Deletes the dead letters in one statement; an id that is gone reports `discarded: false`. */
export async function discardDeadLetters(store: Store, ids: readonly string[]): Promise<DiscardOutcome[]> {
  const unique = bulkIds(ids);
  const gone = new Set(await store.deleteDeadLetters(unique));
  return unique.map((id) => ({ id, ok: true, discarded: gone.has(id) }));
}
