/**
 * Owns the operator's way out for one stuck inbox message: `deadLetterInboxMessage(seq, reason)`
 * reads the message from the inbox stream by sequence, stores it as a dead letter (reason
 * `operator`, stored the way the runtime stores its own, so `listDeadLetters` shows it and
 * `replayDeadLetter` sends it again with its kind, priority and sender), and only then deletes it
 * from the stream, so the session never receives it.
 *
 * No loss: the dead letter is stored before the message is deleted. A crash or a failed delete
 * in between leaves both; a retry finds the message again and stores nothing new, because the
 * dead letter's id comes from the stream sequence (`<sessionId>:<seq>`, the id the runtime gives
 * any single dead-lettered message) and the store keeps the first row of an id.
 *
 * Faults: NATS unreachable (the read or the delete fails) is NOT_READY, retryable; a sequence
 * that is not in the stream (acked meanwhile, deleted, never there) or not an inbox message is
 * INVALID_ARGUMENT. A node that already holds the message (delivered, not yet acked: its handler
 * may be running) still handles that copy: stopping it is `interruptAgent`'s job.
 */
import type { StoredMsg } from '@nats-io/jetstream';
import { AgentryError } from '../actors/errors.js';
import { sessionIdProblem } from '../actors/sessionId.js';
import type { DeadLetter, Store } from '../persistence/types.js';
import { storableText, toStorable } from '../persistence/storable.js';
import type { Clock } from './clock.js';
import type { RuntimeConfig } from './config.js';
import { decodeInbox } from './inbox.js';
import type { Logger } from './logger.js';
import { DLQ_SUBJECT, type Transport } from './transport.js';

/** What `deadLetterInboxMessage` did. */
export interface InboxDeadLetterResult {
  /** The dead letter's id (for `replayDeadLetter`): `<sessionId>:<seq>`. */
  readonly id: string;
  readonly agentId: string;
  readonly seq: number;
  /**
   * True when this call deleted the message from the stream; false when it was gone by then
   * (acked by its session meanwhile): the dead letter is stored either way.
   */
  readonly removed: boolean;
}

/** What the operation needs from the runtime. */
export interface InboxDeadLetterDeps {
  readonly transport: Pick<Transport, 'jsm' | 'inboxStream' | 'publishCore'>;
  readonly store: Pick<Store, 'addDeadLetter'>;
  readonly config: Pick<RuntimeConfig, 'maxPayloadBytes' | 'maxJsonDepth'>;
  readonly clock: Clock;
  readonly logger: Logger;
}

const INBOX_SUBJECT = /^agentry\.part\.\d+\.(.+)$/;

const isNotFound = (e: unknown): boolean => /no message found|not found/i.test((e as Error).message);

/**
 * Moves inbox message `seq` to the dead letters (reason `operator`, `error` the operator's
 * reason), then deletes it from the stream. Safe to retry: one dead letter per message.
 *
 * @example
 * const r = await deadLetterInboxMessage(deps, 1842, 'crashes the parser');
 * // later: await runtime.replayDeadLetter(r.id)
 */
export async function deadLetterInboxMessage(deps: InboxDeadLetterDeps, seq: number, reason: string): Promise<InboxDeadLetterResult> {
  const { transport, store, clock } = deps;
  if (!Number.isSafeInteger(seq) || seq <= 0) throw new AgentryError('INVALID_ARGUMENT', 'seq must be a stream sequence (a positive whole number)');
  const stream = transport.inboxStream;
  let m: StoredMsg | null;
  try {
    m = await transport.jsm.streams.getMessage(stream, { seq });
  } catch (e) {
    if (!isNotFound(e)) throw new AgentryError('NOT_READY', `could not read message ${seq} from ${stream}: ${(e as Error).message}`, { retryable: true, cause: e });
    m = null;
  }
  if (!m) throw new AgentryError('INVALID_ARGUMENT', `no message ${seq} in ${stream}: acked and gone, deleted, or never there (listDeadLetters shows one an earlier call stored)`);
  const match = INBOX_SUBJECT.exec(m.subject);
  if (!match) throw new AgentryError('INVALID_ARGUMENT', `message ${seq} (${m.subject}) is not an inbox message`);
  const subjectId = match[1]!;
  const sessionId = storableText(subjectId.slice(0, 200));

  // Stored as the runtime stores a message it could not deliver: the decoded message (so a
  // replay keeps its kind, priority and sender), or what could be kept of an undecodable one.
  const decoded = decodeInbox({ seq: m.seq, data: m.data, headers: m.header }, m.time.getTime(), deps.config.maxPayloadBytes, deps.config.maxJsonDepth);
  const dl: DeadLetter = {
    id: `${sessionId}:${seq}`, sessionId, reason: 'operator',
    error: storableText(decoded.ok ? reason : `${reason} (undeliverable as it is: ${decoded.detail})`),
    attempts: 0, payload: toStorable(decoded.ok ? [decoded.message] : decoded.payload, deps.config.maxJsonDepth),
    createdAt: clock.now(), replayedAt: null,
  };
  await store.addDeadLetter(dl);

  let removed: boolean;
  try {
    removed = await transport.jsm.streams.deleteMessage(stream, seq, false);
  } catch (e) {
    if (!isNotFound(e)) {
      throw new AgentryError('NOT_READY', `dead letter ${dl.id} is stored, but message ${seq} could not be removed from ${stream}: ${(e as Error).message}; retry (no second dead letter is stored)`, { retryable: true, cause: e });
    }
    removed = false;
  }
  deps.logger.warn({ sessionId, seq, deadLetterId: dl.id, removed, reason }, 'inbox message dead-lettered by an operator');
  transport.publishCore(DLQ_SUBJECT(sessionIdProblem(subjectId) === null ? subjectId : '_invalid'), JSON.stringify(dl));
  return { id: dl.id, agentId: sessionId, seq, removed };
}
