/**
 * Owns the inbox wire format: turning a JetStream message on `agentry.part.<p>.<sessionId>`
 * into an `InboxMessage` (headers → kind, priority, sender; payload → JSON or text), and
 * reporting precisely what is wrong with one that cannot be delivered.
 *
 * It is the door for NATS producers, who get no answer: what Postgres could not store (bytes
 * that are not UTF-8, a NUL, a lone surrogate, JSON nested deeper than `maxJsonDepth`, also in
 * the stored headers) is refused here with reason `unstorable` and a detail saying what and
 * where, before any recursive code (the machine, JSON.stringify, the commit) touches it; one
 * such message then costs one dead letter and nothing else. Every refusal's `payload` is
 * already storable (`toStorable`, or base64 of the raw bytes), so the dead letter itself can be
 * written.
 */
import type { JsMsg } from '@nats-io/jetstream';
import { isPriority, isTurnPolicy, MESSAGE_KINDS, TURN_POLICIES, type InboxMessage, type MessageKind } from '../actors/types.js';
import { DEFAULT_MAX_JSON_DEPTH, jsonNestingExceeds, storableProblem, storableText, storableTextProblem, toStorable } from '../persistence/index.js';
import { H } from './transport.js';
import { TRACEPARENT, TRACESTATE, traceCarrierOf } from './tracing.js';

/** `Agentry-Event-Id` as the router writes it: `<event stream seq>.<event stream time in ms, base 36>`. */
const EVENT_ID = /^[0-9]{1,16}\.[0-9a-z]{1,12}$/;
/** `Agentry-Delivery-Id` as the outbox writes it on rows to an inbox (`deliveryIdOf`). */
const DELIVERY_ID = /^r[0-9a-z]{1,13}\.[0-9a-z]{1,12}$/;
/** Kinds the outbox sends to an inbox (mail, cron firings, waitpoint results): they carry a delivery id. */
const ROW_KINDS: ReadonlySet<string> = new Set(['mail', 'task', 'waitpoint']);

/** Header naming the sender's turn policy for one message (`queue`, `latest`, `reject`, …); see `TurnPolicy`. */
export const TURN_POLICY_HEADER = 'Agentry-Turn-Policy';

/** Header with the time after which a message must not be handled (epoch ms or ISO 8601): it is dead-lettered `expired`. */
export const EXPIRES_AT_HEADER = 'Agentry-Expires-At';

/** An `Agentry-Expires-At` value as epoch ms (digits: epoch ms; else ISO 8601), or null when it is neither. */
export function parseExpiresAt(raw: string): number | null {
  const ms = /^\d{1,16}$/.test(raw.trim()) ? Number(raw.trim()) : Date.parse(raw);
  return Number.isFinite(ms) ? ms : null;
}

/** Why a message cannot be delivered: the caller dead-letters it with these fields. */
export interface InboxRefusal {
  readonly ok: false;
  /** `payload-too-large`, `invalid-header` or `unstorable`. */
  readonly reason: string;
  /** One line saying what and where; storable text. */
  readonly detail: string;
  /** The payload in a form Postgres can store (null when too large to keep). */
  readonly payload: unknown;
}

export type DecodeResult = { readonly ok: true; readonly message: InboxMessage } | InboxRefusal;

/** A payload that passed the door, or why it did not. */
export type PayloadResult = { readonly ok: true; readonly body: unknown } | InboxRefusal;

/** What decoding needs of a JetStream message (tests build these without a server). */
export type InboxWire = Pick<JsMsg, 'data' | 'seq' | 'headers'>;

const lossy = new TextDecoder('utf-8', { fatal: false });
const strict = new TextDecoder('utf-8', { fatal: true });

function looksLikeJson(text: string): boolean {
  const c = text.trimStart()[0];
  return c === '{' || c === '[' || c === '"' || c === '-' || c === 't' || c === 'f' || c === 'n' || (c !== undefined && c >= '0' && c <= '9');
}

