/**
 * Owns the shape of what a session commits: its changes since the last submitted record,
 * gathered into one pending record (commit coalescing), and the `CommitRecord` built from it
 * when it is submitted. Pure: no I/O, no clock, no actor; the host decides when.
 *
 * Merging rules: the latest snapshot wins (it already holds every earlier change); history,
 * transitions, outbox rows, subscriptions and dead letters of each change are concatenated in
 * order; a run's outputs enter only when it completed `ok`. Outbox ids name the record's
 * version, known only at submission, so resends of a stored row keep its id.
 */
import { carriedOver, durableSnapshotOf, topState, type CompletedRun } from '../../actors/sessionMachine.js';
import { fateOf } from '../../actors/types.js';
import { stampedDurableSnapshotOf } from '../../actors/agentVersion.js';
import type { CommitRecord, DeadLetter, HistoryEntry, OutboxRecord, TransitionRecord, WaitpointRecord } from '../../persistence/types.js';
import { storableText } from '../../persistence/storable.js';
import { runKeyOf } from '../budgets.js';

/** A snapshot of a session actor, as much of it as a commit stores. */
export type SessionSnapshot = Parameters<typeof durableSnapshotOf>[0];

/** An output a handler produced during a run; it leaves only once the run is committed. */
export interface PendingOutput {
  readonly subject: string;
  readonly headers: Record<string, string>;
  readonly body: unknown;
  readonly kind: 'reply' | 'mail' | 'event' | 'subscribe' | 'unsubscribe';
}

/** A session's durable changes since its last submitted record: they commit as one record. */
export interface PendingCommit {
  /** The latest snapshot: the record stores this one (last snapshot wins). */
  snap: SessionSnapshot;
  /** Lease epoch of the first change: a change under another epoch starts a new record. */
  readonly epoch: number;
  readonly history: HistoryEntry[];
  readonly transitions: TransitionRecord[];
  /** Outbox rows without ids: ids name the record's version, known when it is submitted. */
  readonly outbox: Omit<OutboxRecord, 'id'>[];
  readonly subscribe: string[];
  readonly unsubscribe: string[];
  readonly deadLetters: DeadLetter[];
  readonly completed: CompletedRun[];
  /** Ids of the events whose fate this record settles (see `rememberEvents`). */
  readonly events: string[];
  /** Set once the store committed it: a command waiting on the chain tells success from a dropped record. */
  committed: boolean;
  /** Ends the wait of a record held for the run its wake started (CommitChain; null: not held). */
  release: (() => void) | null;
}

/** An empty pending record for changes made under lease `epoch`. */
export function newPendingCommit(snap: SessionSnapshot, epoch: number): PendingCommit {
  return { snap, epoch, history: [], transitions: [], outbox: [], subscribe: [], unsubscribe: [], deadLetters: [], completed: [], events: [], committed: false, release: null };
}

/**
 * Adds a completed run to a pending record: its messages as history rows (with their fate),
 * the messages a turn policy settled without running (superseded, rejected: each a history row,
 * a rejected one also a dead letter `busy`), its outputs when it succeeded, and a dead letter
 * when it failed or the session stopped.
 */
export function addCompletedRun(p: PendingCommit, sessionId: string, run: CompletedRun, outputs: readonly PendingOutput[], now: number, incarnation?: string): void {
  p.completed.push(run);
  const batchId = String(run.runId);
  const fate = fateOf(run.outcome, run.batch.filter((m) => m.seq > 0).length);
  for (const m of run.batch) {
    if (m.eventId !== undefined) p.events.push(m.eventId);
    p.history.push({
      sessionId, seq: m.seq, kind: m.kind, body: m.body ?? null, priority: m.priority, from: m.from ?? null,
      batchId, outcome: run.outcome, fate: m.seq > 0 ? fate : fateOf(run.outcome, 1), at: m.at,
    });
  }
  for (const { message: m, fate: f, batchId: b } of run.settled ?? []) {
    if (m.eventId !== undefined) p.events.push(m.eventId);
    p.history.push({
      sessionId, seq: m.seq, kind: m.kind, body: m.body ?? null, priority: m.priority, from: m.from ?? null,
      batchId: b, outcome: f, fate: f, at: m.at,
    });
    if (f === 'rejected') {
      p.deadLetters.push({
        id: `${sessionId}:${m.seq}`, sessionId, reason: 'busy', error: 'the session was running a turn (turn policy reject)',
        attempts: 0, payload: [m], createdAt: now, replayedAt: null,
      });
    }
  }
  if (run.outcome === 'ok') {
    for (const o of outputs) {
      if (o.kind === 'subscribe') p.subscribe.push(o.body as string);
      else if (o.kind === 'unsubscribe') p.unsubscribe.push(o.body as string);
      else p.outbox.push({ sessionId, subject: o.subject, headers: o.headers, body: JSON.stringify(o.body ?? null), createdAt: now });
    }
  }
  const dl = deadLetterOf(sessionId, run, now, incarnation);
  if (dl) p.deadLetters.push(dl);
}

