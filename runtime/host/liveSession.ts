/**
 * Owns what a live session *is* on this node: the record the host keeps beside each XState
 * actor (unacked messages, commit bookkeeping, the run in flight, slot bookkeeping) and the pure
 * helpers that read it — the read model (`SessionView`), the timeline name of an internal
 * change, the history item of a stored row. The host (sessionHost.ts) and its stages
 * (handlerRuns.ts, liveSlots.ts, …) share this record; nothing here does I/O.
 */
import type { JsMsg } from '@nats-io/jetstream';
import type { SpanContext } from '@opentelemetry/api';
import type { Actor } from 'xstate';
import type { HistoryItem, ResolvedAgent } from '../../actors/defineAgent.js';
import { policyOf, statePath, topState, type sessionMachine, type SessionContext, type SessionEvent } from '../../actors/sessionMachine.js';
import type { InboxMessage, Priority, TurnPolicy } from '../../actors/types.js';
import type { MigrationError } from '../../actors/agentVersion.js';
import type { HistoryEntry, HistoryLimit, TransitionRecord } from '../../persistence/types.js';
import type { Logger } from '../logger.js';
import { H } from '../transport.js';
import { abortRunHandle, type RunHandle } from './handlerContext.js';
import type { PendingCommit, PendingOutput } from './commitRecord.js';
import type { DroppedMessage } from '../tracing.js';

/** The session statechart's actor, with the host's run actions provided. */
export type SessionActor = Actor<ReturnType<typeof sessionMachine.provide>>;

export interface LiveSession {
  readonly id: string;
  readonly type: string;
  readonly partition: number;
  /** The agent version its snapshot is at (migrated on hydration): stamped on every commit. */
  readonly agentVersion: number;
  readonly actor: SessionActor;
  readonly log: Logger;
  /** Unacked inbox messages by stream sequence. */
  readonly acks: Map<number, JsMsg>;
  readonly outputs: Map<number, PendingOutput[]>;
  /**
   * The session's recent history, oldest first, as stored rows (a commit's own history entries:
   * no copy per message); `ctx.history` turns them into items when a handler reads it.
   */
  historyView: HistoryEntry[];
  /**
   * Ids of the events whose fate the session's records settled, newest last (pruned as
   * `rememberEvents` says), as the last record built stores them: a copy of one of them is a
   * duplicate, however late it comes. A new array on every change.
   */
  seenEvents: readonly string[];
  /** Ids of events handed to the actor and not settled by a record yet (none: undefined). */
  liveEvents?: Set<string>;
  maxEnqueuedSeq: number;
  committedLastSeq: number;
  storeVersion: number;
  submittedVersion: number;
  lastCompletedRunId: number;
  lastPath: string;
  /** The external event being sent right now (snapshots during it are its doing), else null. */
  sending: string | null;
  /** The event object being sent right now (the frame of a transition it causes keeps it). */
  sendingEvent?: SessionEvent | null;
  /**
   * The user state the session's last recorded frame carried (unset: none yet, so the first frame
   * carries it): a transition adds it to its row only when it differs.
   */
  frameUserState?: unknown;
  /** runId at the last snapshot: a change with the same state path is a merge or an interrupt. */
  lastRunId: number;
  transitions: TransitionRecord[];
  /**
   * Changes waiting for the commit in flight (null: none). Every later change merges into it,
   * so a busy session writes one record per round trip instead of one per change.
   */
  open: PendingCommit | null;
  /**
   * The change being made now is a due wake from the scheduler (`SessionHost.wakeDue`): the record
   * it opens waits for the run it starts before it is submitted (`CommitChain.commit`, WAKE_HOLD_MS).
   */
  wakeHold: boolean;
  /** The handler run in flight (null: none). */
  run: RunHandle | null;
  chain: Promise<void>;
  inflight: number;
  lastActivity: number;
  /** When the session's last change was committed (the stored row's updated_at when hydrated); null before its first commit. */
  updatedAt: number | null;
  broken: boolean;
  /** Why a link of its commit chain failed (the drop that made it `broken`), for the commands waiting on it. */
  failure?: unknown;
  /**
   * Callers that hydrated or looked up this session and have not handed it its messages or
   * command yet. A pinned session is never evicted: freshly hydrated, it is quiescent until
   * then, and a hydration waiting for a slot would otherwise evict it in between (its messages
   * then went to a stopped actor and sat unacked until redelivery, over and over under load).
   */
  pins: number;
  /** Messages held back while maxActiveSessions handlers run (this session was not active). */
  held: number[];
  /** Whether the session has an entry in the admission queue. */
  queued: boolean;
  /** Messages deferred because its tenant is over its rate (tenantPacer.ts), oldest first; all in `acks`. */
  paced?: number[];
  /** Messages of turns under way dropped because they expired before the turn started: seq → when found (mailboxRules.ts). */
  readonly expired: Map<number, number>;
  /** The state `onAbort` repaired after an aborted turn: the next turns start from it until one completes. */
  repair?: { readonly state: unknown } | undefined;
  /** Span contexts of finished runs not committed yet, by runId (their commit spans are children). */
  runTraces?: Map<number, SpanContext>;
  /** Traced messages of turns a newer message dropped: the next run links them. */
  dropped?: DroppedMessage[];
}

