/**
 * Owns what goes into the session log (table `session_log`, migration 0003): the rows a commit
 * derives from its own record, so the runtime needs no extra bookkeeping. One `state` row per
 * transition and one `reply` row per outbox row tagged `Agentry-Kind: reply` (the tag the
 * runtime puts on `ctx.reply` outputs), in that order per record: the order in which the live
 * NATS notices of the same commit go out (state changes before it, replies after it). Then one
 * `fate` row per message the record settles other than `handled` (merged, superseded, rejected,
 * rolled-back, …): a plain handled message adds no row, so the common path writes nothing more.
 *
 * Also the retention policy both backends apply.
 */
import type { CommitRecord, OutboxRecord, SessionLogKind } from './types.js';

/** How long log entries are kept (measured on the store's clock at commit). */
export const LOG_MAX_AGE_MS = 24 * 60 * 60 * 1000;
/** How many log entries are kept per session (the newest). */
export const LOG_MAX_PER_SESSION = 1000;
/** How often a store prunes the log after commits (wall clock). */
export const LOG_PRUNE_EVERY_MS = 60_000;

/** Header of an outbox row that says what kind of output it is; replies are logged. */
const KIND_HEADER = 'Agentry-Kind';

/** A log row before the store gives it an id and a commit time. */
export interface SessionLogRow {
  readonly sessionId: string;
  readonly kind: SessionLogKind;
  readonly data: unknown;
}

/** True for an outbox row that carries a session's reply (not mail, an event or a cron firing). */
export function isReplyRow(o: OutboxRecord): boolean {
  return o.headers[KIND_HEADER] === 'reply' && o.subject.startsWith('agentry.out.');
}

function parseBody(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

/**
 * The log rows one commit record writes, in order. Derived here, inside the store, so the log
 * cannot disagree with the transitions and outbox it describes.
 */
export function logRowsOf(record: CommitRecord): SessionLogRow[] {
  const rows: SessionLogRow[] = [];
  for (const t of record.transitions) {
    rows.push({
      sessionId: t.sessionId, kind: 'state',
      data: { agentId: t.sessionId, from: t.from, to: t.to, state: t.to.split('.')[0] ?? t.to, event: t.event, at: t.at },
    });
  }
  for (const o of record.outbox) {
    if (!isReplyRow(o)) continue;
    rows.push({ sessionId: o.sessionId, kind: 'reply', data: { agentId: o.sessionId, body: parseBody(o.body), msgId: o.id, at: o.createdAt } });
  }
  for (const h of record.history) {
    if (h.fate === undefined || h.fate === 'handled' || h.seq <= 0) continue;
    rows.push({ sessionId: h.sessionId, kind: 'fate', data: { agentId: h.sessionId, seq: h.seq, fate: h.fate, batchId: h.batchId, at: h.at } });
  }
  return rows;
}
