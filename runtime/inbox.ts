/**
 * Owns the inbox wire format: turning a JetStream message on `agentry.part.<p>.<sessionId>`
 * into an `InboxMessage` (headers → kind, priority, sender; payload → JSON or text), and
 * reporting precisely what is wrong with one that cannot be delivered.
 */
import type { JsMsg } from '@nats-io/jetstream';
import { isPriority, MESSAGE_KINDS, type InboxMessage, type MessageKind } from '../actors/types.js';
import { H } from './transport.js';

export type DecodeResult =
  | { readonly ok: true; readonly message: InboxMessage }
  | { readonly ok: false; readonly reason: string; readonly detail: string; readonly payload: unknown };

const decoder = new TextDecoder('utf-8', { fatal: false });

/** Parses a payload as JSON when it is JSON, else keeps it as text: raw-protocol producers send text. */
export function parsePayload(data: Uint8Array): unknown {
  const text = decoder.decode(data);
  if (text.length === 0) return null;
  const c = text.trimStart()[0];
  if (c === '{' || c === '[' || c === '"' || c === '-' || c === 't' || c === 'f' || c === 'n' || (c !== undefined && c >= '0' && c <= '9')) {
    try { return JSON.parse(text) as unknown; } catch { /* text */ }
  }
  return text;
}

/** The session id from an inbox subject (`agentry.part.<p>.<id>`). */
export function sessionIdOfSubject(subject: string): string {
  const i = subject.indexOf('.', 'agentry.part.'.length);
  return subject.slice(i + 1);
}

/** Decodes an inbox message, or says why it cannot be delivered (the caller dead-letters it). */
export function decodeInbox(m: JsMsg, at: number, maxPayloadBytes: number): DecodeResult {
  const kindRaw = m.headers?.get(H.kind) || 'message';
  const prioRaw = m.headers?.get(H.priority) || 'normal';
  if (m.data.length > maxPayloadBytes) {
    return { ok: false, reason: 'payload-too-large', detail: `${m.data.length} bytes > ${maxPayloadBytes}`, payload: null };
  }
  const body = parsePayload(m.data);
  if (!(MESSAGE_KINDS as readonly string[]).includes(kindRaw) || kindRaw === 'wake') {
    return { ok: false, reason: 'invalid-header', detail: `${H.kind} must be one of message, mail, task, event, control; got ${JSON.stringify(kindRaw)}`, payload: body };
  }
  if (!isPriority(prioRaw)) {
    return { ok: false, reason: 'invalid-header', detail: `${H.priority} must be low, normal, high or urgent; got ${JSON.stringify(prioRaw)}`, payload: body };
  }
  const from = m.headers?.get(H.from) || undefined;
  const eventType = m.headers?.get(H.eventType) || undefined;
  const msgId = m.headers?.get(H.msgId) || undefined;
  return {
    ok: true,
    message: {
      seq: m.seq, kind: kindRaw as MessageKind, body, priority: prioRaw, at,
      ...(from ? { from } : {}), ...(eventType ? { eventType } : {}), ...(msgId ? { msgId } : {}),
    },
  };
}