/** JSON when the text is JSON, else the text itself: raw-protocol producers send text. */
function parseText(text: string): unknown {
  if (text.length === 0) return null;
  if (looksLikeJson(text)) {
    try { return JSON.parse(text) as unknown; } catch { /* text */ }
  }
  return text;
}

/**
 * Parses a payload as JSON when it is JSON, else keeps it as text. Lenient: bytes that are
 * not UTF-8 become U+FFFD and nothing is checked; use `decodePayload` where the result will be
 * stored. (V8's JSON.parse is iterative: any depth parses.)
 */
export function parsePayload(data: Uint8Array): unknown {
  return parseText(lossy.decode(data));
}

/** The session id from an inbox subject (`agentry.part.<p>.<id>`). */
export function sessionIdOfSubject(subject: string): string {
  const i = subject.indexOf('.', 'agentry.part.'.length);
  return subject.slice(i + 1);
}

/** Where the first byte that is not UTF-8 sits (the fatal decoder says only that one exists). */
function firstInvalidUtf8(data: Uint8Array): number {
  let i = 0;
  while (i < data.length) {
    const b = data[i]!;
    const n = b < 0x80 ? 1 : b >= 0xc2 && b < 0xe0 ? 2 : b >= 0xe0 && b < 0xf0 ? 3 : b >= 0xf0 && b < 0xf5 ? 4 : 0;
    if (n === 0 || i + n > data.length) return i;
    try { strict.decode(data.subarray(i, i + n)); } catch { return i; }
    i += n;
  }
  return -1;
}

/** The raw bytes as a storable dead-letter payload. */
function bytesPayload(data: Uint8Array): { encoding: 'base64'; data: string } {
  return { encoding: 'base64', data: Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('base64') };
}

/**
 * Decodes a payload for delivery: strict UTF-8, JSON when it is JSON (else text), and only
 * when Postgres can store the result with at most `maxDepth` levels of nesting. A refusal has
 * reason `unstorable`, says what and where (`a NUL character (U+0000) in $.text at index 1`,
 * `not valid UTF-8 (first bad byte at offset 17)`, `JSON nested deeper than 64 levels (at
 * character 64)`), and carries a storable payload (the parsed value made storable; the text
 * itself for a too-deep one, which is never parsed; base64 for bytes that are not UTF-8). Text
 * that merely looks like JSON and nests brackets that deep is refused too. Used for inbox messages and
 * by anything else that stores what producers publish (events).
 */
export function decodePayload(data: Uint8Array, maxDepth: number = DEFAULT_MAX_JSON_DEPTH): PayloadResult {
  let text: string;
  try {
    text = strict.decode(data);
  } catch {
    return { ok: false, reason: 'unstorable', detail: `the payload is not valid UTF-8 (first bad byte at offset ${firstInvalidUtf8(data)})`, payload: bytesPayload(data) };
  }
  // Deep text is refused before JSON.parse, which takes ~1 s on 1 MB nested 500,000 levels deep.
  const deepAt = looksLikeJson(text) ? jsonNestingExceeds(text, maxDepth) : -1;
  if (deepAt >= 0) {
    return { ok: false, reason: 'unstorable', detail: `the payload cannot be stored: JSON nested deeper than ${maxDepth} levels (at character ${deepAt})`, payload: storableText(text) };
  }
  const body = parseText(text);
  const problem = storableProblem(body, maxDepth);
  if (problem !== null) {
    return { ok: false, reason: 'unstorable', detail: `the payload cannot be stored: ${problem}`, payload: toStorable(body, maxDepth) };
  }
  return { ok: true, body };
}

/**
 * Decodes an inbox message, or says why it cannot be delivered (the caller dead-letters it
 * with `reason`, `detail` and `payload`, all storable). `maxJsonDepth` is the runtime's
 * `maxJsonDepth` (AGENTRY_MAX_JSON_DEPTH).
 */
