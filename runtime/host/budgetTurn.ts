/**
 * Owns what a budget breach does to one turn (the host calls these around a handler run):
 * - the runtime's own budget messages in a batch (the wake that resumes a paused session, the
 *   answer to an `ask` waitpoint) are taken out before the handler sees the batch;
 * - `pause` and `ask` hold the turn: its other messages go back to the mailbox (deferred, so
 *   acked and durable, never lost) and the session sleeps until the limit is raised (setBudget
 *   wakes it) or its re-check falls due (`recheckAt`: the next `day` window, else
 *   `budgetRecheckMs`; the wake carries `detail.budget` and is not shown to the handler, and a
 *   limit still broken holds the turn again), or waits on a waitpoint for a person to answer
 *   `continue`, `stop` or (its timeout) `pause`;
 * - `abort` fails the turn with the terminal BUDGET_EXCEEDED (dead letter reason `budget`).
 */
import { randomBytes } from 'node:crypto';
import type { InboxMessage, RunInput, RunOutput, WaitpointSpec } from '../../actors/types.js';
import type { BudgetBreach } from '../../persistence/budget.js';
import { windowStart, type BudgetWindow } from '../../persistence/budget.js';
import { BUDGET_WAITPOINT_PREFIX, holdOf } from '../budgets.js';

/** What a person may answer an `ask` with. */
export const BUDGET_ASK_SCHEMA = Object.freeze({
  type: 'object',
  properties: { action: { type: 'string', enum: ['continue', 'stop', 'pause'] } },
  required: ['action'],
});

/** The runtime's budget messages in a batch, and what an `ask` answer among them decided. */
export interface BudgetNotices {
  /** Positions of the messages the handler does get. */
  readonly rest: readonly number[];
  /** `stop` (answer stop, or the waitpoint was cancelled), `pause` (its timeout), `continue`, or null (no answer in the batch). */
  readonly decision: 'continue' | 'stop' | 'pause' | null;
}

/** Splits a batch into the runtime's budget messages and the rest. */
export function budgetNotices(batch: readonly InboxMessage[]): BudgetNotices {
  const rest: number[] = [];
  let decision: BudgetNotices['decision'] = null;
  batch.forEach((m, i) => {
    const body = m.body as { id?: unknown; status?: unknown; value?: { action?: unknown } | null; detail?: { budget?: unknown } } | null;
    if (m.kind === 'waitpoint' && typeof body?.id === 'string' && body.id.startsWith(BUDGET_WAITPOINT_PREFIX)) {
      const a = body.value?.action;
      decision = body.status === 'cancelled' || a === 'stop' ? 'stop' : a === 'pause' ? 'pause' : 'continue';
      return;
    }
    if (m.kind === 'wake' && body?.detail?.budget !== undefined) return;
    rest.push(i);
  });
  return { rest, decision };
}

/** A budget waitpoint id: the prefix and 90 random bits (22 characters, as every waitpoint id). */
function budgetWaitpointId(): string {
  return BUDGET_WAITPOINT_PREFIX + randomBytes(12).toString('base64url').slice(0, 22 - BUDGET_WAITPOINT_PREFIX.length);
}

/**
 * When a paused session checks its limits again: a `day` window's usage starts over at the next
 * window (UTC midnight), so no later than that; otherwise (lifetime, rolling hours) every
 * `recheckMs`, so a raised limit that no resume reached still lets it go on.
 */
export function recheckAt(window: BudgetWindow, now: number, recheckMs: number): number {
  const later = now + recheckMs;
  return window === 'day' ? Math.min(later, windowStart('day', now) + 86_400_000) : later;
}

/** How long a held turn waits: for a person (`ask`), or until its limits are checked again (`pause`). */
export interface HoldTimes {
  readonly askTimeoutMs: number;
  readonly recheckMs: number;
}

/**
 * The output of a held turn: state unchanged, the `rest` messages requeued, and the session
 * asleep with the hold until its re-check (`pause`) or waiting on a budget waitpoint (`ask`).
 */
export function heldTurn(input: RunInput, rest: readonly number[], b: BudgetBreach, policy: 'pause' | 'ask', now: number, times: HoldTimes): RunOutput {
  const hold = { ...holdOf(b), policy };
  const askTimeoutMs = times.askTimeoutMs;
  if (policy === 'pause') {
    const until = recheckAt(b.limit.window, now, times.recheckMs);
    return { userState: input.userState, next: { type: 'sleep', wake: { until, events: [], mailPriority: null, budget: hold } }, finishedAt: now, requeue: rest };
  }
  const waitpoint: WaitpointSpec = {
    id: budgetWaitpointId(), schema: BUDGET_ASK_SCHEMA, hasDefault: true, default: { action: 'pause' },
    tags: ['budget', `budget:${hold.scope}:${hold.metric}:${hold.window}`],
  };
  return { userState: input.userState, next: { type: 'wait', wait: { event: null, replyFrom: null, timeoutAt: now + askTimeoutMs, waitpoint } }, finishedAt: now, requeue: rest };
}
