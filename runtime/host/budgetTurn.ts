/**
 * Owns what a budget breach does to one turn (the host calls these around a handler run):
 * - the runtime's own budget messages in a batch (the wake that resumes a paused session, the
 *   answer to an `ask` waitpoint) are taken out before the handler sees the batch;
 * - `pause` and `ask` hold the turn: its other messages go back to the mailbox (deferred, so
 *   acked and durable, never lost) and the session sleeps until the limit is raised, or waits on
 *   a waitpoint for a person to answer `continue`, `stop` or (its timeout) `pause`;
 * - `abort` fails the turn with the terminal BUDGET_EXCEEDED (dead letter reason `budget`).
 */
import { randomBytes } from 'node:crypto';
import type { InboxMessage, RunInput, RunOutput, WaitpointSpec } from '../../actors/types.js';
import type { BudgetBreach } from '../../persistence/budget.js';
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
 * The output of a held turn: state unchanged, the `rest` messages requeued, and the session
 * asleep with the hold (`pause`) or waiting on a budget waitpoint (`ask`) for `askTimeoutMs`.
 */
export function heldTurn(input: RunInput, rest: readonly number[], b: BudgetBreach, policy: 'pause' | 'ask', now: number, askTimeoutMs: number): RunOutput {
  const hold = { ...holdOf(b), policy };
  if (policy === 'pause') {
    return { userState: input.userState, next: { type: 'sleep', wake: { until: null, events: [], mailPriority: null, budget: hold } }, finishedAt: now, requeue: rest };
  }
  const waitpoint: WaitpointSpec = {
    id: budgetWaitpointId(), schema: BUDGET_ASK_SCHEMA, hasDefault: true, default: { action: 'pause' },
    tags: ['budget', `budget:${hold.scope}:${hold.metric}:${hold.window}`],
  };
  return { userState: input.userState, next: { type: 'wait', wait: { event: null, replyFrom: null, timeoutAt: now + askTimeoutMs, waitpoint } }, finishedAt: now, requeue: rest };
}
