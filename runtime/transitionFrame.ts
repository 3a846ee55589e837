/**
 * Owns what a transition row remembers of the session besides its state name (migration 0013):
 * the event object that caused it and the session's context right after it. This is what lets
 * the inspector show the whole session "as of step N" (getSessionAt), not only the statechart.
 *
 * Built on the commit path, once per transition (two or three per turn), so it stays small: no
 * message bodies (a MESSAGE event names its message by seq; its history row has the body),
 * mailbox entries as `{ seq, kind, priority, at, from }`, no trace context; a wake's detail and a
 * run's outputs are capped at `FRAME_BODY_MAX` characters of JSON each. The user state, the one field that can be large, is not in the
 * frame: the host adds it to the row only when it changed since the session's previous frame.
 */
import { errorInfo } from '../actors/errors.js';
import type { SessionContext, SessionEvent } from '../actors/sessionMachine.js';
import type { InboxMessage } from '../actors/types.js';

/** Largest JSON text of a message body kept in a frame's event; a longer one keeps a preview. */
export const FRAME_BODY_MAX = 2048;

/** A mailbox entry as a frame keeps it. */
export interface FrameMessage {
  readonly seq: number;
  readonly kind: string;
  readonly priority: string;
  readonly at: number;
  readonly from?: string;
  readonly eventType?: string;
}

/** The session's context right after a transition. */
export interface FrameContext {
  readonly lastSeq: number;
  readonly runId: number;
  readonly attempt: number;
  readonly wake: { readonly until: number | null; readonly events: readonly string[]; readonly mailPriority: string | null; readonly budget?: unknown } | null;
  readonly wait: {
    readonly event: string | null; readonly replyFrom: string | null; readonly timeoutAt: number | null;
    readonly waitpoint: { readonly id: string; readonly schema: unknown; readonly hasDefault: boolean; readonly default: unknown; readonly tags: readonly string[] } | null;
  } | null;
  readonly mailbox: {
    /** The first `FRAME_PENDING_MAX` queued messages (what runs next); the rest are counted in `pendingOmitted`. */
    readonly pending: readonly FrameMessage[];
    readonly running: readonly FrameMessage[];
    readonly deferred: readonly FrameMessage[];
    readonly rejected: readonly FrameMessage[];
    /** Queued messages left out of `pending`, and the highest seq among them (absent when none were). */
    readonly pendingOmitted?: { readonly count: number; readonly maxSeq: number };
  };
  readonly lastError: { readonly message: string; readonly code: string; readonly terminal: boolean } | null;
}

/** An output a run sent (reply, mail, event), as the frame of the transition that ended the run keeps it. */
export interface FrameOutput {
  readonly kind: string;
  readonly subject: string;
  readonly body: unknown;
}

/** What a transition row's `frame` holds. */
export interface TransitionFrame {
  /** The event object that caused the transition (`type` plus its fields; an internal one such as `run.done` names its run). */
  readonly event: { readonly type: string } & Readonly<Record<string, unknown>>;
  readonly context: FrameContext;
  /** On the transition that ended a run: the run and what it sent (committed with it): the sequence view's "out". */
  readonly outputs?: { readonly runId: number; readonly items: readonly FrameOutput[] };
}

function messageOf(m: InboxMessage): FrameMessage {
  return {
    seq: m.seq, kind: m.kind, priority: m.priority, at: m.at,
    ...(m.from !== undefined ? { from: m.from } : {}), ...(m.eventType !== undefined ? { eventType: m.eventType } : {}),
  };
}

/**
 * Queued messages a frame lists. A frame is built for every run a session starts, so a full list
 * made a long queue cost O(n) per message (O(n²) to drain: a third of all allocation with a few
 * hundred queued); the head of the queue is what the inspector shows, the rest is counted.
 */
export const FRAME_PENDING_MAX = 32;

/** A body as a frame keeps it: itself when its JSON is short, else `{ truncated, preview }`. */
export function cappedBody(body: unknown): unknown {
  if (typeof body === 'string') return body.length <= FRAME_BODY_MAX ? body : { truncated: true, preview: body.slice(0, FRAME_BODY_MAX) };
  if (body === null || typeof body !== 'object') return body;
  let text: string | undefined;
  try { text = JSON.stringify(body); } catch { return { truncated: true, preview: '(not JSON)' }; }
  if (text === undefined || text.length <= FRAME_BODY_MAX) return body;
  return { truncated: true, preview: text.slice(0, FRAME_BODY_MAX) };
}

/** An empty mailbox list of a frame (shared: a stored frame is never changed). */
const NO_MESSAGES: readonly FrameMessage[] = Object.freeze([]);

