/**
 * A session's history as handler calls: messages that share a `batchId` were handled by one
 * call (cancel-and-merge folds messages that arrive during a run into the next call), so they
 * are shown together, with the call's outcome, instead of as separate rows. A message whose
 * fate is not plain `handled` (merged into the call, superseded by a newer one, rejected while a
 * turn ran, rolled back, …) says so next to it: the turn policy's doing, message by message.
 */
import type { JSX } from 'preact';
import { formatTime, preview } from '../format.js';
import { groupByCall } from '../handlerCalls.js';
import type { HistoryMessage } from '../sessionFeed.js';

/** The history list. */
export function HistoryPanel({ history, past = false }: { history: readonly HistoryMessage[]; past?: boolean }): JSX.Element {
  if (history.length === 0) return <p class="muted">{past ? 'No messages received by then.' : 'No handled messages yet.'}</p>;
  const calls = groupByCall(history);
  return (
    <ol class="calls">
      {calls.map((c) => {
        const real = c.messages.filter((m) => m.kind !== 'wake').length;
        return (
          <li key={c.batchId} class={`call outcome-${c.outcome}`} data-batch={c.batchId}>
            <div class="call__head">
              <span>Handler call <strong>{c.number}</strong> <span class="muted small" title="run id (history batchId)">run {c.batchId || '—'}</span></span>
              {real > 1 && <span class="badge merged" title="messages merged into one handler call">{real} messages merged</span>}
              <span class={`badge outcome outcome-${c.outcome}`}>{c.outcome}</span>
              <time class="muted">{formatTime(c.messages[c.messages.length - 1]!.at)}</time>
            </div>
            <ul class="call__messages">
              {c.messages.map((m) => (
                <li key={`${m.seq}:${m.at}`}>
                  <span class="kind">{m.kind}</span>
                  {m.seq > 0 && <span class="muted">#{m.seq}</span>}
                  {m.fate && m.fate !== 'handled' && <span class={`badge fate fate-${m.fate}`} title="what became of this message">{m.fate}</span>}
                  <span class={`prio prio-${m.priority}`}>{m.priority}</span>
                  {m.from && <span class="muted">from {m.from}</span>}
                  <code class="body" title={preview(m.body, 2000)}>{preview(m.body)}</code>
                </li>
              ))}
            </ul>
          </li>
        );
      })}
    </ol>
  );
}