/** The dead letter a finished run leaves: its whole batch, when it failed for good or the session stopped. */
export function deadLetterOf(sessionId: string, run: CompletedRun, now: number, incarnation?: string): DeadLetter | null {
  if ((run.outcome !== 'dead-letter' && run.outcome !== 'stopped') || run.batch.length === 0) return null;
  return {
    id: `${sessionId}:${batchRange(run, incarnation)}`, sessionId, reason: run.outcome === 'stopped' ? 'stopped' : run.error?.code === 'BUDGET_EXCEEDED' ? 'budget' : 'handler-failed',
    error: run.error ? storableText(run.error.message) : null, attempts: run.attempts, payload: run.batch, createdAt: now, replayedAt: null,
  };
}

/** `<min>-<max>` of a run's message sequences (`run<incarnation>.<N>` for a batch of wake records only, `runKeyOf`): dead-letter ids. */
export function batchRange(run: CompletedRun, incarnation?: string): string {
  const seqs = run.batch.map((m) => m.seq).filter((q) => q > 0);
  return seqs.length ? `${Math.min(...seqs)}-${Math.max(...seqs)}` : `run${runKeyOf(incarnation, run.runId)}`;
}

/**
 * The id of a session's `i`-th outbox row of record `version`, its `Nats-Msg-Id`:
 * `<session>:<incarnation>:<version>:<i>`. Deterministic within an incarnation (a row sent again
 * after a crash keeps its stored id, and JetStream drops the repeat), different across
 * incarnations: a session purged and created again under the same id within the streams' 2-minute
 * duplicate window starts again at version 1, and with `<session>:<version>:<i>` (the form of
 * sessions without an incarnation, created before 2026-11-28) its first mail and events were
 * dropped as repeats of the old incarnation's.
 */
export function outboxIdOf(sessionId: string, incarnation: string | undefined, version: number, i: number): string {
  return incarnation === undefined ? `${sessionId}:${version}:${i}` : `${sessionId}:${incarnation}:${version}:${i}`;
}

/** The record a pending commit becomes when it is submitted as `version` of the session's row. */
export function commitRecordOf(
  p: PendingCommit, session: { readonly id: string; readonly type: string; readonly partition: number; readonly agentVersion?: number; readonly seenEvents?: readonly string[] },
  version: number, initialSubscriptions: readonly string[],
): CommitRecord {
  const ctx = p.snap.context;
  const wake = ctx.wake;
  const subscribe = version === 1 ? [...initialSubscriptions, ...p.subscribe] : p.subscribe;
  // A run under way stores `active`; when it carries a wake or deferred mail (carriedOver), its
  // wake time is the commit's clock, already due: if this node dies before the run commits, the
  // partition's next owner finds it among the due wakes and resumes it (the host sends RESUME).
  const status = topState(p.snap.value);
  // A waiting session's waitpoint is stored by the commit that stores the wait (each later commit
  // of the wait carries it again; the store keeps the first).
  const wp = status === 'waiting' ? ctx.wait?.waitpoint : null;
  const waitpoints: WaitpointRecord[] = wp ? [{
    id: wp.id, sessionId: session.id, agentType: session.type, partition: session.partition, status: 'pending',
    schema: wp.schema, hasDefault: wp.hasDefault, defaultValue: wp.hasDefault ? wp.default : null, tags: wp.tags, value: null,
    createdAt: ctx.clock, expiresAt: ctx.wait?.timeoutAt ?? null, settledAt: null,
  }] : [];
  const snapshot = stampedDurableSnapshotOf(p.snap, session.type, session.agentVersion ?? 1);
  // The events the session has had (a fresh object: durableSnapshotOf made it for this record).
  if (session.seenEvents !== undefined && session.seenEvents.length > 0) (snapshot as { events?: readonly string[] }).events = session.seenEvents;
  return {
    // Stamped with the agent type, the version of its code, and the statechart's hash (agentVersion.ts).
    sessionId: session.id, type: session.type, status, snapshot,
    lastSeq: ctx.lastSeq, version, partition: session.partition, ownerEpoch: p.epoch,
    wakeAt: wake?.until ?? ctx.wait?.timeoutAt ?? (status === 'active' && carriedOver(ctx).length > 0 ? ctx.clock : null), wakeEvents: wake?.events ?? (ctx.wait?.event ? [ctx.wait.event] : []),
    wakePriority: wake?.mailPriority ?? null,
    history: p.history, transitions: p.transitions,
    outbox: p.outbox.map((o, i) => ({ ...o, id: outboxIdOf(session.id, ctx.incarnation, version, i) })),
    ...(subscribe.length ? { subscribe } : {}), ...(p.unsubscribe.length ? { unsubscribe: p.unsubscribe } : {}),
    ...(waitpoints.length ? { waitpoints } : {}),
  };
}