/** A mailbox list as a frame keeps it (most are empty: one shared array, not a new one per frame). */
function messagesOf(list: readonly InboxMessage[] | undefined): readonly FrameMessage[] {
  return list === undefined || list.length === 0 ? NO_MESSAGES : list.map(messageOf);
}

/** What `FRAME_PENDING_MAX` left out of a frame's pending list. */
function omitted(pending: readonly InboxMessage[]): { count: number; maxSeq: number } {
  let maxSeq = 0;
  for (let i = FRAME_PENDING_MAX; i < pending.length; i++) if (pending[i]!.seq > maxSeq) maxSeq = pending[i]!.seq;
  return { count: pending.length - FRAME_PENDING_MAX, maxSeq };
}

/** The context part of a frame. */
export function frameContextOf(ctx: SessionContext): FrameContext {
  const w = ctx.wake;
  const t = ctx.wait;
  const wp = t?.waitpoint;
  return {
    lastSeq: ctx.lastSeq, runId: ctx.runId, attempt: ctx.attempt,
    wake: w ? { until: w.until, events: [...w.events], mailPriority: w.mailPriority, ...(w.budget ? { budget: w.budget } : {}) } : null,
    wait: t ? {
      event: t.event, replyFrom: t.replyFrom, timeoutAt: t.timeoutAt,
      waitpoint: wp ? { id: wp.id, schema: wp.schema, hasDefault: wp.hasDefault, default: wp.default, tags: [...wp.tags] } : null,
    } : null,
    mailbox: {
      pending: messagesOf(ctx.pending.length > FRAME_PENDING_MAX ? ctx.pending.slice(0, FRAME_PENDING_MAX) : ctx.pending), running: messagesOf(ctx.batch),
      deferred: messagesOf(ctx.deferred), rejected: messagesOf(ctx.rejected),
      ...(ctx.pending.length > FRAME_PENDING_MAX ? { pendingOmitted: omitted(ctx.pending) } : {}),
    },
    lastError: ctx.lastError ? { message: ctx.lastError.message, code: ctx.lastError.code, terminal: ctx.lastError.terminal } : null,
  };
}

/**
 * The event object of a transition: the external event being sent (`event`), else the internal
 * step named `name` (`run.done`, `run.failed`, `retry`, `create`, …) with the run it ended.
 */
export function frameEventOf(event: SessionEvent | null, name: string, ctx: SessionContext): TransitionFrame['event'] {
  if (!event) {
    const c = ctx.completed;
    return c && (name === 'run.done' || name === 'run.failed')
      ? { type: name, runId: c.runId, outcome: c.outcome, attempts: c.attempts, seqs: c.batch.map((m) => m.seq), ...(c.error ? { error: c.error.message } : {}) }
      : { type: name, ...(ctx.runId ? { runId: ctx.runId } : {}) };
  }
  switch (event.type) {
    // The body is not copied: the message's history row holds it, and getSessionAt puts it back (runtime/sessionAt.ts).
    case 'MESSAGE': return { type: event.type, at: event.at, message: messageOf(event.message) };
    case 'SLEEP': return { type: event.type, at: event.at, wake: { until: event.wake.until, events: [...event.wake.events], mailPriority: event.wake.mailPriority } };
    case 'WAIT': return { type: event.type, at: event.at, wait: { event: event.wait.event, replyFrom: event.wait.replyFrom, timeoutAt: event.wait.timeoutAt, waitpoint: event.wait.waitpoint?.id ?? null } };
    case 'WAKE': return { type: event.type, at: event.at, reason: event.reason, ...(event.detail !== undefined ? { detail: cappedBody(event.detail) } : {}) };
    case 'INTERRUPT':
    case 'STOP': return { type: event.type, at: event.at, ...(event.reason !== undefined ? { reason: event.reason } : {}) };
    case 'RUN_DONE': return { type: event.type, runId: event.runId, next: event.output.next.type };
    case 'RUN_FAILED': return { type: event.type, runId: event.runId, error: errorInfo(event.error).message };
    case 'RESUME': return { type: event.type, at: event.at };
  }
}

/**
 * The frame of a transition the host records; `ended` is the run this transition ended and the
 * outputs it sent (subscriptions left out), when it ended one.
 */
export function frameOf(event: SessionEvent | null, name: string, ctx: SessionContext, ended?: { runId: number; outputs: readonly { kind: string; subject: string; body: unknown }[] }): TransitionFrame {
  const items = ended?.outputs.filter((o) => o.kind !== 'subscribe' && o.kind !== 'unsubscribe').map((o) => ({ kind: o.kind, subject: o.subject, body: cappedBody(o.body) }));
  return { event: frameEventOf(event, name, ctx), context: frameContextOf(ctx), ...(ended ? { outputs: { runId: ended.runId, items: items ?? [] } } : {}) };
}