export function decodeInbox(m: InboxWire, at: number, maxPayloadBytes: number, maxJsonDepth: number = DEFAULT_MAX_JSON_DEPTH): DecodeResult {
  const kindRaw = m.headers?.get(H.kind) || 'message';
  const prioRaw = m.headers?.get(H.priority) || 'normal';
  if (m.data.length > maxPayloadBytes) {
    return { ok: false, reason: 'payload-too-large', detail: `${m.data.length} bytes > ${maxPayloadBytes}`, payload: null };
  }
  const decoded = decodePayload(m.data, maxJsonDepth);
  if (!decoded.ok) return decoded;
  const body = decoded.body;
  if (!(MESSAGE_KINDS as readonly string[]).includes(kindRaw) || kindRaw === 'wake') {
    // JSON.stringify escapes NULs and lone surrogates, so the quoted header is storable.
    return { ok: false, reason: 'invalid-header', detail: `${H.kind} must be one of message, mail, task, event, control, waitpoint; got ${JSON.stringify(kindRaw)}`, payload: body };
  }
  if (!isPriority(prioRaw)) {
    return { ok: false, reason: 'invalid-header', detail: `${H.priority} must be low, normal, high or urgent; got ${JSON.stringify(prioRaw)}`, payload: body };
  }
  const policy = m.headers?.get(TURN_POLICY_HEADER) || undefined;
  if (policy !== undefined && !isTurnPolicy(policy)) {
    return { ok: false, reason: 'invalid-header', detail: `${TURN_POLICY_HEADER} must be one of ${TURN_POLICIES.join(', ')}; got ${JSON.stringify(policy)}`, payload: body };
  }
  const expiresRaw = m.headers?.get(EXPIRES_AT_HEADER) || undefined;
  const expiresAt = expiresRaw === undefined ? undefined : parseExpiresAt(expiresRaw);
  if (expiresAt === null) {
    return { ok: false, reason: 'invalid-header', detail: `${EXPIRES_AT_HEADER} must be epoch milliseconds or an ISO 8601 time; got ${JSON.stringify(expiresRaw)}`, payload: body };
  }
  const from = m.headers?.get(H.from) || undefined;
  const eventType = m.headers?.get(H.eventType) || undefined;
  const msgId = m.headers?.get(H.msgId) || undefined;
  // Only the router's own form is taken; anything else is ignored (the copy is then only
  // de-duplicated inside the stream's window), never a reason to refuse the message.
  // An outbox row's delivery id is remembered the same way (the field keeps its name: snapshots hold it).
  const eventIdRaw = kindRaw === 'event' ? m.headers?.get(H.eventId) || undefined
    : ROW_KINDS.has(kindRaw) ? m.headers?.get(H.deliveryId) || undefined : undefined;
  const eventId = eventIdRaw !== undefined && (kindRaw === 'event' ? EVENT_ID : DELIVERY_ID).test(eventIdRaw) ? eventIdRaw : undefined;
  // These headers are stored with the message (history, snapshot): the same rule as the body.
  for (const [name, value] of [[H.from, from], [H.eventType, eventType], [H.msgId, msgId]] as const) {
    const problem = value === undefined ? null : storableTextProblem(value);
    if (problem !== null) return { ok: false, reason: 'unstorable', detail: `header ${name} cannot be stored: ${problem}`, payload: body };
  }
  return {
    ok: true,
    message: {
      seq: m.seq, kind: kindRaw as MessageKind, body, priority: prioRaw, at,
      ...(from ? { from } : {}), ...(eventType ? { eventType } : {}), ...(msgId ? { msgId } : {}), ...(eventId ? { eventId } : {}), ...(policy ? { policy } : {}),
      // A malformed trace context is dropped (W3C: start a new trace), never a reason to refuse the message.
      ...traceCarrierOf(m.headers?.get(TRACEPARENT) || m.headers?.get('Traceparent'), m.headers?.get(TRACESTATE) || m.headers?.get('Tracestate')),
      ...(expiresAt !== undefined ? { expiresAt } : {}),
    },
  };
}
