/**
 * Owns forking: a new session started from a recorded point of another (its flight recorder's
 * checkpoint: the committed snapshot — statechart state, context, user state, deferred messages —
 * and its history as of then), leaving the original untouched.
 *
 * Only agent types defined with `checkpoints: true` have recorded points (migration 0010).
 *
 * What a point holds: a checkpoint is a committed version. A point by `seq` is the newest version
 * whose `lastSeq` is at most that seq: the state right after that message when it committed on its
 * own, else (it was merged into one turn, or commits were coalesced) the state before the turn
 * that held it; the answer says which version and lastSeq it used. A point by `transition` is the
 * state the commit that wrote that transition left (the last transition of that commit, when it
 * wrote several). What is not in a snapshot is not forked: a turn in flight (never committed),
 * outputs (the fork publishes nothing of the original's), timers of `scheduleTask` (they belong to
 * the original), subscriptions other than the agent type's own. A point where the session waits
 * on a waitpoint is refused: the waitpoint is the original's.
 */
import { randomUUID } from 'node:crypto';
import { AgentryError } from '../actors/errors.js';
import { MAX_SESSION_ID_LENGTH, assertSessionId } from '../actors/sessionId.js';
import { snapshotContext, topState } from '../actors/sessionMachine.js';
import type { Checkpoint, CheckpointPoint, HistoryEntry, SessionStatus, Store } from '../persistence/types.js';

/** Options of `forkSession`. */
export interface ForkOptions {
  /** The recorded point: after inbox message `seq`, or after the commit of transition `transition` (ids from getTransitions). */
  readonly at: CheckpointPoint;
  /** The new session's id (default `<id>-fork-<8 hex>`). */
  readonly newId?: string;
}

/** What `forkSession` answers. */
export interface ForkResult {
  readonly agentId: string;
  /** The state the fork starts in. */
  readonly state: SessionStatus;
  /** The recorded point used: the original's version, its lastSeq and commit time. */
  readonly from: { readonly agentId: string; readonly version: number; readonly lastSeq: number; readonly at: number };
}

/** A fork ready to be created by the new id's owner. */
export interface ForkPlan {
  readonly newId: string;
  readonly type: string;
  readonly snapshot: unknown;
  /** Oldest first, re-keyed to the new id. */
  readonly history: HistoryEntry[];
  readonly point: Checkpoint;
}

/** The default id of a fork of `id`. */
export function forkIdOf(id: string): string {
  const tail = `-fork-${randomUUID().slice(0, 8)}`;
  return id.slice(0, MAX_SESSION_ID_LENGTH - tail.length) + tail;
}

/** Validates the point, from a wire value. */
export function assertPoint(at: unknown): CheckpointPoint {
  const a = at as { seq?: unknown; transition?: unknown } | null;
  if (a && typeof a === 'object' && Number.isSafeInteger(a.seq) && (a.seq as number) >= 0 && a.transition === undefined) return { seq: a.seq as number };
  if (a && typeof a === 'object' && Number.isSafeInteger(a.transition) && (a.transition as number) > 0 && a.seq === undefined) return { transition: a.transition as number };
  throw new AgentryError('INVALID_ARGUMENT', 'at must be { seq: <inbox sequence> } or { transition: <transition id> }');
}

/**
 * Reads what a fork of `sourceId` at `at` starts from: the checkpoint (POINT_NOT_RECORDED when
 * none), its snapshot re-addressed to `newId`, and up to `historyLimit` history rows of turns that
 * had committed by then.
 */
export async function planFork(store: Store, sourceId: string, opts: ForkOptions, historyLimit: number): Promise<ForkPlan> {
  assertSessionId(sourceId);
  const at = assertPoint(opts.at);
  const newId = opts.newId ?? forkIdOf(sourceId);
  assertSessionId(newId);
  if (!(await store.loadSession(sourceId))) throw new AgentryError('UNKNOWN_SESSION', `no session ${sourceId}`);
  const point = await store.getCheckpoint(sourceId, at);
  if (!point) {
    throw new AgentryError('POINT_NOT_RECORDED', `session ${sourceId} has no recorded state at ${'seq' in at ? `seq ${at.seq}` : `transition ${at.transition}`} (pruned by retention, not reached, or its type keeps no checkpoints: defineAgent({ checkpoints: true }))`,
      { details: { agentId: sourceId, at } });
  }
  const ctx = snapshotContext(point.snapshot);
  if (point.status === 'waiting' && ctx.wait?.waitpoint) {
    throw new AgentryError('INVALID_ARGUMENT', `at that point session ${sourceId} waits on waitpoint ${ctx.wait.waitpoint.id}, which belongs to it: fork a point before or after the wait`);
  }
  const snapshot = { ...(point.snapshot as Record<string, unknown>), context: { ...ctx, sessionId: newId } };
  // Rows of turns committed by then: a row's batch id is its run's id (a later turn may hold a
  // message with a lower seq, e.g. one deferred while the session slept).
  const rows = await store.getHistory(sourceId, { before: point.lastSeq + 1, limit: Math.max(1, historyLimit) });
  const history = rows
    .filter((h) => { const b = Number(h.batchId); return !Number.isFinite(b) || b <= ctx.runId; })
    .reverse()
    .map((h) => ({ ...h, sessionId: newId }));
  return { newId, type: point.type, snapshot, history, point };
}

/** The answer of a created fork. */
export function forkResultOf(plan: ForkPlan, sourceId: string): ForkResult {
  return {
    agentId: plan.newId, state: topState((plan.snapshot as { value: unknown }).value),
    from: { agentId: sourceId, version: plan.point.version, lastSeq: plan.point.lastSeq, at: plan.point.at },
  };
}