/** Aborts the session's run in flight, if any, and returns it (for its retraction and grace watch). */
export function abortRun(s: LiveSession): RunHandle | null {
  const run = s.run;
  if (!run) return null;
  s.run = null;
  abortRunHandle(run);
  return run;
}

/** Why a run was aborted, from the event that left `running` (the `reason` of a `retracted` notice). */
export function abortReasonOf(context: SessionContext, event: SessionEvent): string {
  if (event.type === 'MESSAGE') {
    const p = policyOf(context, event.message);
    return p === 'latest' ? 'superseded' : p === 'rollback' ? 'rolled-back' : 'merged';
  }
  return event.type === 'INTERRUPT' ? 'interrupted' : event.type === 'STOP' ? 'stopped' : 'aborted';
}

/** Live view of a session for `getAgent` and the inspector. */
export interface SessionView {
  readonly agentId: string;
  readonly type: string;
  /** The session's tenant (null: none); set at creation, never changed. */
  readonly tenant: string | null;
  /** The session's tags (empty: none); set at creation, never changed. */
  readonly tags: readonly string[];
  readonly state: 'idle' | 'active' | 'sleeping' | 'waiting' | 'stopped';
  readonly stateValue: string;
  /** The session's turn policy (its agent type's, or the one set at creation). */
  readonly policy: TurnPolicy;
  readonly userState: unknown;
  readonly lastSeq: number;
  readonly wake: SessionContext['wake'];
  readonly wait: SessionContext['wait'];
  /** `rejected`: messages refused (turn policy reject) whose refusal is not committed yet. */
  readonly mailbox: { readonly pending: number; readonly deferred: readonly { seq: number; kind: string; priority: Priority; from?: string; at: number }[]; readonly running: number; readonly rejected: number };
  readonly lastError: SessionContext['lastError'];
  readonly live: boolean;
  readonly updatedAt: number | null;
  /** The agent version of its snapshot (stored, or migrated to when live). */
  readonly agentVersion?: number;
  /** Set when the running code cannot take its stored snapshot: it waits, messages held, for a deploy that can. */
  readonly migrationError?: ReturnType<MigrationError['toJSON']>;
}

/**
 * Names the internal event behind a snapshot no external event caused, for the timeline: a run
 * that finished (`run.done`), failed (`run.failed`, then retried or dead-lettered) or a retry.
 */
export function internalEventOf(s: LiveSession, snap: { value: unknown; context: SessionContext }): string {
  if (s.lastPath === 'active.retrying' && statePath(snap.value) === 'active.running') return 'retry';
  const c = snap.context.completed;
  if (c && c.runId !== s.lastCompletedRunId) return c.outcome === 'ok' ? 'run.done' : 'run.failed';
  if (statePath(snap.value) === 'active.retrying') return 'run.failed';
  return 'run.done';
}

/**
 * A fresh session's initial state as the store will hold it (a run that never touches `ctx.state`
 * hands it on as is); a value JSON cannot carry is left for the first run to refuse.
 */
export function jsonCopy(v: unknown): unknown {
  try { return JSON.parse(JSON.stringify(v ?? null)) as unknown; } catch { return v; }
}

/** A held message's place in the active-slot queue: its `Agentry-Priority` header (default normal). */
export function prioOf(m: JsMsg): Priority {
  const p = m.headers?.get(H.priority);
  return p === 'low' || p === 'high' || p === 'urgent' ? p : 'normal';
}

/** The history items a handler sees (`ctx.history`) of a session's history view. */
export function historyItemsOf(view: readonly HistoryEntry[]): HistoryItem[] {
  return view.map(toHistoryItem);
}

/** A stored history row as handlers see it (`ctx.history`). */
export function toHistoryItem(h: HistoryEntry): HistoryItem {
  return { seq: h.seq, kind: h.kind, body: h.body, from: h.from, batchId: h.batchId, outcome: h.outcome, at: h.at };
}

/** A dead letter's payload when the message cannot be decoded: its text, at most 64 KiB (kept for a person to read). */
export function decodePayloadLoose(m: JsMsg): unknown {
  try { return new TextDecoder().decode(m.data.subarray(0, 64 * 1024)); } catch { return null; }
}

/** The read model of a session (live or stored) for `getAgent` and the inspector. */
export function viewOf(sid: string, type: string, value: unknown, ctx: SessionContext, live: boolean, updatedAt: number | null): SessionView {
  return {
    agentId: sid, type, tenant: ctx.tenant ?? null, tags: ctx.tags ?? [], state: topState(value), stateValue: statePath(value), policy: ctx.limits.policy, userState: ctx.userState, lastSeq: ctx.lastSeq,
    wake: ctx.wake, wait: ctx.wait,
    mailbox: {
      pending: ctx.pending.length, running: ctx.batch.length, rejected: ctx.rejected?.length ?? 0,
      deferred: ctx.deferred.map((m: InboxMessage) => ({ seq: m.seq, kind: m.kind, priority: m.priority, at: m.at, ...(m.from ? { from: m.from } : {}) })),
    },
    lastError: ctx.lastError, live, updatedAt,
  };
}

