/**
 * Owns time travel's reading: a session as it was right after one of its transitions
 * (`getSessionAt`), from what the transition row recorded (runtime/transitionFrame.ts,
 * migration 0013) — state, context, event object, waitpoint, mailbox — and its history as of
 * then. The same view shape as `getAgent`, so the inspector's panels draw a past step exactly as
 * they draw the live session.
 *
 * What is not recorded is said, not guessed: a step written before migration 0013 has no frame
 * (`agent: null`); a user state is `userStateRecorded: false` when the row that held it was
 * pruned by retention. History "as of" a step is the messages the session had received by then
 * (their outcome is the one they got, possibly later).
 */
import { AgentryError } from '../actors/errors.js';
import { topState } from '../actors/sessionMachine.js';
import type { BudgetHold, Priority } from '../actors/types.js';
import type { HistoryEntry, SessionStep, Store, TransitionRecord } from '../persistence/types.js';
import { historyPage } from './historyPage.js';
import type { SessionView } from './host/sessionHost.js';
import type { FrameContext, FrameMessage, TransitionFrame } from './transitionFrame.js';

/** The session as of one step, in `getAgent`'s shape (never live). */
export type ViewAtStep = SessionView;

/** What `getSessionAt` answers. */
export interface SessionAt {
  readonly step: TransitionRecord;
  /** The session right after the step; null when the step recorded no frame (written before migration 0013). */
  readonly agent: ViewAtStep | null;
  /** False when the user state of that step is no longer kept (its row was pruned): `agent.userState` is then null. */
  readonly userStateRecorded: boolean;
  /** The event object that caused the step (null: not recorded). */
  readonly event: unknown;
  /** The mailbox with every entry (the view counts pending and running ones). */
  readonly mailbox: FrameContext['mailbox'] | null;
  /** The step before it and the session then, for a diff (null: the step is the oldest kept). */
  readonly previous: { readonly step: TransitionRecord; readonly agent: ViewAtStep | null } | null;
  /** Messages received by then (and wake records), newest first. */
  readonly history: HistoryEntry[];
}

/** The parts of the live session a past view borrows: identity and policy do not change. */
export type SessionIdentity = Pick<SessionView, 'agentId' | 'type' | 'tenant' | 'policy'> & { readonly tags?: readonly string[] };

function asFrame(v: unknown): TransitionFrame | null {
  const f = v as TransitionFrame | null;
  return f && typeof f === 'object' && f.context && typeof f.context === 'object' && f.event ? f : null;
}

/**
 * The view of a session right after transition `t`, from its frame and the user state recorded
 * then (null when the frame is missing). Pure: unit-tested without a store.
 */
export function viewAtStep(id: SessionIdentity, t: TransitionRecord, frame: unknown, userState: { value: unknown } | undefined): ViewAtStep | null {
  const f = asFrame(frame);
  if (!f) return null;
  const c = f.context;
  const state = topState(pathValue(t.to));
  return {
    agentId: id.agentId, type: id.type, tenant: id.tenant, tags: id.tags ?? [], policy: id.policy,
    state, stateValue: t.to, userState: userState ? userState.value : null, lastSeq: c.lastSeq,
    wake: c.wake ? { until: c.wake.until, events: [...c.wake.events], mailPriority: c.wake.mailPriority as Priority | null, ...(c.wake.budget ? { budget: c.wake.budget as BudgetHold } : {}) } : null,
    wait: c.wait ? { event: c.wait.event, replyFrom: c.wait.replyFrom, timeoutAt: c.wait.timeoutAt, waitpoint: c.wait.waitpoint ? { ...c.wait.waitpoint } : null } : null,
    mailbox: {
      pending: c.mailbox.pending.length + (c.mailbox.pendingOmitted?.count ?? 0), running: c.mailbox.running.length, rejected: c.mailbox.rejected.length,
      deferred: c.mailbox.deferred.map((m) => ({ seq: m.seq, kind: m.kind, priority: m.priority as Priority, at: m.at, ...(m.from !== undefined ? { from: m.from } : {}) })),
    },
    lastError: c.lastError, live: false, updatedAt: t.at,
  };
}

/** A state path (`active.running`) as the nested value `topState` reads. */
function pathValue(path: string): unknown {
  const [top, ...rest] = path.split('.');
  return rest.length === 0 ? top : { [top!]: pathValue(rest.join('.')) };
}

/** The highest inbox sequence a frame shows the session had received (history as of the step ends there). */
export function maxSeqOf(frame: unknown): number {
  const f = asFrame(frame);
  if (!f) return 0;
  const m = f.context.mailbox;
  const all: readonly FrameMessage[] = [...m.pending, ...m.running, ...m.deferred, ...m.rejected];
  return all.reduce((x, e) => (e.seq > x ? e.seq : x), Math.max(f.context.lastSeq, m.pendingOmitted?.maxSeq ?? 0));
}

/** Builds the answer from a stored step (see `SessionAt`). */
export function sessionAtOf(id: SessionIdentity, step: SessionStep, history: HistoryEntry[]): SessionAt {
  const f = asFrame(step.frame);
  const agent = viewAtStep(id, step.transition, step.frame, step.userState);
  const prev = step.previous;
  return {
    step: step.transition, agent, userStateRecorded: step.userState !== undefined,
    event: f ? f.event : null, mailbox: f ? f.context.mailbox : null,
    previous: prev ? { step: prev.transition, agent: viewAtStep(id, prev.transition, prev.frame, step.previousUserState) } : null,
    history,
  };
}

/**
 * Reads session `id` as of transition `transitionId`: POINT_NOT_RECORDED when the session has
 * no such transition (never written, pruned, or another session's). `until` bounds the history
 * by time (default: the step's time); `historyLimit` the messages read.
 */
export async function readSessionAt(store: Store, id: SessionIdentity, transitionId: number, opts: { until?: number; historyLimit?: number } = {}): Promise<SessionAt> {
  const step = await store.getSessionStep(id.agentId, transitionId);
  if (!step) {
    throw new AgentryError('POINT_NOT_RECORDED', `session ${id.agentId} has no transition ${transitionId} (not reached, pruned by retention, or another session's)`,
      { details: { agentId: id.agentId, transition: transitionId } });
  }
  const until = opts.until ?? step.transition.at;
  const maxSeq = maxSeqOf(step.frame);
  const rows = await historyPage(store, id.agentId, { limit: opts.historyLimit ?? 200, ...(step.frame !== null ? { before: maxSeq + 1 } : {}) });
  const at = sessionAtOf(id, step, rows.filter((h) => h.at <= until));
  return { ...at, event: await withMessageBody(store, id.agentId, at.event) };
}

/** A MESSAGE event with its message's body, read from the message's history row (frames do not copy bodies). */
async function withMessageBody(store: Store, sessionId: string, event: unknown): Promise<unknown> {
  const e = event as { type?: unknown; message?: { seq?: unknown } } | null;
  const seq = e?.type === 'MESSAGE' ? e.message?.seq : undefined;
  if (typeof seq !== 'number' || seq <= 0) return event;
  const [row] = await store.getHistory(sessionId, { before: seq + 1, limit: 1 });
  return row && row.seq === seq ? { ...e, message: { ...e!.message, body: row.body } } : event;
}
