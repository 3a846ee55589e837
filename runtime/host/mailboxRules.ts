/**
 * Owns two rules of a session's mailbox (issue 16 §2), pure so the host applies them in one line
 * each and tests can drive them without servers:
 *
 * - **Expiry.** A message may carry `expiresAt` (header `Agentry-Expires-At`, `sendMessage
 *   { expiresAt }`): it must never *start* being handled at or after that time. It is checked
 *   where a message is delivered to its session (so one that sat in the stream while the node was
 *   down is refused on arrival) and again whenever a turn starts on it (queued behind a turn,
 *   deferred while asleep, merged into a restarted turn): an expired one is dropped from the
 *   batch, the others run, and it is recorded in the turn's commit with its own history outcome
 *   `expired` and its own dead letter (reason `expired`, id `<session>:<seq>`). A turn whose whole
 *   batch expired runs no handler and commits only that. A message whose turn had started before
 *   it expired is being handled, not late: it completes.
 * - **Bound.** `maxMailbox` counts the messages delivered to the session and not yet settled:
 *   queued (`pending`), in the turn under way (`batch`, merged ones included), deferred while
 *   asleep or waiting (`deferred`, kept in the snapshot), and held for a handler slot. A message
 *   that would exceed it is refused: dead-lettered `mailbox-full` (the NATS producer's answer),
 *   and an API sender gets MAILBOX_FULL (HTTP 429) when the bound is already reached at send time.
 *   Under cancel-and-merge a merge does not make room (the merged message stays counted until its
 *   turn commits): only committed turns do.
 */
import type { InboxMessage } from '../../actors/types.js';
import type { CompletedRun } from '../../actors/sessionMachine.js';
import type { DeadLetter } from '../../persistence/types.js';
import type { PendingCommit } from './commitRecord.js';

/** Whether a message has expired at `now` (it carries an expiry that has passed). */
export function isExpired(m: InboxMessage, now: number): boolean {
  return m.expiresAt !== undefined && m.expiresAt <= now;
}

/** Splits a batch into what may still run and what expired. */
export function splitExpired(batch: readonly InboxMessage[], now: number): { live: InboxMessage[]; expired: InboxMessage[] } {
  const live: InboxMessage[] = [];
  const expired: InboxMessage[] = [];
  for (const m of batch) (isExpired(m, now) ? expired : live).push(m);
  return { live, expired };
}

/** Messages counted against `maxMailbox`: queued, in the turn, deferred, and held for a slot. */
export function mailboxSize(ctx: { readonly pending: readonly unknown[]; readonly batch: readonly unknown[]; readonly deferred: readonly unknown[] }, held: number): number {
  return ctx.pending.length + ctx.batch.length + ctx.deferred.length + held;
}

/** The dead letter of a message refused because it expired (`at`: when it was found expired). */
export function expiredDeadLetter(sessionId: string, m: InboxMessage, at: number): DeadLetter {
  return {
    id: `${sessionId}:${m.seq}`, sessionId, reason: 'expired',
    error: `expired at ${new Date(m.expiresAt ?? at).toISOString()} before it was handled (found at ${new Date(at).toISOString()})`,
    attempts: 0, payload: [m], createdAt: at, replayedAt: null,
  };
}

/**
 * Records, in a pending commit that just took `run`, the messages of its batch that expired before
 * the turn started (`expired`: by seq, what the host dropped): their history rows say `expired`
 * and each gets its dead letter. Only for a turn that completed `ok`; other outcomes (dead letter,
 * interrupted, stopped) already settle the whole batch their way. Forgets the run's seqs either way.
 */
export function recordExpired(p: PendingCommit, sessionId: string, run: CompletedRun, expired: Map<number, number>): void {
  if (expired.size === 0) return;
  for (const m of run.batch) {
    const at = expired.get(m.seq);
    if (at === undefined) continue;
    expired.delete(m.seq);
    if (run.outcome !== 'ok') continue;
    const i = p.history.findIndex((h) => h.seq === m.seq && h.batchId === String(run.runId));
    if (i >= 0) p.history[i] = { ...p.history[i]!, outcome: 'expired', fate: 'expired' };
    p.deadLetters.push(expiredDeadLetter(sessionId, m, at));
  }
  // The one message left of a batch is `handled`, not `merged` with the expired ones.
  const ran = p.history.filter((h) => h.batchId === String(run.runId) && h.seq > 0 && h.outcome === 'ok');
  if (ran.length === 1) {
    const i = p.history.indexOf(ran[0]!);
    p.history[i] = { ...ran[0]!, fate: 'handled' };
  }
}
