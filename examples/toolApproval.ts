/**
 * `tool-approval`: an agent that asks a person to approve a tool call before it runs it, through
 * a waitpoint (human in the loop). Send it `refund 40 to alice`: it plans the call, replies with
 * the waitpoint id and waits (state `waiting`, durable across restarts). Approve or refuse with
 * any of
 *
 *   agentry waitpoint complete <id> '{"approve":true}'
 *   curl --json '{"approve":false,"note":"too much"}' http://127.0.0.1:7070/waitpoints/<id>   # no token
 *   completeWaitpoint { id, value: { approve: true } }
 *
 * After an hour without an answer the waitpoint times out with its default (`approve: false`).
 * The next turn gets a `waitpoint` message: the agent runs the tool (here: pretends to) or
 * reports the refusal, and closes the pending call in its transcript either way.
 */
import { z } from 'zod';
import { defineAgent } from '../actors/index.js';
import type { WaitpointMessage } from '../actors/index.js';
import { textOf } from './echo.js';

/** What a person answers: approve or not, with an optional note. */
export const approvalSchema = z.object({ approve: z.boolean(), note: z.string().max(500).optional() });

/** The tool call the agent wants to make. */
export interface ToolCall { readonly tool: 'refund'; readonly amount: number; readonly to: string }
/** The session state of `tool-approval`. */
export interface ToolApprovalState {
  /** The call waiting for approval, and the waitpoint that decides it. */
  pending: { call: ToolCall; waitpointId: string } | null;
  transcript: { role: 'user' | 'tool' | 'assistant'; text: string }[];
}

/** A stand-in for an LLM's tool choice: `refund <amount> to <name>`. */
function planOf(text: string): ToolCall | null {
  const m = /refund\s+(\d+(?:\.\d+)?)\s+to\s+(\w+)/i.exec(text);
  return m ? { tool: 'refund', amount: Number(m[1]), to: m[2]! } : null;
}

export const toolApproval = defineAgent<ToolApprovalState>({
  type: 'tool-approval',
  onMessage: 'queue',
  initialState: () => ({ pending: null, transcript: [] }),
  handle(batch, ctx) {
    for (const m of batch) {
      if (m.kind === 'waitpoint') {
        const w = m.body as WaitpointMessage;
        const p = ctx.state.pending;
        if (!p || p.waitpointId !== w.id) continue; // a settlement of an older question
        ctx.state.pending = null;
        const answer = approvalSchema.safeParse(w.value);
        if (w.status === 'completed' && answer.success && answer.data.approve) {
          const result = `refunded ${p.call.amount} to ${p.call.to}`; // the tool would run here
          ctx.state.transcript.push({ role: 'tool', text: result });
          ctx.reply({ text: `Done: ${result}.` });
        } else {
          const why = w.status === 'completed' ? `refused${answer.success && answer.data.note ? `: ${answer.data.note}` : ''}` : w.status;
          ctx.state.transcript.push({ role: 'tool', text: `not run (${why})` });
          ctx.reply({ text: `I did not run the refund (${why}).` });
        }
        continue;
      }
      if (m.kind !== 'message') continue;
      const text = textOf(m.body);
      ctx.state.transcript.push({ role: 'user', text });
      const call = planOf(text);
      if (!call) {
        ctx.reply({ text: 'Tell me what to refund, e.g. "refund 40 to alice".' });
        continue;
      }
      const next = ctx.waitFor({ waitpoint: { schema: approvalSchema, timeoutMs: 3_600_000, default: { approve: false, note: 'no answer within an hour' }, tags: ['approval', 'tool:refund'] } });
      ctx.state.pending = { call, waitpointId: next.waitpointId! };
      ctx.reply({ text: `May I refund ${call.amount} to ${call.to}?`, waitpointId: next.waitpointId, approveAt: `/waitpoints/${next.waitpointId!}` });
      return next; // messages that arrive meanwhile wait (deferred) until the decision
    }
    return undefined;
  },
});