/** A tenant name: 1-64 characters of [A-Za-z0-9_-] (it becomes a metrics label and a lock key). */
export function isTenant(t: unknown): t is string {
  return typeof t === 'string' && /^[A-Za-z0-9_-]{1,64}$/.test(t);
}

/** Most tags a session may have. */
export const MAX_TAGS = 16;

/**
 * Why `tags` is not a valid tag list (null when it is): at most 16 tags, each 1-64 characters of
 * [A-Za-z0-9_:.-] (so a tag is safe in a URL, a CLI argument and a Postgres array literal alike).
 */
export function tagsProblem(tags: unknown): string | null {
  if (!Array.isArray(tags)) return 'tags must be an array of strings';
  if (tags.length > MAX_TAGS) return `tags: at most ${MAX_TAGS} tags (got ${tags.length})`;
  for (const t of tags) if (!isTag(t)) return `tags: ${JSON.stringify(t)} is not a tag (1-64 characters of [A-Za-z0-9_:.-])`;
  return null;
}

/** One tag: 1-64 characters of [A-Za-z0-9_:.-]. */
export function isTag(t: unknown): t is string {
  return typeof t === 'string' && /^[A-Za-z0-9_:.-]{1,64}$/.test(t);
}

/** History a hydration loads per agent type (its `maxHistory`), 50 for a type no longer registered. */
export function historyLimitOf(agents: ReadonlyMap<string, ResolvedAgent>): HistoryLimit {
  return { byType: Object.fromEntries([...agents].map(([t, a]) => [t, a.maxHistory])), fallback: 50 };
}

/**
 * What a session remembers of its events: every event published within `REMEMBER_EVENTS_MS` of
 * the newest one it has, and at least its last `REMEMBERED_EVENTS`, at most `MAX_REMEMBERED_EVENTS`.
 * A copy of an event reaches a session twice when a route was broken off (a crash, a pause, an
 * ack lost in a NATS restart) and the event was routed again, and the stream no longer knows the
 * first copy's id: past its duplicate window, or after a nats-server restart (which forgets the
 * ids of messages a work queue has already removed — seen in chaos runs: a copy stored again 51 s
 * after the first). Time, not count, is what such a late copy is late by. Outbox rows' delivery
 * ids (mail, cron firings, waitpoint results) are kept by the same rule, with the time their row
 * was created by the sending node's clock.
 */
export const REMEMBERED_EVENTS = 32;
export const REMEMBER_EVENTS_MS = 5 * 60_000;
export const MAX_REMEMBERED_EVENTS = 512;

/** The event's stream time, from its id (`<seq>.<ms base 36>`); NaN for a malformed one. */
function eventTimeOf(id: string): number {
  return parseInt(id.slice(id.indexOf('.') + 1), 36);
}

/** `seen` with `ids` added (each once, newest last), then pruned as `REMEMBERED_EVENTS` says: a new array. */
export function rememberEvents(seen: readonly string[], ids: readonly string[]): readonly string[] {
  let out = seen.filter((x) => !ids.includes(x));
  for (const id of ids) if (!out.includes(id)) out.push(id);
  if (out.length > MAX_REMEMBERED_EVENTS) out = out.slice(out.length - MAX_REMEMBERED_EVENTS);
  if (out.length <= REMEMBERED_EVENTS) return out;
  let newest = -Infinity;
  for (const id of out) { const t = eventTimeOf(id); if (t > newest) newest = t; }
  const keepFrom = out.length - REMEMBERED_EVENTS;
  return out.filter((id, k) => k >= keepFrom || eventTimeOf(id) >= newest - REMEMBER_EVENTS_MS);
}

/** The event ids a stored snapshot remembers (`events`, beside the stamp); none in older snapshots. */
export function seenEventsOf(snapshot: unknown): readonly string[] {
  const e = (snapshot as { events?: unknown } | null)?.events;
  return Array.isArray(e) ? e.filter((x): x is string => typeof x === 'string') : [];
}

/**
 * Whether `id` is an event this session already has: settled by a record, or handed to its actor
 * and not settled yet (`liveEvents`, which hydration seeds with the events a stored mailbox holds).
 */
export function hasEvent(s: LiveSession, id: string): boolean {
  return s.seenEvents.includes(id) || s.liveEvents?.has(id) === true;
}

/** The events a restored session holds unsettled (deferred to its wake, carried over a run): its first `liveEvents`. */
export function heldEventsOf(ctx: SessionContext): Set<string> | undefined {
  let out: Set<string> | undefined;
  for (const list of [ctx.pending, ctx.deferred, ctx.batch]) for (const m of list) if (m.eventId !== undefined) (out ??= new Set()).add(m.eventId);
  return out;
}

